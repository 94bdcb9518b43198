"""Jobs per second through the queue machinery, with an instant job body: the real worker loop
(claim, lease and heartbeat, the before-claim sweep) and the real journal (each event written to
the job's row and log, then published on the bus), on SQLite with the in-process bus, PostgreSQL
with NOTIFY, and PostgreSQL with Redis. The job body emits what a job answering at once emits
(three job_update, two ai_chunk, job_completed) but reads no document and runs no model.

The baseline, in the same rounds: the bare store loop, ``claim()`` then ``emit()`` of the
completion (no other event, no bus, no worker loop), with as many concurrent loops as the worker
has slots. The ratio shows what the events and the worker loop cost on top.

    .venv/bin/python -m benchmarks.job_rate [--jobs 300] [--slots 1,4] [--profile SETUP]
                                            [--no-report]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import logging
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import anyio
from tests.env import redis_url
from tests.fakes import ScriptedProvider

import doclane.worker
from benchmarks.claims import database, server_versions
from benchmarks.report import write_section
from doclane import messages
from doclane.events import EventBus, open_bus
from doclane.jobs import Change, DocumentKind, JobStatus, JobStore, NewJob, open_store
from doclane.journal import Journal
from doclane.runner import JobRun
from doclane.settings import Settings
from doclane.storage import LocalStorage
from doclane.worker import Worker

ROUNDS = 3
SETUPS = {  # name: (database, Redis bus)
    "sqlite + memory bus": ("sqlite", False),
    "postgresql + NOTIFY bus": ("postgresql", False),
    "postgresql + Redis bus": ("postgresql", True),
}
CHUNKS = ("> Source, p. 2: Revenue in 2024 was 4.2 million dollars.", "\n\nRevenue was $4.2M.")
EVENTS_PER_JOB = 3 + len(CHUNKS) + 1
# Worker jobs/s and ratio to the bare loop before the scale-out work on the journal (docs/
# benchmarks.md as measured on commit 6a127db's src/): each event its own transaction and its
# own publish round trip, the sweep before each claim.
BEFORE = {
    ("sqlite + memory bus", 1): (814, 0.15),
    ("sqlite + memory bus", 4): (674, 0.16),
    ("postgresql + NOTIFY bus", 1): (236, 0.20),
    ("postgresql + NOTIFY bus", 4): (511, 0.18),
    ("postgresql + Redis bus", 1): (193, 0.15),
    ("postgresql + Redis bus", 4): (449, 0.17),
}


async def instant_job(run: JobRun, *_: object) -> None:
    """Stands in for runner.run_job: the events of a job whose reading and model take no time
    (the reader's start and end, the question read, the opening quote, the model's one flush
    of an instant provider, the completion), each through the journal as the runner sends it."""
    await run.report(1, "Reading the document")
    await run.report(30, "Reading the document")
    await run.report(35, "Reading the question")
    for chunk in CHUNKS:
        await run.add_chunk(chunk)
    await run.complete()


@dataclass
class Setup:
    name: str
    settings: Settings
    store: JobStore
    bus: EventBus
    completed: int = 0
    events: int = 0
    done: anyio.Event = field(default_factory=anyio.Event)
    target: int = 0
    bare: list[float] = field(default_factory=list)  # jobs/s of each round
    worker: list[float] = field(default_factory=list)

    def saw(self, event: dict[str, object]) -> None:
        self.events += 1
        if event["type"] == "job_completed":
            self.completed += 1
            if self.completed >= self.target:
                self.done.set()


@asynccontextmanager
async def opened(name: str, folder: Path, slots: int) -> AsyncIterator[Setup]:
    """The store and bus of a setup, the bus's relay running, one subscriber counting events."""
    backend, with_redis = SETUPS[name]
    stream = f"doclane:bench:{uuid.uuid4().hex}"
    with database(backend) as url:
        settings = Settings(
            data_dir=folder,
            database_url=url,
            redis_url=redis_url() if with_redis else None,
            redis_stream=stream,
            worker_concurrency=slots,
        )
        store = open_store(url)
        await store.open()
        bus = open_bus(settings, store)
        await bus.open()
        setup = Setup(name, settings, store, bus)
        try:
            async with anyio.create_task_group() as tg, bus.subscribe(10**7) as events:
                tg.start_soon(bus.relay)

                async def count() -> None:
                    async for event in events:
                        setup.saw(event)

                tg.start_soon(count)
                yield setup
                tg.cancel_scope.cancel()
        finally:
            await bus.close()
            await store.close()
            if with_redis:
                import redis

                with redis.Redis.from_url(redis_url()) as client:
                    client.delete(stream)


async def add_due(store: JobStore, count: int) -> None:
    for _ in range(count):
        job_id = str(uuid.uuid4())
        await store.create(NewJob(job_id, "a.csv", job_id, DocumentKind.CSV, "q", 0, time.time()))


