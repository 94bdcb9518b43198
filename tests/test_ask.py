"""``doclane ask``, run as a real process against a real server (or its own embedded one), with
the real model: what it prints is the job's answer, its exit code is the job's end, and Ctrl-C
cancels the job on the server."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import ByteReceiveStream, Process
from websockets.asyncio.client import connect

from tests.documents import make_csv, make_report_pdf
from tests.hostile import long_line_csv
from tests.server import ServerProcess
from tests.wsclient import FINAL_TYPES, get_job

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # each test runs the CLI against a server

ASK_TIMEOUT = 120.0  # one command, start to exit
REVENUE = "What was the revenue in 2024?"
LONG = "Describe everything in this document in a long essay."  # no line to quote: all model
MAX_PROMPT_CHARS = 20000  # the default DOCLANE_MAX_PROMPT_CHARS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("ask") / "data")
    try:
        yield process.start()
    finally:
        process.stop()


def ask_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "doclane", "ask", *(str(arg) for arg in args)]


async def ask(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(ASK_TIMEOUT):
        return await anyio.run_process(
            ask_command(*args), check=False, env={**os.environ, **(env or {})}, cwd=cwd
        )


async def ask_observed(
    server: ServerProcess, *args: str | Path
) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, Any]]]:
    """Run ``doclane ask`` while another client watches the server: what it printed, and the
    events of the one job it made."""
    result: list[subprocess.CompletedProcess[bytes]] = []
    async with connect(server.ws) as ws, anyio.create_task_group() as tg:

        async def run() -> None:
            result.append(await ask(*args, "--server", server.http))

        tg.start_soon(run)
        events: list[dict[str, Any]] = []
        with anyio.fail_after(ASK_TIMEOUT):
            while not events or events[-1]["type"] not in FINAL_TYPES:
                event = json.loads(await ws.recv())
                if "job_id" in event:
                    events.append(event)
    assert len({e["job_id"] for e in events}) == 1, events
    return result[0], events


async def test_streams_the_answer_the_server_keeps(server: ServerProcess, tmp_path: Path) -> None:
    pdf = make_report_pdf(tmp_path / "report.pdf")
    done, events = await ask_observed(server, pdf, "Is the outlook good?")  # the model's words
    assert done.returncode == 0, done.stderr
    job = (await get_job(server.http, events[0]["job_id"]))["data"]
    assert job["status"] == "completed" and job["file_name"] == "report.pdf"
    chunks = [e["chunk"] for e in events if e["type"] == "ai_chunk"]
    assert len(chunks) > 1 and "".join(chunks) == job["ai_response"]
    assert done.stdout.decode() == job["ai_response"] + "\n"  # no progress bar off a terminal
    assert done.stderr == b""


async def test_json_prints_each_event_as_received(server: ServerProcess, tmp_path: Path) -> None:
    csv = make_csv(tmp_path / "sales.csv")
    done = await ask(csv, "What is the total amount?", "--json", "--server", server.http)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert events[-1]["type"] == "job_completed"
    assert {e["type"] for e in events} >= {"job_update", "ai_chunk"}
    job_id = events[0]["job_id"]
    assert all(e["job_id"] == job_id for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    job = (await get_job(server.http, job_id))["data"]
    assert events[-1]["ai_response"] == job["ai_response"]


async def test_a_failed_job_exits_1_with_its_error(server: ServerProcess, tmp_path: Path) -> None:
    # Accepted at upload (a text CSV), failed by the job: its one data line is 3 MB long.
    csv = long_line_csv(tmp_path / "long.csv", line_bytes=3 * 1024 * 1024)
    done, events = await ask_observed(server, csv, "What is the sum of b?")
    assert events[-1]["type"] == "job_failed"
    assert done.returncode == 1
    assert done.stderr.decode() == f"doclane: {events[-1]['error']}\n"
    job = (await get_job(server.http, events[0]["job_id"]))["data"]
    assert job["status"] == "failed"


@pytest.mark.parametrize(
    ("name", "content", "prompt", "error"),
    [
        ("empty.pdf", b"", REVENUE, "The file is empty"),
        ("r.pdf", None, "x" * (MAX_PROMPT_CHARS + 1), "prompt is too long"),
    ],
)
async def test_a_refused_upload_exits_2_with_the_servers_message(
    server: ServerProcess,
    tmp_path: Path,
    name: str,
    content: bytes | None,
    prompt: str,
    error: str,
) -> None:
    path = tmp_path / name
    if content is None:
        make_report_pdf(path)
    else:
        path.write_bytes(content)
    done = await ask(path, prompt, "--server", server.http)
    assert done.returncode == 2
    assert done.stdout == b""
    assert error in done.stderr.decode()


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = await ask(tmp_path / "missing.pdf", REVENUE, "--server", "http://127.0.0.1:9")
    assert missing.returncode == 2 and b"cannot read" in missing.stderr
    pdf = make_report_pdf(tmp_path / "r.pdf")
    when = await ask(pdf, REVENUE, "--at", "tomorrow", "--server", "http://127.0.0.1:9")
    assert when.returncode == 2 and b"not an ISO 8601 time" in when.stderr


async def test_a_timeout_cancels_a_job_scheduled_later(
    server: ServerProcess, tmp_path: Path
) -> None:
    pdf = make_report_pdf(tmp_path / "r.pdf")
    done = await ask(
        pdf, REVENUE, "--at", "2099-01-01T00:00:00Z", "--server", server.http, "--timeout", "1"
    )
    assert done.returncode == 2  # more than a year ahead: refused by the server
    assert b"at most one year ahead" in done.stderr
    # An hour ahead is accepted, then waited for, until the timeout cancels it.
    done = await ask(
        pdf,
        REVENUE,
        "--at",
        _in_an_hour(),
        "--priority",
        "3",
        "--server",
        server.http,
        "--timeout",
        "2",
    )
    assert done.returncode == 1
    found = re.search(rb"no answer within 2 s; job (\S+) cancelled", done.stderr)
    assert found, done.stderr
    job = (await get_job(server.http, found[1].decode()))["data"]
    assert job["status"] == "cancelled" and job["ai_response"] in ("", None)


def _in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


@pytest.mark.slow
async def test_ctrl_c_cancels_the_job_and_exits_130(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"DOCLANE_MAX_ANSWER_TOKENS": "400"}).start()
    try:
        pdf = make_report_pdf(tmp_path / "r.pdf")
        async with await anyio.open_process(
            ask_command(pdf, LONG, "--json", "--server", server.http)
        ) as process:
            try:
                first_chunk = await _until_first_chunk(process)
                process.send_signal(signal.SIGINT)
                with anyio.fail_after(30):
                    code = await process.wait()
                assert process.stderr is not None
                stderr = (await _read_all(process.stderr)).decode()
            finally:
                if process.returncode is None:
                    process.kill()
        assert code == 130
        job_id = first_chunk["job_id"]
        assert stderr == f"doclane: interrupted; job {job_id} cancelled\n"
        job = (await get_job(server.http, job_id))["data"]
        assert job["status"] == "cancelled"
        assert job["ai_response"].startswith(first_chunk["partial"])
    finally:
        server.stop()


async def _read_all(stream: ByteReceiveStream, timeout: float = ASK_TIMEOUT) -> bytes:
    data = b""
    with anyio.fail_after(timeout):
        async for piece in stream:
            data += piece
    return data


async def _until_first_chunk(process: Process) -> dict[str, Any]:
    return (await _json_lines_until_chunk(process))[0][-1]


async def _json_lines_until_chunk(process: Process) -> tuple[list[dict[str, Any]], bytes]:
    """The events ``doclane ask --json`` printed up to its first ai_chunk (the last of them),
    and the bytes read past it."""
    assert process.stdout is not None
    buffer, events = b"", []
    with anyio.fail_after(ASK_TIMEOUT):
        while True:
            buffer += await process.stdout.receive()
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event: dict[str, Any] = json.loads(line)
                assert event["type"] not in FINAL_TYPES, event  # it ended too soon
                events.append(event)
                if event["type"] == "ai_chunk":
                    return events, buffer


@pytest.mark.slow
async def test_a_server_restart_mid_answer_is_followed_to_the_end(tmp_path: Path) -> None:
    """The server dies while the answer streams; the command reconnects to the restarted one
    and prints the rest of the job's events, each once, to its end."""
    env = {"DOCLANE_MAX_ANSWER_TOKENS": "400", "DOCLANE_LEASE_SECONDS": "2"}
    first = ServerProcess(tmp_path / "data", env).start()
    second = ServerProcess(tmp_path / "data", env)
    second.port = first.port
    try:
        pdf = make_report_pdf(tmp_path / "r.pdf")
        async with await anyio.open_process(
            ask_command(pdf, LONG, "--json", "--server", first.http)
        ) as process:
            try:
                before, rest = await _json_lines_until_chunk(process)
                first.kill()
                await anyio.to_thread.run_sync(second.start)
                assert process.stdout is not None
                after = [
                    json.loads(line)
                    for line in (rest + await _read_all(process.stdout)).splitlines()
                ]
                with anyio.fail_after(10):
                    code = await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
        assert code == 0
        events = before + after
        assert events[-1]["type"] == "job_completed"
        seqs = [e["seq"] for e in events]
        assert len(seqs) == len(set(seqs))
        job = (await get_job(second.http, events[0]["job_id"]))["data"]
        assert job["status"] == "completed" and events[-1]["ai_response"] == job["ai_response"]
    finally:
        first.kill()
        second.stop()


