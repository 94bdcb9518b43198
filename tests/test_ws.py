"""WS /ws on a real server: cancel mid-answer, resume by subscribe, hostile frames, many idle
clients, all while other clients keep being served."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from doclane.websocket import Sent
from tests.documents import make_report_pdf
from tests.server import ServerProcess
from tests.wsclient import FINAL_TYPES, check_stream, follow, get_job, of_job, upload

pytestmark = pytest.mark.anyio


async def until_type(ws: ClientConnection, job_id: str, type_: str) -> list[dict[str, Any]]:
    """The job's events received up to and including its first event of `type_`."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        while not seen or seen[-1]["type"] != type_:
            event = json.loads(await ws.recv())
            if event.get("job_id") == job_id:
                seen.append(event)
    return seen


async def until_final(ws: ClientConnection, job_id: str) -> list[dict[str, Any]]:
    """Every event received, of any job, up to and including the job's final event."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        while not seen or seen[-1].get("job_id") != job_id or seen[-1]["type"] not in FINAL_TYPES:
            seen.append(json.loads(await ws.recv()))
    return seen


async def next_of_type(ws: ClientConnection, job_id: str, type_: str) -> dict[str, Any]:
    return (await until_type(ws, job_id, type_))[-1]


async def test_cancel_running_and_pending_jobs(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_MAX_ANSWER_TOKENS": "200"})
    pdf = make_report_pdf(tmp_path / "r.pdf")
    later = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    async with connect(server.ws) as ws, httpx.AsyncClient(base_url=server.http) as http:
        running = (await upload(server.http, pdf, "Write a long summary."))["data"]["job_id"]
        scheduled = (await upload(server.http, pdf, "Later.", scheduled_at=later))["data"]["job_id"]
        await next_of_type(ws, running, "ai_chunk")
        started = time.monotonic()
        response = await http.delete(f"/api/jobs/{running}")
        assert response.status_code == 200
        assert response.json()["data"]["status"] == "cancelled"
        failed = await next_of_type(ws, running, "job_failed")
        assert time.monotonic() - started < 1.0
        assert failed["error"] == "Job cancelled" and failed["status"] == "cancelled"
        # The worker stops: nothing more of this job (no chunk, no second final event), while
        # another job runs from start to end.
        other = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        after_cancel = await until_final(ws, other)
        assert [e for e in after_cancel if e["job_id"] == other][-1]["type"] == "job_completed"
        assert [e for e in after_cancel if e.get("job_id") == running] == []

        again = await http.post(f"/api/jobs/{running}/cancel")  # idempotent
        assert again.status_code == 200 and again.json()["data"]["status"] == "cancelled"
        pending = await http.delete(f"/api/jobs/{scheduled}")
        assert pending.json()["data"]["status"] == "cancelled"
        finished = await http.post(f"/api/jobs/{other}/cancel")
        assert finished.status_code == 409 and finished.json()["success"] is False
        missing = await http.delete("/api/jobs/nope")
        assert missing.status_code == 404
    job = (await get_job(server.http, running))["data"]
    assert job["status"] == "cancelled" and job["completed_at"] is not None


async def test_subscribe_replays_a_finished_job(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        live = of_job(await follow(ws, {job_id}), job_id)
    async with connect(server.ws) as late:
        await late.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
        replayed = of_job(await follow(late, {job_id}), job_id)
        assert replayed == live
        middle = live[len(live) // 2]["seq"]
        await late.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": middle}))
        await late.send(json.dumps({"type": "ping"}))
        # Everything after `middle` was sent on this connection already: nothing is repeated.
        with anyio.fail_after(10):
            assert json.loads(await late.recv()) == {"type": "pong"}
    check_stream(replayed)


@pytest.mark.slow
async def test_hostile_frames_and_idle_clients(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    async with connect(server.ws, max_size=None) as rude:
        frames: list[str | bytes] = [
            "not json",
            "[1, 2]",
            '{"type": "subscribe"}',
            '{"type": "nope"}',
            b"\x00\xff",
        ]
        for frame in frames:
            await rude.send(frame)
            with anyio.fail_after(10):
                reply = json.loads(await rude.recv())
            assert reply["type"] == "error" and reply["error"]
        await rude.send(json.dumps({"type": "subscribe", "job_id": "nope", "after_seq": 0}))
        with anyio.fail_after(10):
            assert json.loads(await rude.recv())["error"] == "Job not found"
        # Over the frame limit: this client is closed, which the server may do before the
        # client has finished sending the frame.
        with pytest.raises(ConnectionClosed) as closed, anyio.fail_after(10):
            await rude.send("x" * (1024 * 1024))
            await rude.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    idle: list[ClientConnection] = []
    try:
        with anyio.fail_after(90):
            for _ in range(1000):
                idle.append(await connect(server.ws, ping_interval=None))
        pdf = make_report_pdf(tmp_path / "r.pdf")
        async with connect(server.ws) as ws:
            job_id = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
            check_stream(of_job(await follow(ws, {job_id}), job_id))
    finally:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for connection in idle:
                    tg.start_soon(connection.close)


async def test_subscribe_after_live_events_still_fills_the_gap(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_MAX_ANSWER_TOKENS": "120"})
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as watcher:
        job_id = (await upload(server.http, pdf, "Write a summary."))["data"]["job_id"]
        await next_of_type(watcher, job_id, "ai_chunk")  # seqs 1.. are out before `late` joins
        async with connect(server.ws) as late:
            # Everything `late` saw before subscribing counts as delivered, progress included.
            live = await until_type(late, job_id, "ai_chunk")
            await late.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
            rest = of_job(await follow(late, {job_id}), job_id)
    seqs = [e["seq"] for e in (*live, *rest)]
    assert len(seqs) == len(set(seqs))  # nothing twice
    assert sorted(seqs) == list(range(1, max(seqs) + 1))  # nothing missing


def test_a_connection_remembers_each_seq_once_and_forgets_finished_jobs() -> None:
    sent = Sent()
    # Live events first (5..8), then a replay from the start fills the gap under them.
    assert [sent.add("a", seq, False) for seq in (5, 6, 7, 8)] == [True] * 4
    order = [1, 2, 5, 3, 6, 4, 7, 8, 9]
    assert [sent.add("a", seq, seq == 9) for seq in order] == [
        True, True, False, True, False, True, False, False, True
    ]  # fmt: skip
    assert not any(sent.add("a", seq, False) for seq in range(1, 10))  # all of it, once
    for n in range(Sent.KEEP_FINISHED):  # the finished jobs after it push it out
        assert sent.add(f"job-{n}", 1, True)
    assert sent.add("a", 1, False)  # forgotten: a replay of it is sent again
    assert not sent.add(f"job-{Sent.KEEP_FINISHED - 1}", 1, False)  # still remembered
