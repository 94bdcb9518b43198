"""Crash safety of the embedded mode: kill -9 the server mid-answer, start it again, and every
job (the interrupted one, a queued one, a scheduled one) still completes exactly once; a client
that resumes from the last seq it saw gets the whole stream without gap or duplicate."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from tests.documents import make_report_pdf
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, get_job, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_kill_during_answer_then_restart(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {"DOCLANE_MAX_ANSWER_TOKENS": "200", "DOCLANE_LEASE_SECONDS": "3"}
    server = start_server(env, data_dir)
    pdf = make_report_pdf(tmp_path / "r.pdf")
    before: list[dict[str, Any]] = []
    async with connect(server.ws) as ws:
        running = (await upload(server.http, pdf, "Write a long summary."))["data"]["job_id"]
        queued = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        at = math.ceil(time.time()) + 6  # well after the kill below
        scheduled = (await upload(server.http, pdf, "Summarise.", scheduled_at=_iso(at)))["data"][
            "job_id"
        ]
        with anyio.fail_after(60):
            while not any(e["type"] == "ai_chunk" for e in before):
                before.append(json.loads(await ws.recv()))
    server.kill()  # mid-answer: the job's row says processing, its lease is held by a corpse

    restarted = start_server(env, data_dir)  # the running job waits out its lease (3 s)
    job_ids = {running, queued, scheduled}
    async with connect(restarted.ws) as resuming, connect(restarted.ws) as seed_client:
        for job_id in job_ids:
            seen = [e["seq"] for e in before if e["job_id"] == job_id]
            await resuming.send(
                json.dumps(
                    {"type": "subscribe", "job_id": job_id, "after_seq": max(seen, default=0)}
                )
            )
        async with anyio.create_task_group() as tg:
            results: dict[str, Any] = {}

            async def collect(name: str, connection: Any) -> None:
                results[name] = await follow(connection, job_ids)

            tg.start_soon(collect, "resuming", resuming)
            tg.start_soon(collect, "seed", seed_client)

    for job_id in job_ids:
        # Before the kill plus the resumed stream: one clean, complete stream per job.
        whole = [e for e in before if e["job_id"] == job_id] + of_job(results["resuming"], job_id)
        answer = check_stream(whole)
        job = (await get_job(restarted.http, job_id))["data"]
        assert job["status"] == "completed" and job["progress"] == 100
        assert job["ai_response"] == answer
    # A client that never subscribes still heals: its first chunk's partial is the whole
    # answer so far, including what was streamed before the crash.
    seen_text = "".join(e["chunk"] for e in before if e["type"] == "ai_chunk")
    first_chunk = next(e for e in of_job(results["seed"], running) if e["type"] == "ai_chunk")
    assert first_chunk["partial"].startswith(seen_text)
    first_scheduled = next(r.at for r in results["seed"] if r.event["job_id"] == scheduled)
    assert first_scheduled >= at


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
