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
from pathlib import Path

import pypdfium2
from tests.documents import make_pdf

from benchmarks.report import write_section
from benchmarks.timing import best_times
from doclane.documents import extract
from doclane.jobs import DocumentKind

PAGES = 200
LINES_PER_PAGE = 45
REPEATS = 9


def raw_pdfium(path: Path) -> None:
    """The floor under doclane's extractor: pypdfium2's text, page by page, nothing else."""
    pdf = pypdfium2.PdfDocument(path)
    for index in range(len(pdf)):
        page = pdf[index]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    pdf.close()


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
        times = best_times(
            REPEATS,
            {
                "doclane": lambda: extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False),
                "pdfium": lambda: raw_pdfium(pdf),
                "poppler": lambda: subprocess.run(
                    [pdftotext, "-q", str(pdf), "-"], check=True, stdout=subprocess.DEVNULL
                ),
            },
        )
        doclane, pdfium, poppler = times["doclane"], times["pdfium"], times["poppler"]
    version = subprocess.run([pdftotext, "-v"], capture_output=True, text=True).stderr.split()[2]
    row = (
        f"| {PAGES} | {PAGES / doclane:.0f} | {PAGES / pdfium:.0f} | {PAGES / poppler:.0f} | "
        f"{pdfium / doclane:.2f} | {poppler / doclane:.2f} |"
    )
    print(row)
    write_section(
        "pdf-text",
        f"""## PDF text extraction

`benchmarks/pdf_text.py`, {datetime.date.today()}, {os.cpu_count()} cores: a {PAGES}-page text
PDF ({LINES_PER_PAGE} lines a page), best of {REPEATS} runs taken in turns. *doclane* is
`extract()` (pypdfium2 page by page, read by a pool of processes, one per core, for PDFs of 64
pages or more; text cleaning, scan detection, running-header removal). The pool starts on the
first long PDF (~0.5 s, paid once per server process) and is warm in these runs, as in a
running server. The baselines are bare pypdfium2 text extraction in one process and poppler's
`pdftotext` {version}, on the same file. Each ratio is doclane's pages/s over the baseline's
(goal against pdftotext: ≥ 0.8).

| pages | doclane pages/s | pypdfium2 pages/s | pdftotext pages/s | vs pypdfium2 | vs pdftotext |
|---|---|---|---|---|---|
{row}
""",
    )


if __name__ == "__main__":
    main()
