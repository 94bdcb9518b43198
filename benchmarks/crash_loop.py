"""Crash safety under fire: SIGKILL the embedded server 100 times while it works through a
queue, then count lost jobs and duplicated completions. The baseline is the same queue run
once without kills, in the same run: the ratio is what the crashes cost in wall time.

    .venv/bin/python -m benchmarks.crash_loop [--kills 100] [--jobs 10]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import anyio
from tests.crashloop import crash_loop

from benchmarks.report import write_section


async def measure(kills: int, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        baseline = await crash_loop(Path(folder) / "calm" / "data", kills=0, jobs=jobs)
        calm_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = await crash_loop(Path(folder) / "crashes" / "data", kills=kills, jobs=jobs)
        crash_seconds = time.perf_counter() - started
    assert baseline.lost == 0
    row = (
        f"| {report.kills} | {report.jobs} | {report.reruns} | {report.lost} | "
        f"{report.duplicated_completions} | {report.seq_mismatches} | {crash_seconds:.0f} | "
        f"{calm_seconds:.0f} | {crash_seconds / calm_seconds:.1f} |"
    )
    print(row)
    write_section(
        "crash-loop",
        f"""## Crash loop

`benchmarks/crash_loop.py`, {datetime.date.today()}, {os.cpu_count()} cores. The embedded server
(SQLite, in-process worker, the local model) is killed with SIGKILL at varied moments while it
works through the queue, restarted, and finally left to finish; every kill loses the process
and whatever job it was running. *Re-runs* counts jobs caught mid-run. *Mismatches* counts live
events that differ from the job's event log at the same seq (a resuming client would see a
different stream). The baseline is the same queue without kills.

| kills | jobs | re-runs | lost | dup. completions | mismatches | seconds | baseline s | ratio |
|---|---|---|---|---|---|---|---|---|
{row}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    anyio.run(measure, args.kills, args.jobs)


if __name__ == "__main__":
    main()
