"""PDF text extraction speed: doclane's extractor against poppler's pdftotext, same 200-page
PDF, same run (goal: at least 0.8x its pages per second).

    .venv/bin/python -m benchmarks.pdf_text      (needs pdftotext: apt-get install poppler-utils)
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.documents import make_pdf

from benchmarks.report import write_section
from doclane.documents import extract
from doclane.jobs import DocumentKind

PAGES = 200
LINES_PER_PAGE = 45
REPEATS = 5


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        raise SystemExit("pdftotext is missing: apt-get install poppler-utils")
    with tempfile.TemporaryDirectory() as folder:
        words = "revenue staff growth customers quarter budget region plan risk market".split()
        pages = [
            [
                " ".join(words[(p + i + k) % len(words)] for k in range(12)) + f" {p}.{i}"
                for i in range(LINES_PER_PAGE)
            ]
            for p in range(PAGES)
        ]
        pdf = make_pdf(Path(folder) / "long.pdf", pages)
        doclane = best_of(
            REPEATS, lambda: extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False)
        )
        poppler = best_of(
            REPEATS,
            lambda: subprocess.run(
                [pdftotext, "-q", str(pdf), "-"], check=True, stdout=subprocess.DEVNULL
            ),
        )
    version = subprocess.run([pdftotext, "-v"], capture_output=True, text=True).stderr.split()[2]
    row = f"| {PAGES} | {PAGES / doclane:.0f} | {PAGES / poppler:.0f} | {poppler / doclane:.2f} |"
    print(row)
    write_section(
        "pdf-text",
        f"""## PDF text extraction

`benchmarks/pdf_text.py`, {datetime.date.today()}, {os.cpu_count()} cores: a {PAGES}-page text
PDF ({LINES_PER_PAGE} lines a page), best of {REPEATS}. *doclane* is `extract()` (pypdfium2 page
by page, text cleaning, scan detection, running-header removal); the baseline is poppler's
`pdftotext` {version} on the same file. Ratio = doclane's pages/s over pdftotext's (goal
≥ 0.8).

| pages | doclane pages/s | pdftotext pages/s | ratio |
|---|---|---|---|
{row}
""",
    )


if __name__ == "__main__":
    main()
