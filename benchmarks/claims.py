"""Claim cost against the size of the queue: a worker's claim + complete, one job at a time,
with 0, 10,000 and 100,000 jobs scheduled for tomorrow waiting in the same table, on SQLite and
on PostgreSQL. Each figure is set against the empty backlog of the same backend in the same run;
the backlogs take turns in rounds, so a slow spell of the (shared) machine hits them all alike.

    .venv/bin/python -m benchmarks.claims [--jobs 1000] [--backlogs 0,10000,100000]
                                          [--backends sqlite,postgresql] [--no-report]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from benchmarks.report import write_section
from doclane import messages
from doclane.jobs import Change, DocumentKind, JobStatus, JobStore, NewJob, open_store

ROUNDS = 10
DAY = 86_400.0


@dataclass
class Run:
    backend: str
    backlog: int
    store: JobStore
    claims: list[float] = field(default_factory=list)  # seconds
    cycles: list[float] = field(default_factory=list)  # claim + complete, seconds


async def add(store: JobStore, count: int, run_at: float, tasks: int = 8) -> None:
    """Create jobs through the store (so each lands in the state the store gives it)."""

    async def creator(share: int) -> None:
        for _ in range(share):
            job_id = str(uuid.uuid4())
            await store.create(NewJob(job_id, "a.csv", job_id, DocumentKind.CSV, "q", 0, run_at))

    async with anyio.create_task_group() as tg:
        for task in range(tasks):
            tg.start_soon(creator, count // tasks + (task < count % tasks))


async def cycle(run: Run) -> None:
    started = time.perf_counter()
    job = await run.store.claim("bench", 60)
    claimed = time.perf_counter()
    assert job is not None and job.run_at <= time.time(), "claimed a job before it was due"
    await run.store.emit(
        job.job_id,
        "bench",
        Change(progress=100, answer="ok", status=JobStatus.COMPLETED),
        messages.job_completed(job.job_id, "ok"),
    )
    run.claims.append(claimed - started)
    run.cycles.append(time.perf_counter() - started)


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'jobs.db'}"
    else:
        from tests.postgres import fresh_database

        with fresh_database("doclane_bench") as url:
            yield url


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def row(run: Run, empty: Run) -> str:
    rate, empty_rate = len(run.cycles) / sum(run.cycles), len(empty.cycles) / sum(empty.cycles)
    claim, empty_claim = statistics.median(run.claims), statistics.median(empty.claims)
    return (
        f"| {run.backend} | {run.backlog:,} | {ms(claim)} | {ms(p99(run.claims))} | "
        f"{ms(statistics.median(run.cycles))} | {ms(p99(run.cycles))} | {rate:,.0f} | "
        f"{claim / empty_claim:.2f} | {rate / empty_rate:.2f} |"
    )


def server_versions(backends: list[str]) -> str:
    versions = [f"SQLite {sqlite3.sqlite_version}"]
    if "postgresql" in backends:
        import psycopg
        from tests.env import postgres_admin_url

        with psycopg.connect(postgres_admin_url()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        versions.append(f"PostgreSQL {row[0].split()[0] if row else '?'}")
    return ", ".join(versions)


class CommitFloor:
    """A bare one-row INSERT that waits for the disk, timed in the same turns as the runs: the
    least any durable write (such as a job's completion) costs on this server."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TABLE commit_floor (x integer)")
        self.times: list[float] = []

    def time(self, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            self.conn.execute("INSERT INTO commit_floor VALUES (1)")
            self.times.append(time.perf_counter() - started)


async def measure(jobs: int, backlogs: list[int], backends: list[str]) -> tuple[list[str], str]:
    rows, floor = [], ""
    for backend in backends:
        async with AsyncExitStack() as stack:
            runs = []
            for backlog in backlogs:
                url = stack.enter_context(database(backend))
                store = open_store(url)
                await store.open()
                stack.push_async_callback(store.close)
                started = time.perf_counter()
                await add(store, backlog, time.time() + DAY)
                await add(store, jobs, time.time())
                print(
                    f"{backend}: {backlog:,} scheduled + {jobs:,} due jobs created in "
                    f"{time.perf_counter() - started:.1f} s"
                )
                runs.append(Run(backend, backlog, store))
            commits = CommitFloor(url) if backend == "postgresql" else None
            for turn in range(ROUNDS):
                first = turn % len(runs)  # each backlog goes first in turn, too
                for run in runs[first:] + runs[:first]:
                    for _ in range(jobs // ROUNDS):
                        await cycle(run)
                if commits:
                    commits.time(jobs // ROUNDS)
            for run in runs:
                assert await run.store.claim("bench", 60) is None  # only tomorrow's jobs left
                rows.append(row(run, runs[0]))
                print(rows[-1])
            if commits:
                commits.conn.close()
                floor = (
                    f"A bare one-row INSERT that waits for the disk took {ms(p50(commits.times))}"
                    f" ms (p50; p99 {ms(p99(commits.times))}) on this server in the same turns."
                )
                print(floor)
    return rows, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="due jobs claimed per backlog")
    parser.add_argument("--backlogs", default="0,10000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-report", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    backlogs = [int(n) for n in args.backlogs.split(",")]
    backends = args.backends.split(",")
    load = os.getloadavg()[0]
    rows, floor = anyio.run(measure, args.jobs, backlogs, backends)
    if args.no_report:
        return
    write_section(
        "claims",
        f"""## Claim cost against the queue

`benchmarks/claims.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average {load:.1f}
at the start), {server_versions(backends)}. One process, one worker, one job at a time:
`claim()` then `emit()` of the job's completion, for {args.jobs:,} due jobs, while the same
table holds a backlog of jobs scheduled for tomorrow (created through the store, priority 0,
before the due ones). The backlogs take turns in {ROUNDS} rounds. Ratios are against the empty
backlog of the same backend in this run (goal: ~1.0, a claim that does not grow with the queue).
On PostgreSQL the completion is a durable commit (it waits for the disk); a claim is not (see
`jobs/postgres.py`: a claim lost in a crash only hands the job back).
{floor}

| backend | scheduled backlog | claim p50 ms | claim p99 ms | claim+complete p50 ms | p99 ms \
| jobs/s | claim p50 vs empty | jobs/s vs empty |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
