"""Warm a reader process up before it is needed.

A fresh process's first read of a kind costs 10-40 ms more than the next one: DuckDB's first
connection and query, PDFium's first document and font, tables and patterns built on first use.
A spare reader (doclane.sandbox) pays that ahead of need, while it waits for work, by reading two
tiny documents of its own through the same code as a job.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from doclane.documents import DEFAULT_LIMITS, read_document
from doclane.jobs.model import DocumentKind

TABLE = "region,amount\nnorth,10\nsouth,12\n"
TABLE_QUESTION = "What is the total amount by region?"  # planned and computed, as a job's is
PDF_LINE = b"Revenue was 10 in 2024. The total is 12."


def warm_up() -> None:
    with tempfile.TemporaryDirectory(prefix="doclane-warm-up-") as folder:
        table = Path(folder, "table.csv")
        table.write_text(TABLE, encoding="utf-8")
        read_document(_ignore, table, DocumentKind.CSV, TABLE_QUESTION, DEFAULT_LIMITS)
        pdf = Path(folder, "page.pdf")
        pdf.write_bytes(one_line_pdf(PDF_LINE))
        read_document(_ignore, pdf, DocumentKind.PDF, "What was the total?", DEFAULT_LIMITS)


def one_line_pdf(line: bytes) -> bytes:
    """A one-page PDF with ``line`` in Helvetica, written by hand: no PDF writer ships with the
    service, and this one needs nothing but a text layer."""
    content = b"BT /F1 12 Tf 72 720 Td (" + line + b") Tj ET"
    return pdf_of(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def pdf_of(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref table."""
    pdf = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    return bytes(pdf)


def _ignore(done: int, total: int, stage: str) -> None:
    pass
