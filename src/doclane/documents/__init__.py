"""Documents: sniff the real type, check an upload is readable, extract what a model reads.

Everything here is synchronous and CPU- or disk-bound: callers run it in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

from doclane.documents.image import check_image, extract_image
from doclane.documents.model import (
    DEFAULT_LIMITS,
    Document,
    Limits,
    Page,
    ReportProgress,
    ShouldStop,
)
from doclane.documents.pdf import check_pdf, extract_pdf
from doclane.documents.sniff import HEAD_BYTES, sniff
from doclane.documents.spreadsheet import check_spreadsheet, is_spreadsheet
from doclane.documents.tabular import extract_csv
from doclane.errors import EmptyFile, UnsupportedFileType
from doclane.jobs.model import DocumentKind

__all__ = [
    "Document",
    "Limits",
    "Page",
    "ReportProgress",
    "ShouldStop",
    "extract",
    "inspect_upload",
]


def inspect_upload(path: Path, limits: Limits = DEFAULT_LIMITS) -> DocumentKind:
    """The kind of an uploaded file, after a cheap check that it opens; raises a 4xx error."""
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    if not head:
        raise EmptyFile("The file is empty")
    if is_spreadsheet(head):
        check_spreadsheet(path)
        return DocumentKind.CSV  # read as the CSV of its first sheet
    kind = sniff(head)
    if kind is None:
        raise UnsupportedFileType(
            "Unsupported file type: upload a PDF, a CSV file, a spreadsheet (XLSX, XLS, ODS) "
            "or an image (PNG, JPEG, WebP, GIF, TIFF, BMP)"
        )
    if kind is DocumentKind.PDF:
        check_pdf(path, limits.max_pdf_pages)
    elif kind is DocumentKind.IMAGE:
        check_image(path, limits.max_image_pixels)
    return kind


def extract(
    path: Path,
    kind: DocumentKind,
    progress: ReportProgress,
    should_stop: ShouldStop,
    limits: Limits = DEFAULT_LIMITS,
) -> Document:
    if kind is DocumentKind.PDF:
        return extract_pdf(path, progress, should_stop, limits.max_pdf_pages)
    if kind is DocumentKind.IMAGE:
        return extract_image(path, progress, should_stop, limits.max_image_pixels)
    return extract_csv(path, progress, should_stop)
