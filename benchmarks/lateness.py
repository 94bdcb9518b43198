"""Schedule lateness: jobs scheduled at known instants, spread over a few seconds, while idle
workers wait; how long after its ``run_at`` each job is claimed, on SQLite and on PostgreSQL.
The baseline is the same wait in the same process at the same time: a task that sleeps with
``anyio.sleep`` to each instant and notes how late it wakes.

    .venv/bin/python -m benchmarks.lateness [--jobs 60] [--seconds 6] [--no-report]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import anyio
from tests.fakes import ScriptedProvider

import doclane.worker
from benchmarks.claims import ms, p50, server_versions
from benchmarks.job_rate import Setup, instant_job, opened
from benchmarks.report import write_section
from doclane.jobs import DocumentKind, NewJob
from doclane.journal import Journal
from doclane.runner import JobRun
from doclane.storage import LocalStorage
from doclane.worker import Worker

SETUPS = ("sqlite + memory bus", "postgresql + NOTIFY bus")
SLOTS = 2
LEAD = 1.0  # seconds between queuing the jobs and the first instant: the workers are idle


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]  # within the sample


def instants(count: int, seconds: float, rng: random.Random) -> list[float]:
    """Offsets in seconds: one per step of the spread, at a random point in its first half (so
    two jobs are always at least half a step apart and never queue behind each other)."""
    step = seconds / count
    return [LEAD + i * step + rng.uniform(0, step / 2) for i in range(count)]


async def one_setup(setup: Setup, offsets: list[float]) -> tuple[list[float], list[float]]:
    """Lateness of each job's claim, and of a plain sleep to the same instants (seconds)."""
    claims: list[float] = []
    sleeps: list[float] = []
    finished = anyio.Event()

    def check() -> None:
        if len(claims) == len(offsets) and len(sleeps) == len(offsets):
            finished.set()

    async def timed_job(run: JobRun, *rest: object) -> None:
        claims.append(time.time() - run.job.run_at)  # the claim has just returned this job
        check()
        await instant_job(run, *rest)

    async def sleeper(at: list[float]) -> None:
        for instant in at:
            await anyio.sleep(instant - time.time())
            sleeps.append(time.time() - instant)
            check()

    journal = Journal(setup.store, setup.bus)
    worker = Worker(
        setup.settings, journal, ScriptedProvider(), LocalStorage(setup.settings.data_dir)
    )
    with mock.patch.object(doclane.worker, "run_job", timed_job):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await anyio.sleep(0.5)  # the workers find nothing and wait
            start = time.time()
            at = [start + offset for offset in offsets]
            for instant in at:
                job_id = str(uuid.uuid4())
                new = NewJob(job_id, "a.csv", job_id, DocumentKind.CSV, "q", 0, instant)
                await setup.store.create(new)
            assert time.time() < at[0], "queuing took longer than the lead"
            tg.start_soon(sleeper, at)
            with anyio.fail_after(offsets[-1] + 30):
                await finished.wait()
            tg.cancel_scope.cancel()
    return claims, sleeps


def row(name: str, claims: list[float], sleeps: list[float]) -> str:
    early = sum(1 for late in claims if late < 0)
    return (
        f"| {name} | {len(claims)} | {ms(p50(claims))} | {ms(p99(claims))} | "
        f"{ms(max(claims))} | {early} | {ms(p50(sleeps))} | {ms(p99(sleeps))} | "
        f"{p99(claims) / p99(sleeps):.1f} | {ms(p99(claims) - p99(sleeps))} |"
    )


async def measure(count: int, seconds: float, names: list[str]) -> list[str]:
    rows = []
    rng = random.Random(9)
    for name in names:
        with tempfile.TemporaryDirectory() as folder:
            async with opened(name, Path(folder), SLOTS) as setup:
                claims, sleeps = await one_setup(setup, instants(count, seconds, rng))
        rows.append(row(name.split(" + ")[0], claims, sleeps))
        print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=6.0, help="the spread of the instants")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--no-report", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # cancelled idle queries at the end
    load = os.getloadavg()[0]
    rows = anyio.run(measure, args.jobs, args.seconds, args.setups.split(","))
    if args.no_report:
        return
    write_section(
        "lateness",
        f"""### Schedule lateness

`benchmarks/lateness.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average
{load:.1f} at the start), {server_versions(["postgresql"])}. One worker of {SLOTS} slots (the
real loop, instant job bodies) waits idle; {args.jobs} jobs are queued at once, scheduled at
instants spread over {args.seconds:g} s (one per {args.seconds / args.jobs * 1000:.0f} ms step,
at a random point in its first half). *Late* is the time from a job's `run_at` to the moment
the claim returned it, by this process's clock (PostgreSQL decides what is due by its own
clock, on the same host here); *early* counts claims before `run_at`. The baseline is a task in
the same process sleeping with `anyio.sleep` to the same instants at the same time. Goal: p99
at most 100 ms, never early.

| database | jobs | late p50 ms | late p99 ms | late max ms | early | sleep late p50 ms \
| sleep late p99 ms | p99 ratio | p99 over the sleep ms |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
