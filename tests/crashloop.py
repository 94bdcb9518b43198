"""Kill a doclane server with SIGKILL again and again while it works through a queue, then let
it finish, and count lost jobs and duplicated completions. Used by the fault test (20 kills)
and by benchmarks/crash_loop.py (100 kills)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.client import connect

from doclane.jobs import open_store
from tests.documents import make_report_pdf
from tests.server import ServerProcess
from tests.wsclient import follow, get_job, upload

ENV = {
    # The crash loop kills the whole server mid-job many times: allow every interruption.
    "DOCLANE_MAX_ATTEMPTS": "1000",
    # A killed server's job runs again when its lease expires: keep the wait short.
    "DOCLANE_LEASE_SECONDS": "3",
    "DOCLANE_MAX_ANSWER_TOKENS": "40",
}


@dataclass
class CrashReport:
    kills: int
    jobs: int
    lost: int  # jobs not completed at the end
    duplicated_completions: int  # job_completed events beyond one per job, over all clients
    seq_mismatches: int  # live events that differ from the job's log at the same seq
    reruns: int  # job runs beyond the first: how many kills caught a job mid-run


async def _watch(server: ServerProcess, seen: list[dict[str, Any]]) -> None:
    """Record live events until the connection dies with the server."""
    try:
        async with connect(server.ws) as ws:
            async for raw in ws:
                seen.append(json.loads(raw))
    except (OSError, Exception):  # the server was killed under us
        return


async def crash_loop(data_dir: Path, kills: int, jobs: int) -> CrashReport:
    data_dir.mkdir(parents=True, exist_ok=True)
    pdf = make_report_pdf(data_dir.parent / "crash.pdf")
    seen: list[dict[str, Any]] = []
    job_ids: list[str] = []

    async def submit_once(server: ServerProcess) -> None:
        while len(job_ids) < jobs:
            body = await upload(server.http, pdf, f"Question {len(job_ids)}: what was revenue?")
            job_ids.append(body["data"]["job_id"])

    for kill in range(kills):
        server = ServerProcess(data_dir, ENV).start()
        try:
            await submit_once(server)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch, server, seen)
                await anyio.sleep(0.3 + (kill % 7) * 0.25)  # varied: hit every stage
                server.kill()
        finally:
            server.kill()

    server = ServerProcess(data_dir, ENV).start()
    try:
        await submit_once(server)
        async with connect(server.ws) as ws:
            for job_id in job_ids:
                await ws.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
            final = await follow(ws, set(job_ids), timeout=300)
        statuses = [(await get_job(server.http, job_id))["data"]["status"] for job_id in job_ids]
    finally:
        server.stop()
    store = open_store(f"sqlite:///{data_dir / 'doclane.db'}")
    await store.open()
    try:
        attempts = [job.attempts for job_id in job_ids if (job := await store.get(job_id))]
    finally:
        await store.close()

    log = {(r.event["job_id"], r.event["seq"]): r.event for r in final}
    completions = Counter(e["job_id"] for e in seen if e["type"] == "job_completed")
    mismatches = 0
    for event in seen:
        logged = log.get((event["job_id"], event["seq"]))
        if logged is None or {**event, "partial": None} != {**logged, "partial": None}:
            mismatches += 1
    return CrashReport(
        kills=kills,
        jobs=len(job_ids),
        lost=sum(status != "completed" for status in statuses),
        duplicated_completions=sum(count - 1 for count in completions.values() if count > 1),
        seq_mismatches=mismatches,
        reruns=sum(attempts) - len(job_ids),
    )
