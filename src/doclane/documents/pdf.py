"""PDF text, page by page, with pypdfium2."""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

import pypdfium2 as pdfium

from doclane.documents.model import Document, Page, ReportProgress, ShouldStop
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind

# PDFium is not thread-safe: every call into it, from any thread, holds this lock.
PDFIUM_LOCK = threading.Lock()

_PDFIUM_REASONS = {
    3: "The PDF is damaged or is not a PDF",
    4: "The PDF is password-protected",
    5: "The PDF uses an unsupported security handler",
}


def open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open a PDF (an empty user password is tried, as viewers do) or raise DocumentError."""
    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        reason = _PDFIUM_REASONS.get(getattr(exc, "err_code", 0), "The PDF could not be opened")
        raise DocumentError(reason) from exc
    if len(pdf) == 0:
        pdf.close()
        raise DocumentError("The PDF has no pages")
    return pdf


def check_pdf(path: Path) -> None:
    with PDFIUM_LOCK:
        open_pdf(path).close()


def extract_pdf(path: Path, progress: ReportProgress, should_stop: ShouldStop) -> Document:
    pages: list[Page] = []
    with PDFIUM_LOCK:
        pdf = open_pdf(path)
        try:
            count = len(pdf)
            for index in range(count):
                if should_stop():
                    break
                page = pdf[index]
                textpage = page.get_textpage()
                try:
                    text = clean_text(textpage.get_text_bounded())
                finally:
                    textpage.close()
                    page.close()
                if text:
                    pages.append(Page(index + 1, text))
                progress(index + 1, count, f"Reading page {index + 1} of {count}")
        finally:
            pdf.close()
    noun = "page" if count == 1 else "pages"
    facts = f"PDF document, {count} {noun}."
    if not pages:
        facts += " No text could be extracted (it may be a scan; text recognition is not enabled)."
    return Document(DocumentKind.PDF, facts, pages)


def clean_text(text: str) -> str:
    # PDFium marks a hyphen that breaks a word at a line end with U+FFFE.
    text = text.replace("\ufffe\r\n", "").replace("\ufffe", "-").replace("\r\n", "\n")
    return unicodedata.normalize("NFKC", text).strip()
