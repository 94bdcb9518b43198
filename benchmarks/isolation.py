"""What reading documents in reader processes costs, and what the hostile corpus costs.

1. Time: a question about a normal 10-page PDF and about a normal CSV. The document's reading
   (text or profile, plus the question's figures) is timed in this process, as the worker did
   before readers existed (the baseline), and in a reader process, in turns; the difference is
   set against the time to the first answer chunk on a running server.
2. Memory: each file of the hostile corpus (tests/hostile.py) is uploaded to a real server while
   every process of it is sampled; the table shows the server's own peak and the largest reader.

    .venv/bin/python -m benchmarks.isolation [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import threading
import time
from pathlib import Path

import anyio
import httpx
from tests import hostile
from tests.documents import make_csv
from tests.server import ServerProcess
from tests.test_sandbox import wait_for_spares
from tests.wsclient import follow, of_job
from websockets.asyncio.client import connect

from benchmarks.first_token import QUESTION, ten_page_pdf, via_doclane
from benchmarks.report import write_section
from doclane import sandbox
from doclane.documents import DEFAULT_LIMITS, read_document
from doclane.documents.warmup import warm_up
from doclane.jobs import DocumentKind
from doclane.settings import Settings

CSV_QUESTION = "What is the total amount by region?"  # computed: the figures come first
CSV_OPEN_QUESTION = "Which regions are in this table?"  # nothing to compute: the model answers
TIME_COLUMNS = (
    "| document | in process ms | new reader ms | new: cost / first chunk | spare reader ms "
    "| spare: cost ms | first chunk s | spare: cost / first chunk |\n" + "|---" * 8 + "|"
)
CORPUS_ENV = {"DOCLANE_READER_STEP_SECONDS": "5", "DOCLANE_READER_TIMEOUT_SECONDS": "10"}


async def read_times(
    path: Path, kind: DocumentKind, question: str, repeats: int
) -> tuple[float, float, float]:
    """Best times for the job's reading of ``path``: in this process, in a new reader process,
    and in a warm spare one (``doclane serve``'s way)."""
    limits = Settings().reader_limits
    here, new, spare = float("inf"), float("inf"), float("inf")
    args = (read_document, path, kind, question, DEFAULT_LIMITS)
    for _ in range(repeats):
        started = time.perf_counter()
        await anyio.to_thread.run_sync(read_document, lambda *_: None, *args[1:])
        here = min(here, time.perf_counter() - started)
        await anyio.to_thread.run_sync(sandbox.stop)
        started = time.perf_counter()
        await sandbox.read("it", limits, None, *args)
        new = min(new, time.perf_counter() - started)
        await anyio.to_thread.run_sync(sandbox.start, warm_up)
        await anyio.to_thread.run_sync(wait_for_spares)
        started = time.perf_counter()
        await sandbox.read("it", limits, None, *args)
        spare = min(spare, time.perf_counter() - started)
    await anyio.to_thread.run_sync(sandbox.stop)
    return here, new, spare


async def first_chunk(server: ServerProcess, documents: list[Path], question: str) -> float:
    """Best time to the first chunk, a new document each time (a prompt llama.cpp has seen
    would come from its cache)."""
    return min([await via_doclane(server, path, question) for path in documents])


class Sampler:
    """Peak resident memory of a process and of every process below it, sampled every 20 ms."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid in _descendants(self.root) | {self.root}:
                peak = _peak_mb(pid)
                if peak is not None:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


CORPUS = {
    "XLSX, cell at the far corner": (hostile.far_corner_xlsx, "corner.xlsx"),
    "XLS, cell at the far corner": (hostile.corner_xls, "corner.xls"),
    "ODS, 8 million repeated cells": (
        lambda path: hostile.repeated_ods(path, rows=20_000, columns=400),
        "repeated.ods",
    ),
    "XLSX, 4 million shared strings": (hostile.shared_strings_xlsx, "strings.xlsx"),
    "PNG, 64 million pixels": (lambda path: hostile.bomb_png(path, 8000), "bomb.png"),
    "JPEG, thousands of progressive scans": (hostile.progressive_jpeg, "scans.jpg"),
    "PDF, 200 pages sharing a 5 MiB stream": (hostile.amplified_pdf, "shared.pdf"),
    "PDF, arrays nested 100,000 deep": (hostile.deeply_nested_pdf, "nested.pdf"),
    "CSV, one 50 MB line": (lambda path: hostile.long_line_csv(path, 50_000_000), "line.csv"),
}


async def corpus_memory(folder: Path) -> list[str]:
    rows = []
    server = ServerProcess(folder / "data", CORPUS_ENV).start()
    try:
        assert server.process is not None
        for name, (make, file_name) in CORPUS.items():
            path = make(folder / file_name)
            with Sampler(server.process.pid) as sampler:
                outcome = await _submit(server, path)
            readers = [peak for pid, peak in sampler.peaks.items() if pid != server.process.pid]
            rows.append(
                f"| {name} | {path.stat().st_size:,} | {outcome} | "
                f"{sampler.peaks.get(server.process.pid, 0):.0f} | {max(readers, default=0):.0f} |"
            )
            print(rows[-1])
    finally:
        server.stop()
    return rows


async def _submit(server: ServerProcess, path: Path) -> str:
    async with (
        connect(server.ws) as ws,
        httpx.AsyncClient(base_url=server.http, timeout=60) as http,
    ):
        with path.open("rb") as file:
            response = await http.post("/api/upload", files={"file": (path.name, file)})
        if response.status_code != 200:
            return f"{response.status_code} at upload"
        job_id = response.json()["data"]["job_id"]
        final = of_job(await follow(ws, {job_id}, timeout=120), job_id)[-1]
    return final["type"]


async def measure(repeats: int) -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pdf = ten_page_pdf(folder / "ten.pdf", seed=1)
        csv = make_csv(folder / "orders.csv", rows=10_000)
        pdf_times = await read_times(pdf, DocumentKind.PDF, QUESTION, repeats)
        csv_times = await read_times(csv, DocumentKind.CSV, CSV_QUESTION, repeats)
        open_times = await read_times(csv, DocumentKind.CSV, CSV_OPEN_QUESTION, repeats)
        pdfs = [ten_page_pdf(folder / f"ten-{n}.pdf", seed=n) for n in range(repeats)]
        csvs = [make_csv(folder / f"orders-{n}.csv", rows=10_000 + n) for n in range(repeats)]
        server = ServerProcess(folder / "data").start()
        try:
            pdf_first = await first_chunk(server, pdfs, QUESTION)
            csv_first = await first_chunk(server, csvs, CSV_QUESTION)
            open_first = await first_chunk(server, csvs, CSV_OPEN_QUESTION)
        finally:
            server.stop()
        corpus = await corpus_memory(folder)

    def row(name: str, times: tuple[float, float, float], first: float) -> str:
        here, new, spare = times
        return (
            f"| {name} | {here * 1000:.0f} | {new * 1000:.0f} | {(new - here) / first:+.1%} | "
            f"{spare * 1000:.0f} | {(spare - here) * 1000:+.0f} | {first:.2f} | "
            f"{(spare - here) / first:+.1%} |"
        )

    rows = [
        row("10-page PDF", pdf_times, pdf_first),
        row("CSV, 10,000 rows: a total by region", csv_times, csv_first),
        row("CSV, 10,000 rows: an open question", open_times, open_first),
    ]
    print("\n".join(rows))
    write_section(
        "isolation",
        f"""## Reader processes: what isolation costs

`benchmarks/isolation.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average
{load:.1f} at the start), best of {repeats}.
A job's reading of the document (text or table profile, plus the question's computed figures)
in the worker's own process, as before reader processes existed (the baseline), against the
same reading in a reader process (limits, the result back through a pipe), in turns: a *new*
reader forked for the read, and a *spare* of the two that `doclane serve` keeps started and
warmed up ahead of need (read once both are ready; spares are refilled a second after a read,
so a third read within that second gets a new one). The cost is set against the
time to the first answer chunk of the same question on a running server (goal: at most 5%). A
question whose figures doclane computes gets them as its first chunk, before the model runs, so
its first chunk comes in a fraction of a second and the same cost weighs more there.

{TIME_COLUMNS}
{chr(10).join(rows)}

The hostile corpus (`tests/hostile.py`), each file uploaded to one server with
`DOCLANE_READER_MEMORY_MB=1024` (the default), a 5 s step and a 10 s document limit, while every
process of the server was sampled every 20 ms (peak resident memory, MB):

| file | bytes | outcome | server peak MB | largest reader MB |
|---|---|---|---|---|
{chr(10).join(corpus)}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    anyio.run(measure, parser.parse_args().repeats)


if __name__ == "__main__":
    main()
