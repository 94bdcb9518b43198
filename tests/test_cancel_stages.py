"""A cancelled job frees its worker slot at once, whatever it was doing: reading a PDF's scans,
recognising an image's text, scanning a table, the model reading the question, or writing.

One worker slot, so the next queued job can only start once the cancelled one has let go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests import hostile
from tests.documents import make_csv, make_pdf, scan
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# The goal is 1 s (a heartbeat is 0.5 s); the bound leaves room for a busy 2-core machine.
NEXT_JOB_WITHIN = 2.0
SERVER_ENV = {
    "DOCLANE_CONTEXT_BUDGET_TOKENS": "1500",  # a long prompt: seconds of prompt evaluation
    "DOCLANE_MAX_ANSWER_TOKENS": "200",
}
LINES = [f"Line {n} of the quarterly report on turbines, staffing and budgets." for n in range(40)]


@dataclass(frozen=True)
class Stage:
    name: str
    make: Callable[[Path], Path]
    prompt: str
    reached: Callable[[dict[str, Any]], bool]  # is this event the job being in the stage?
    settle: float = 0.0  # seconds from that event until the stage's slow part is surely on


def _scanned_pdf(path: Path) -> Path:
    return make_pdf(path, [scan(LINES[:30], dpi=300) for _ in range(6)])


def _scanned_image(path: Path) -> Path:
    scan(LINES * 2, dpi=300, size=(8.27, 23.4)).save(path, "PNG")
    return path


def _long_pdf(path: Path) -> Path:
    return make_pdf(path, [LINES] * 12)


def _stage_is(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: str(event.get("stage", "")).startswith(prefix)


STAGES = [
    Stage("OCR of a scanned PDF", _scanned_pdf, "What does it say?", _stage_is("OCR page")),
    Stage(
        "OCR of an image",
        _scanned_image,
        "What does it say?",
        _stage_is("Recognising text in the image"),
    ),
    Stage(
        "a table scan",
        lambda path: hostile.long_line_csv(path, 50_000_000),  # seconds in DuckDB
        "Sum b.",
        _stage_is("Reading the document"),  # the scan starts right after, and takes seconds
    ),
    Stage(
        "the model reading the question",
        _long_pdf,
        "What does the company plan for the next decade?",  # no line answers: passages
        _stage_is("Reading the question"),
        settle=1.5,  # evaluating the ~1,500-token prompt takes seconds
    ),
    Stage(
        "the answer being written",
        _long_pdf,
        "Write a long report on every line.",
        lambda event: event["type"] == "ai_chunk",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("stages")
    server = ServerProcess(root / "data", SERVER_ENV).start()
    try:
        yield server
    finally:
        server.stop()


async def _until(
    ws: ClientConnection, job_id: str, reached: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Events of ``job_id`` up to the first that ``reached`` accepts."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        while True:
            event = json.loads(await ws.recv())
            if event.get("job_id") != job_id:
                continue
            seen.append(event)
            assert event["type"] not in ("job_completed", "job_failed"), event
            if reached(event):
                return seen


@pytest.mark.parametrize("stage", STAGES, ids=[stage.name for stage in STAGES])
async def test_cancel_frees_the_slot_at_once(
    server: ServerProcess, stage: Stage, tmp_path: Path
) -> None:
    document = stage.make(tmp_path / "document")
    follower = make_csv(tmp_path / "next.csv")
    async with connect(server.ws) as ws, httpx.AsyncClient(base_url=server.http) as http:
        cancelled = (await upload(server.http, document, stage.prompt))["data"]["job_id"]
        await _until(ws, cancelled, stage.reached)
        await anyio.sleep(stage.settle)
        following = (await upload(server.http, follower, "How many rows?"))["data"]["job_id"]
        cancelled_at = time.time()  # the clock the client stamps events with
        response = await http.post(f"/api/jobs/{cancelled}/cancel")
        assert response.json()["data"]["status"] == "cancelled"
        events = await follow(ws, {cancelled, following}, timeout=60)
        next_started = next(
            received.at
            for received in events
            if received.event["job_id"] == following and received.event["type"] == "job_update"
        )
    assert next_started - cancelled_at < NEXT_JOB_WITHIN
    # The cancelled job ends once, and nothing of it follows: its reader or model stopped.
    ending = [e for e in of_job(events, cancelled) if e["type"] == "job_failed"]
    assert len(ending) == 1 and ending[0]["error"] == "Job cancelled"
    assert of_job(events, cancelled)[-1] is ending[0]
    check_stream(of_job(events, following))