async def bare_round(setup: Setup, jobs: int, slots: int) -> float:
    await add_due(setup.store, jobs)

    async def loop() -> None:
        while (job := await setup.store.claim("bench", 60)) is not None:
            await setup.store.emit(
                job.job_id,
                "bench",
                Change(progress=100, answer="ok", status=JobStatus.COMPLETED),
                messages.job_completed(job.job_id, "ok"),
            )

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(slots):
            tg.start_soon(loop)
    return jobs / (time.perf_counter() - started)


async def worker_round(setup: Setup, jobs: int, profiler: cProfile.Profile | None = None) -> float:
    await add_due(setup.store, jobs)
    setup.completed, setup.events, setup.target = 0, 0, jobs
    setup.done = anyio.Event()
    journal = Journal(setup.store, setup.bus)
    worker = Worker(
        setup.settings, journal, ScriptedProvider(), LocalStorage(setup.settings.data_dir)
    )
    with mock.patch.object(doclane.worker, "run_job", instant_job):
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            with anyio.fail_after(120):
                await setup.done.wait()  # the last job_completed reached a subscriber
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        if profiler:
            profiler.disable()
    await anyio.sleep(0.2)  # stragglers (there should be none) would show in the count below
    assert setup.events == jobs * EVENTS_PER_JOB, (setup.events, jobs * EVENTS_PER_JOB)
    return jobs / elapsed


def best(rates: list[float]) -> float:
    return max(rates)


async def measure(
    jobs: int, slot_counts: list[int], names: list[str], profile: str | None
) -> list[str]:
    rows = []
    for name in names:
        for slots in slot_counts:
            with tempfile.TemporaryDirectory() as folder:
                async with opened(name, Path(folder), slots) as setup:
                    await worker_round(setup, 20)  # warm: connections, statements, threads
                    await bare_round(setup, 20, slots)
                    for turn in range(ROUNDS):
                        if turn % 2:
                            setup.worker.append(await worker_round(setup, jobs))
                            setup.bare.append(await bare_round(setup, jobs, slots))
                        else:
                            setup.bare.append(await bare_round(setup, jobs, slots))
                            setup.worker.append(await worker_round(setup, jobs))
                    worker, bare = best(setup.worker), best(setup.bare)
                    was, was_ratio = BEFORE.get((name, slots), (0, 0.0))
                    rows.append(
                        f"| {name} | {slots} | {worker:,.0f} | {bare:,.0f} | {worker / bare:.2f} "
                        f"| {was:,} | {was_ratio:.2f} |"
                    )
                    print(rows[-1], f"  (rounds: worker {setup.worker}, bare {setup.bare})")
                    if profile == name:
                        profiler = cProfile.Profile()
                        await worker_round(setup, jobs, profiler)
                        out = io.StringIO()
                        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
                        stats.print_stats(25)
                        print(out.getvalue())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per round")
    parser.add_argument("--slots", default="1,4", help="worker slots (and bare loops) to try")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated")
    parser.add_argument("--profile", help="profile one more worker round of this setup")
    parser.add_argument("--no-report", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # idle slots' queries cancelled at the end
    names = args.setups.split(",")
    slots = [int(n) for n in args.slots.split(",")]
    load = os.getloadavg()[0]
    # uvloop, as `doclane worker` and `doclane serve` run (cli.py, uvicorn's default)
    uvloop = {"use_uvloop": True}
    rows = anyio.run(measure, args.jobs, slots, names, args.profile, backend_options=uvloop)
    end_load = os.getloadavg()[0]
    if args.no_report:
        return
    write_section(
        "job-rate",
        f"""### Jobs per second

`benchmarks/job_rate.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average
{load:.1f} at the start, {end_load:.1f} at the end), {server_versions(["postgresql"])}, Redis
on the same host. One process on uvloop, as `doclane worker` runs: the real worker loop (the
claim, a heartbeat task holding the lease, the sweep for exhausted jobs each second) and the
real journal, with a job body that emits at once what a job answering instantly emits: three
`job_update`, two `ai_chunk`, `job_completed` ({EVENTS_PER_JOB} events, each written to the
job's row and log, then published; the run's writer writes those waiting together in one
transaction; a subscriber in the same process counts them as the bus delivers them, so a job
counts once its `job_completed` reached it). The body reads no document: reading one always
costs a reader process, 17-43 ms, measured in `benchmarks/isolation.py`. The baseline is the
bare store loop in the same rounds: `claim()` then `emit()` of the completion alone (no other
event, no bus), as many loops as the worker has slots. {args.jobs} jobs a round, best of
{ROUNDS} rounds taken in turns. *Before* is this section as it stood before the journal's
batching (commit 6a127db's `src/`, plain asyncio): each event its own transaction and its own
publish round trip, the sweep before every claim. Goals: 1,000 jobs/s on SQLite, 500 on
PostgreSQL.

| setup | slots | worker jobs/s | bare claim+complete jobs/s | ratio | before: worker jobs/s \
| before: ratio |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
