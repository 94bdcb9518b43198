"""What extraction produces: the text a model may read, with page numbers kept for citations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from doclane.jobs.model import DocumentKind

# Called by extractors as they go: (units done, units in all, what is happening).
ReportProgress = Callable[[int, int, str], None]
# Polled by extractors between pages; True means stop now.
ShouldStop = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 1-based, as a reader would cite it
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    kind: DocumentKind
    facts: str  # always shown to the model: what the file is (pages, schema, profile, size)
    pages: list[Page] = field(default_factory=list)
