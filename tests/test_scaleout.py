"""The distributed mode with real processes: two API replicas (`serve --no-worker`) and two
workers (`doclane worker`) on one PostgreSQL database and one Redis, as on separate hosts."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.documents import make_report_pdf
from tests.postgres import database_or_skip
from tests.prometheus import Samples, settled_samples
from tests.redis_server import redis_or_skip
from tests.server import ServerProcess
from tests.wsclient import FINAL_TYPES, check_stream, follow, get_job, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `doclane serve --no-worker` ("api") and `doclane worker` ("worker") processes that
    share a fresh database and a Redis stream of their own; all are stopped at the end."""
    started: list[ServerProcess] = []
    stream = f"doclane:test:{uuid.uuid4().hex}"
    with database_or_skip() as database_url, redis_or_skip(stream) as redis_url:
        env = {
            "DOCLANE_DATABASE_URL": database_url,
            "DOCLANE_REDIS_URL": redis_url,
            "DOCLANE_REDIS_STREAM": stream,
            "DOCLANE_STORAGE_URL": (tmp_path / "shared-volume").as_uri(),  # the one thing shared
            "DOCLANE_LEASE_SECONDS": "3",  # a killed worker's job is taken over after this
            "DOCLANE_MAX_ANSWER_TOKENS": "120",
        }

        def start(role: str, **more_env: str) -> ServerProcess:
            command = ("serve", "--no-worker") if role == "api" else ("worker",)
            data_dir = tmp_path / f"{role}{len(started)}"  # as on another host: nothing shared
            process = ServerProcess(data_dir, {**env, **more_env}, command=command)
            started.append(process)
            return process.start()

        try:
            yield start
        finally:
            for process in started:
                process.stop()


async def until_first_chunk(ws: ClientConnection, job_id: str) -> list[dict[str, Any]]:
    """The job's events up to its first ai_chunk (the answer is being written)."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(120):
        while not events or events[-1]["type"] != "ai_chunk":
            event = json.loads(await ws.recv())
            if event.get("job_id") == job_id:
                assert event["type"] not in FINAL_TYPES, event
                events.append(event)
    return events


def _leaseholder(job_id: str, workers: list[ServerProcess]) -> ServerProcess:
    """The worker process whose log says it runs the job."""
    for worker in workers:
        if f"job {job_id}: attempt" in worker.log():
            return worker
    raise AssertionError(f"no worker logged job {job_id}")


async def test_upload_on_one_replica_streams_on_the_other_across_a_worker_kill(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    api_a, api_b = cluster("api"), cluster("api")
    workers = [cluster("worker"), cluster("worker")]
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(api_a.ws) as ws:
        job_id = (await upload(api_b.http, pdf, "Write a long summary."))["data"]["job_id"]
        events = await until_first_chunk(ws, job_id)
        first = _leaseholder(job_id, workers)
        first.kill()  # mid-answer: its lease stops being renewed
        events += of_job(await follow(ws, {job_id}, timeout=180), job_id)

    answer = check_stream(events)  # one clean stream: in order, no gap, one job_completed
    survivor = next(w for w in workers if w is not first)
    assert f"job {job_id}: attempt 2" in survivor.log()
    for api in (api_a, api_b):
        job = (await get_job(api.http, job_id))["data"]
        assert job["status"] == "completed" and job["ai_response"] == answer


async def test_two_workers_take_due_jobs_in_priority_order(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    api = cluster("api")
    workers = [cluster("worker") for _ in range(2)]
    csv = tmp_path / "sales.csv"
    csv.write_text("region,revenue\nnorth,10\nsouth,20\n")
    due = math.ceil(time.time()) + 4  # every job falls due at once, after all are queued
    at = datetime.fromtimestamp(due, UTC).isoformat()
    priorities = [3, 1, 6, 2, 5, 4]
    async with connect(api.ws) as ws:
        by_job = {}
        for priority in priorities:
            body = await upload(
                api.http, csv, "What is the total revenue?", priority=str(priority), scheduled_at=at
            )
            by_job[body["data"]["job_id"]] = priority
        received = await follow(ws, set(by_job), timeout=180)

    started: list[int] = []
    for r in received:
        event = r.event
        if event.get("status") == "processing" and event["job_id"] not in started:
            started.append(event["job_id"])
    order = [by_job[job_id] for job_id in started]
    assert sorted(order) == sorted(priorities)
    # Two workers may claim two jobs at the same moment and report them in either order, so
    # only priorities two or more apart must start in order.
    for i, high in enumerate(order):
        assert all(later <= high + 1 for later in order[i + 1 :]), order
    for job_id in by_job:
        assert check_stream(of_job(received, job_id))

    # Each worker serves its own probes and metrics; between them, they ran the six jobs.
    async with httpx.AsyncClient(timeout=30) as http:
        for worker in workers:
            ready = await http.get(f"{worker.http}/api/ready")
            assert ready.status_code == 200 and ready.json()["data"]["model"] == "ok", ready.text
        found = await settled_samples(
            http, [f"{w.http}/metrics" for w in workers], lambda f: runs(f) >= len(priorities)
        )
    completed = [runs([f]) for f in found]
    assert sum(completed) == len(priorities), (completed, [outcomes(f) for f in found])


def outcomes(found: Samples) -> dict[str, float]:
    """A process's job runs by outcome."""
    return {
        dict(labels)["outcome"]: n
        for (name, labels), n in found.items()
        if name == "doclane_job_runs_total"
    }


def runs(found: list[Samples]) -> float:
    """Completed job runs, over every process's metrics."""
    return sum(f.get(("doclane_job_runs_total", (("outcome", "completed"),)), 0) for f in found)


async def test_a_stopped_worker_hands_its_job_back_at_once(
    cluster: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    api = cluster("api")
    # Leases far longer than the test waits: only a hand-back lets the other worker take over.
    workers = [cluster("worker", DOCLANE_LEASE_SECONDS="120") for _ in range(2)]
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(api.ws) as ws:
        job_id = (await upload(api.http, pdf, "Write a long summary."))["data"]["job_id"]
        events = await until_first_chunk(ws, job_id)
        first = _leaseholder(job_id, workers)
        stopped_at = time.time()
        first.stop()  # SIGTERM: a graceful stop hands the job back uncounted
        received = await follow(ws, {job_id}, timeout=180)
    events += of_job(received, job_id)
    check_stream(events)
    survivor = next(w for w in workers if w is not first)
    assert f"job {job_id}: attempt 1" in survivor.log()  # handed back: not counted as a run
    resumed = next(r.at for r in received if r.event["type"] == "ai_chunk")
    assert resumed - stopped_at < 30, "the job waited for its lease instead of a hand-back"
