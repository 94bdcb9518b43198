"""Documents: sniff the real type, check an upload is readable, extract what a model reads.

Everything here is synchronous and CPU- or disk-bound. Sniffing reads a file's first bytes in
pure Python; everything else runs native parsers on untrusted bytes, so the worker and the
upload route call it through a reader process (``doclane.sandbox``), never in their own.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from doclane.documents.image import check_image, extract_image
from doclane.documents.model import (
    DEFAULT_LIMITS,
    Document,
    Figures,
    Limits,
    Page,
    ReportProgress,
    ShouldStop,
)
from doclane.documents.pdf import check_pdf, extract_pdf
from doclane.documents.sniff import HEAD_BYTES, sniff
from doclane.documents.spreadsheet import convert_spreadsheet, is_spreadsheet
from doclane.documents.tablequery import compute
from doclane.documents.tabular import extract_csv
from doclane.errors import EmptyFile, UnsupportedFileType
from doclane.jobs.model import DocumentKind

__all__ = [
    "DEFAULT_LIMITS",
    "NOUNS",
    "Document",
    "Figures",
    "FileType",
    "Limits",
    "Page",
    "ReportProgress",
    "ShouldStop",
    "check_upload",
    "extract",
    "read_document",
    "sniff_head",
    "sniff_upload",
]


# How error messages name a document of each kind.
NOUNS = {
    DocumentKind.PDF: "the PDF",
    DocumentKind.IMAGE: "the image",
    DocumentKind.CSV: "the table",
}


class FileType(StrEnum):
    """What an upload's bytes are, which decides how it is checked and read."""

    PDF = "pdf"
    IMAGE = "image"
    TEXT_TABLE = "csv"  # CSV, TSV and friends: plain text, nothing native to check at upload
    SPREADSHEET = "spreadsheet"  # XLSX, XLS, ODS: read as the CSV of its first sheet

    @property
    def kind(self) -> DocumentKind:
        if self is FileType.PDF:
            return DocumentKind.PDF
        if self is FileType.IMAGE:
            return DocumentKind.IMAGE
        return DocumentKind.CSV

    @property
    def noun(self) -> str:
        """How error messages name it."""
        return "the spreadsheet" if self is FileType.SPREADSHEET else NOUNS[self.kind]


def sniff_upload(path: Path) -> FileType:
    """What the file is, from its first bytes (never its name); raises a 4xx error for an empty
    or unsupported file. Pure Python: safe in the server's own process."""
    with path.open("rb") as file:
        return sniff_head(file.read(HEAD_BYTES))


def sniff_head(head: bytes) -> FileType:
    """What a file is from its first HEAD_BYTES (all of it, if shorter), as sniff_upload says.
    Cheap (a few regular expressions over 8 KB): an upload sniffs the head it kept in memory,
    on the event loop."""
    if not head:
        raise EmptyFile("The file is empty")
    if is_spreadsheet(head):
        return FileType.SPREADSHEET
    kind = sniff(head)
    if kind is None:
        raise UnsupportedFileType(
            "Unsupported file type: upload a PDF, a CSV file, a spreadsheet (XLSX, XLS, ODS) "
            "or an image (PNG, JPEG, WebP, GIF, TIFF, BMP)"
        )
    return {DocumentKind.PDF: FileType.PDF, DocumentKind.IMAGE: FileType.IMAGE}.get(
        kind, FileType.TEXT_TABLE
    )


def check_upload(
    report: ReportProgress, path: Path, file_type: FileType, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Open the file with its reader, so that what cannot be read is refused before a job is
    queued (raises DocumentError). A spreadsheet's first sheet becomes its CSV file here, once.
    Runs native parsers: call it in a reader process."""
    report(0, 1, "Checking the file")
    if file_type is FileType.PDF:
        check_pdf(path, limits.max_pdf_pages)
    elif file_type is FileType.IMAGE:
        check_image(path, limits.max_image_pixels)
    elif file_type is FileType.SPREADSHEET:
        convert_spreadsheet(path, limits, report)


def extract(
    path: Path,
    kind: DocumentKind,
    progress: ReportProgress,
    should_stop: ShouldStop,
    limits: Limits = DEFAULT_LIMITS,
    with_picture: bool = False,
) -> Document:
    """What a model reads of the file; ``with_picture``: an image's picture too."""
    if kind is DocumentKind.PDF:
        return extract_pdf(path, progress, should_stop, limits.max_pdf_pages)
    if kind is DocumentKind.IMAGE:
        return extract_image(path, progress, should_stop, limits.max_image_pixels, with_picture)
    return extract_csv(path, progress, should_stop, limits)


def read_document(
    report: ReportProgress,
    path: Path,
    kind: DocumentKind,
    question: str,
    limits: Limits,
    with_picture: bool = False,
) -> tuple[Document, Figures]:
    """A job's whole reading: the document (an image's picture too if ``with_picture``, for a
    model that reads images), and for a table the exact figures its question asks for, or the
    note that none could be computed. Runs native parsers: call it in a reader process."""
    # A reader is stopped by kill, never asked.
    document = extract(path, kind, report, lambda: False, limits, with_picture)
    if kind is not DocumentKind.CSV:
        return document, Figures()
    computed = compute(path, question, limits)
    return document, computed.figures() if computed else Figures()
