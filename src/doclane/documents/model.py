"""What extraction produces: the text a model may read, with page numbers kept for citations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from doclane.jobs.model import DocumentKind

# Called by extractors as they go: (units done, units in all, what is happening).
ReportProgress = Callable[[int, int, str], None]
# Polled by extractors between pages; True means stop now.
ShouldStop = Callable[[], bool]


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """How big a document doclane agrees to read (the settings of the same names)."""

    max_image_pixels: int = 50_000_000
    max_pdf_pages: int = 2_000
    max_sheet_cells: int = 10_000_000
    max_sheet_csv_bytes: int = 256 * MiB
    max_zip_bytes: int = 1024 * MiB  # all members of an XLSX or ODS, uncompressed
    max_zip_ratio: int = 200  # uncompressed / compressed size of one member
    max_table_columns: int = 200  # profiled and matched against questions; the rest are named
    table_memory_mb: int = 512  # DuckDB's own memory limit, inside the reader's


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 1-based, as a reader would cite it
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    kind: DocumentKind
    facts: str  # always shown to the model: what the file is (pages, schema, profile, size)
    pages: list[Page] = field(default_factory=list)
    # An image's picture as a data: URL (a copy capped in size), for a model that reads images;
    # "" unless the reader was asked for it.
    image: str = ""
    page_count: int = 0  # pages (or images) read, OCR'd ones included: for the metrics
    ocr_pages: int = 0  # of which read by OCR


@dataclass(frozen=True, slots=True)
class Figures:
    """What doclane worked out itself about a table question: ``exact``, the figures computed
    over every row (Markdown), or else ``note``, that none were and which columns the question
    names. Both empty for a PDF or an image, or for a question that names no column."""

    exact: str = ""
    note: str = ""
