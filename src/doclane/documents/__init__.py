"""Documents: sniff the real type, check an upload is readable, extract what a model reads.

Everything here is synchronous and CPU- or disk-bound: callers run it in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

from doclane.documents.image import check_image, extract_image
from doclane.documents.model import Document, Page, ReportProgress, ShouldStop
from doclane.documents.pdf import check_pdf, extract_pdf
from doclane.documents.sniff import HEAD_BYTES, sniff
from doclane.documents.tabular import extract_csv
from doclane.errors import EmptyFile, UnsupportedFileType
from doclane.jobs.model import DocumentKind

__all__ = ["Document", "Page", "ReportProgress", "ShouldStop", "extract", "inspect_upload"]

_EXTRACTORS = {
    DocumentKind.PDF: extract_pdf,
    DocumentKind.CSV: extract_csv,
    DocumentKind.IMAGE: extract_image,
}


def inspect_upload(path: Path) -> DocumentKind:
    """The kind of an uploaded file, after a cheap check that it opens; raises a 4xx error."""
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    if not head:
        raise EmptyFile("The file is empty")
    kind = sniff(head)
    if kind is None:
        raise UnsupportedFileType(
            "Unsupported file type: upload a PDF, a CSV file or an image (PNG, JPEG, WebP, "
            "GIF, TIFF, BMP)"
        )
    if kind is DocumentKind.PDF:
        check_pdf(path)
    elif kind is DocumentKind.IMAGE:
        check_image(path)
    return kind


def extract(
    path: Path, kind: DocumentKind, progress: ReportProgress, should_stop: ShouldStop
) -> Document:
    return _EXTRACTORS[kind](path, progress, should_stop)
