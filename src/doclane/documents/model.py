"""What extraction produces: the text a model may read, with page numbers kept for citations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from doclane.jobs.model import DocumentKind

# Called by extractors as they go: (units done, units in all, what is happening).
ReportProgress = Callable[[int, int, str], None]
# Polled by extractors between pages; True means stop now.
ShouldStop = Callable[[], bool]


MAX_IMAGE_PIXELS = 50_000_000
MAX_PDF_PAGES = 2_000


@dataclass(frozen=True, slots=True)
class Limits:
    """How big a document doclane agrees to read (the settings of the same names)."""

    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_pdf_pages: int = MAX_PDF_PAGES


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
