"""OCR seconds per scanned page through doclane's extractor, next to raw tesseract on the same
pixels measured in the same run, so the ratio is doclane's overhead (page detection, rendering,
the noise check and filter) and the error rates show what the filter buys.

    .venv/bin/python -m benchmarks.ocr [--pages N] [--repeat R]

Run from the repository root with the test extras installed (the scans are made by
tests/documents.py). Prints a table and writes it into docs/benchmarks.md between the
<!-- ocr --> markers, leaving the rest of the file alone.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium
import tesserocr
from tests.documents import make_pdf, scan, speckle

from benchmarks.report import write_section
from doclane.documents import extract
from doclane.documents.ocr import tessdata_dir
from doclane.jobs import DocumentKind

DPI = 300  # a common scanner setting; doclane renders a scan at its own resolution
LINES_PER_PAGE = 36
NOISE = 0.02  # share of pixels flipped to black or white
SENTENCES = (
    "The board approved the annual budget for the new office in Lisbon.",
    "Revenue grew by {n} percent while operating costs fell again.",
    "Shipments to Norway and Portugal doubled compared with last year.",
    "Customers reported {n} delays at the Rotterdam warehouse in May.",
    "The invoice total of {n} euros is payable within thirty days.",
    "The contract was renewed until March for {n} staff members.",
)


def page_lines(rng: random.Random) -> list[str]:
    return [
        rng.choice(SENTENCES).format(n=f"{rng.randrange(10, 99999):,}")
        for _ in range(LINES_PER_PAGE)
    ]


def distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        previous = current
    return previous[-1]


def error_rate(truth: list[str], text: str) -> float:
    """Character error rate, line by line (whole-page edit distance is too slow in Python)."""
    read = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    if len(read) != len(truth):
        read = [" ".join(read)]
        truth = [" ".join(truth)]
    errors = sum(distance(want, got) for want, got in zip(truth, read, strict=True))
    return errors / sum(len(line) for line in truth)


def measure(
    pages: list[list[str]], noise: float, folder: Path, repeat: int
) -> tuple[float, float, float, float]:
    """(doclane s/page, raw tesseract s/page, doclane CER, raw CER) over the pages. The two
    are timed by turns and the fastest run of each is kept, as other work on the machine only
    ever adds time."""
    scans = [scan(lines, dpi=DPI) for lines in pages]
    if noise:
        scans = [speckle(image, noise, seed) for seed, image in enumerate(scans)]
    pdf = make_pdf(folder / f"scan-{noise}.pdf", scans)
    with pdfium.PdfDocument(pdf) as document:
        # copy(): to_pil() shares the bitmap's memory, which PDFium frees with the bitmap
        bitmaps = [page.render(scale=DPI / 72, grayscale=True) for page in document]
        rendered = [bitmap.to_pil().copy() for bitmap in bitmaps]

    doclane_runs, raw_runs = [], []
    with tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang="eng") as engine:
        for _ in range(repeat):
            started = time.perf_counter()
            extracted = extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False)
            doclane_runs.append(time.perf_counter() - started)
            started = time.perf_counter()
            texts = []
            for image in rendered:
                engine.SetImage(image)
                texts.append(engine.GetUTF8Text())
            raw_runs.append(time.perf_counter() - started)

    by_number = {page.number: page.text for page in extracted.pages}
    doclane_cer = [error_rate(lines, by_number.get(n, "")) for n, lines in enumerate(pages, 1)]
    raw_cer = [error_rate(lines, text) for lines, text in zip(pages, texts, strict=True)]
    n = len(pages)
    return min(doclane_runs) / n, min(raw_runs) / n, sum(doclane_cer) / n, sum(raw_cer) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3, help="scanned pages per case")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs; the fastest counts")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # recorded: other work on the machine slows every figure
    rng = random.Random(7)
    pages = [page_lines(rng) for _ in range(args.pages)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, noise in (("clean", 0.0), (f"{NOISE:.0%} salt-and-pepper noise", NOISE)):
            doclane_s, raw_s, doclane_cer, raw_cer = measure(
                pages, noise, Path(folder), args.repeat
            )
            rows.append(
                f"| {label} | {doclane_s:.2f} | {raw_s:.2f} | {doclane_s / raw_s:.2f} | "
                f"{doclane_cer:.1%} | {raw_cer:.1%} |"
            )
            print(rows[-1], flush=True)
    write_section(
        "ocr",
        "\n".join(
            [
                "## OCR",
                "",
                f"`benchmarks/ocr.py`, {datetime.date.today()}, {os.cpu_count()} cores (load "
                f"average {load:.1f} at the start), "
                f"{tesserocr.tesseract_version().splitlines()[0]}: A4 pages scanned at {DPI} dpi "
                f"({LINES_PER_PAGE} lines of 12 pt print, {args.pages} pages a case, best of "
                f"{args.repeat} runs) in an "
                "image-only PDF. *doclane* is `extract()` on the PDF (page detection, rendering, "
                "the noise check and filter, OCR); *raw* is tesseract alone on the same pages, "
                "rendered beforehand at the same resolution. Error rates are of characters.",
                "",
                "| scan | doclane s/page | raw s/page | ratio | doclane errors | raw errors |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        ),
    )


if __name__ == "__main__":
    main()