@pytest.mark.slow
async def test_without_a_server_it_runs_one_in_process(tmp_path: Path) -> None:
    pdf = make_report_pdf(tmp_path / "r.pdf")
    env = {"DOCLANE_DATA_DIR": str(tmp_path / "data"), "DOCLANE_MAX_ANSWER_TOKENS": "24"}
    done = await ask(pdf, REVENUE, "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert events[-1]["type"] == "job_completed"
    answer = "".join(e["chunk"] for e in events if e["type"] == "ai_chunk")
    assert answer.strip() and events[-1]["ai_response"] == answer
    assert list((tmp_path / "data").glob("doclane.db*"))  # the usual data dir, from settings


KEY = "ask-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("ask-keyed") / "data"
    process = ServerProcess(data, {"DOCLANE_API_KEYS": f"carol:{KEY}"})
    try:
        yield process.start()
    finally:
        process.stop()


async def test_with_auth_on_the_key_is_a_header_and_the_sockets_first_message(
    keyed_server: ServerProcess, tmp_path: Path
) -> None:
    """--key, or DOCLANE_API_KEY: the upload carries it as a Bearer header, and the socket
    (which sends no header) shows it in its first message, else it would get no event."""
    csv = make_csv(tmp_path / "sales.csv")
    server = ("--server", keyed_server.http)
    no_env = {"DOCLANE_API_KEY": ""}
    by_option = await ask(
        csv, "What is the total amount?", "--json", "--key", KEY, *server, env=no_env
    )
    assert by_option.returncode == 0, by_option.stderr
    events = [json.loads(line) for line in by_option.stdout.decode().splitlines()]
    assert events[-1]["type"] == "job_completed"
    assert events[-1]["ai_response"] == (await job_as_carol(keyed_server, events[0]["job_id"]))

    by_env = await ask(csv, "How many rows are there?", *server, env={"DOCLANE_API_KEY": KEY})
    assert by_env.returncode == 0, by_env.stderr
    async with httpx.AsyncClient(base_url=keyed_server.http, headers=CAROL) as client:
        newest = (await client.get("/api/jobs", params={"limit": 1})).json()["data"]["jobs"][0]
    assert by_env.stdout.decode() == newest["ai_response"] + "\n"

    for key, error in [(None, "Missing API key"), ("wrong-key", "Invalid API key")]:
        refused = await ask(csv, "Q", *server, *(("--key", key) if key else ()), env=no_env)
        assert refused.returncode == 2, refused.stderr
        assert error in refused.stderr.decode() and "--key" in refused.stderr.decode()
    assert KEY not in keyed_server.log()  # never in a URL the server logged


CAROL = {"Authorization": f"Bearer {KEY}"}


async def job_as_carol(server: ServerProcess, job_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.http, headers=CAROL) as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    answer: str = response.json()["data"]["ai_response"]
    return answer


@pytest.mark.slow
def test_on_a_terminal_a_progress_bar_then_the_answer(
    server: ServerProcess, tmp_path: Path
) -> None:
    pdf = make_report_pdf(tmp_path / "report.pdf", page_count=12)
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    process = subprocess.Popen(
        ask_command(pdf, REVENUE, "--server", server.http),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    try:
        output = _read_terminal(controller)
        code = process.wait(timeout=10)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert code == 0
    text = output.decode(errors="replace")
    assert "━" in text and "Reading" in text  # the bar, with the stage it shows
    after_bar = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.rsplit("━", 1)[1]).replace("\r", "")
    assert "> Source, p. 2: Revenue in 2024 was 4.2 million dollars." in after_bar


def _read_terminal(controller: int) -> bytes:
    """All the command wrote to its terminal, until it closed it (on exit)."""
    output = b""
    deadline = time.monotonic() + ASK_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: every end of the terminal is closed
            return output
        if not data:
            return output
        output += data
    raise TimeoutError(f"the command did not end in {ASK_TIMEOUT} s:\n{output!r}")
