"""Crash safety of the embedded mode: kill -9 the server mid-answer, start it again, and every
job (the interrupted one, a queued one, a scheduled one) still completes exactly once."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.client import connect

from tests.documents import make_report_pdf
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, get_job, of_job, upload

pytestmark = pytest.mark.anyio


async def test_kill_during_answer_then_restart(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server({"DOCLANE_MAX_ANSWER_TOKENS": "200"}, data_dir)
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as ws:
        running = (await upload(server.http, pdf, "Write a long summary."))["data"]["job_id"]
        queued = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        at = math.ceil(time.time()) + 6  # well after the kill below
        scheduled = (await upload(server.http, pdf, "Summarise.", scheduled_at=_iso(at)))["data"][
            "job_id"
        ]
        with anyio.fail_after(60):
            while json.loads(await ws.recv())["type"] != "ai_chunk":
                pass
    server.kill()  # mid-answer: the job's row says processing, its lease is held by a corpse

    restarted = start_server(data_dir=data_dir)
    job_ids = {running, queued, scheduled}
    async with connect(restarted.ws) as ws:
        received = await follow(ws, job_ids)
    for job_id in job_ids:
        check_stream(of_job(received, job_id))  # one job_completed each, a clean stream
        job = (await get_job(restarted.http, job_id))["data"]
        assert job["status"] == "completed" and job["progress"] == 100
    first_scheduled = next(r.at for r in received if r.event["job_id"] == scheduled)
    assert first_scheduled >= at


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
