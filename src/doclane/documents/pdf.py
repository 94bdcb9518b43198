"""PDF text, page by page, with pypdfium2; scanned pages are rendered and read by OCR."""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from doclane.documents.model import Document, Page, ReportProgress, ShouldStop
from doclane.documents.ocr import recognise
from doclane.documents.pdftext import read_texts
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind

# PDFium is not thread-safe: every call into it, from any thread, holds this lock.
PDFIUM_LOCK = threading.Lock()

# A page with fewer characters than this, mostly covered by images, is a scan. (A scan with an
# OCR text layer already has its text, and a stamp like "Scanned by X" stays under the mark.)
SCAN_MAX_CHARS = 40
SCAN_MIN_COVER = 0.5
# A scan is rendered at its own resolution, within these bounds: upscaling blurs speckle noise
# past what the median filter removes (a 150 dpi scan with 1% noise: 0.1% of characters misread
# rendered at 150 dpi, 3.8% at 300), while under 150 dpi tesseract misses small print.
OCR_MIN_DPI, OCR_MAX_DPI = 150, 300
MAX_RENDER_PIXELS = 35_000_000  # A4 at 600 dpi: a poster-sized page is rendered coarser

_PDFIUM_REASONS = {
    3: "The PDF is damaged or is not a PDF",
    4: "The PDF is password-protected",
    5: "The PDF uses an unsupported security handler",
}


def open_pdf(path: Path, max_pages: int) -> pdfium.PdfDocument:
    """Open a PDF (an empty user password is tried, as viewers do) or raise DocumentError."""
    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        reason = _PDFIUM_REASONS.get(getattr(exc, "err_code", 0), "The PDF could not be opened")
        raise DocumentError(reason) from exc
    if len(pdf) == 0:
        pdf.close()
        raise DocumentError("The PDF has no pages")
    if len(pdf) > max_pages:
        count = len(pdf)
        pdf.close()
        raise DocumentError(f"The PDF has {count:,} pages; at most {max_pages:,} are accepted")
    return pdf


def check_pdf(path: Path, max_pages: int) -> None:
    with PDFIUM_LOCK:
        open_pdf(path, max_pages).close()


def extract_pdf(
    path: Path, progress: ReportProgress, should_stop: ShouldStop, max_pages: int
) -> Document:
    """Two passes: every page's text layer (in parallel for a long PDF), then OCR of the pages
    that turn out to be scans. Progress counts each pass as half the work."""
    with PDFIUM_LOCK:
        open_pdf(path, max_pages).close()  # a clear error for a bad PDF, before any work
        pdf = pdfium.PdfDocument(path)
        count = len(pdf)
    try:

        def read(done: int) -> None:
            progress(done, 2 * count, f"Reading page {done} of {count}")

        texts = [
            clean_text(text) for text in read_texts(path, count, PDFIUM_LOCK, read, should_stop)
        ]
        candidates = [index for index, text in enumerate(texts) if len(text) < SCAN_MAX_CHARS]
        scanned = 0
        for position, index in enumerate(candidates, 1):
            if should_stop():
                break
            with PDFIUM_LOCK:
                scan = _scan(pdf, index)
            if scan is not None:  # OCR takes 1-2 s a page: without the lock, others go on
                texts[index] = clean_text(recognise(scan)) or texts[index]
                scanned += 1
                done = count + count * position // len(candidates)
                progress(done, 2 * count, f"OCR page {index + 1} of {count}")
    finally:
        with PDFIUM_LOCK:
            pdf.close()
    progress(2 * count, 2 * count, "Document read")
    pages = drop_running_lines([Page(number, text) for number, text in enumerate(texts, 1) if text])
    facts = f"PDF document, {count} {'page' if count == 1 else 'pages'}."
    if scanned:
        facts += (
            f" {scanned} scanned {'page was' if scanned == 1 else 'pages were'} read by text "
            "recognition (OCR), which can misread characters."
        )
    if not pages:
        facts += " No text could be extracted."
    return Document(DocumentKind.PDF, facts, pages, page_count=count, ocr_pages=scanned)


_DIGITS_AS_HASH = str.maketrans("0123456789", "##########")


def drop_running_lines(pages: list[Page]) -> list[Page]:
    """Remove running headers and footers: a page's first or last line that recurs (numbers
    aside, so "Page 3 of 9" counts) on more than half the pages, and on at least 3. Pages of
    fewer than 3 lines have no header or footer to speak of, and a line shaped like the body's
    own lines (a table row, a numbered list) is content, not a header."""
    if len(pages) < 3:
        return pages

    def shape(line: str) -> str:
        return line.strip().lower().translate(_DIGITS_AS_HASH)

    def edges(page: Page) -> set[str]:
        lines = [line for line in page.text.splitlines() if line.strip()]
        return {shape(lines[0]), shape(lines[-1])} if len(lines) >= 3 else set()

    def middle(page: Page) -> set[str]:
        lines = [line for line in page.text.splitlines() if line.strip()]
        return {shape(line) for line in lines[1:-1]}

    seen = Counter(shape_ for page in pages for shape_ in edges(page))
    body = set().union(*(middle(page) for page in pages))
    running = {s for s, n in seen.items() if n >= 3 and n > len(pages) / 2 and s not in body}
    if not running:
        return pages
    kept = []
    for page in pages:
        lines = page.text.splitlines()
        edge = edges(page) & running
        text = "\n".join(line for line in lines if shape(line) not in edge).strip()
        if text:
            kept.append(Page(page.number, text))
    return kept


def clean_text(text: str) -> str:
    # PDFium marks a hyphen that breaks a word at a line end with U+FFFE.
    text = text.replace("\ufffe\r\n", "").replace("\ufffe", "-").replace("\r\n", "\n")
    return unicodedata.normalize("NFKC", text).strip()


def _scan(pdf: pdfium.PdfDocument, index: int) -> Image.Image | None:
    """A greyscale rendering of the page when it is a scan, else None. Needs PDFIUM_LOCK."""
    page = pdf[index]
    try:
        dpi = _scan_dpi(page)
        return None if dpi is None else _render(page, dpi)
    finally:
        page.close()


def _scan_dpi(page: pdfium.PdfPage) -> float | None:
    """The resolution of the images covering most of the page, or None when it is not a scan."""
    left, bottom, right, top = page.get_bbox()
    covered = pixels = 0.0
    for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
        try:
            x0, y0, x1, y1 = _bounds_on_page(image)
            width, height = image.get_px_size()
        except pdfium.PdfiumError:  # a damaged image: the rest of the page may still be read
            continue
        visible = max(min(x1, right) - max(x0, left), 0) * max(min(y1, top) - max(y0, bottom), 0)
        if visible:
            covered += visible
            pixels += width * height * visible / ((x1 - x0) * (y1 - y0))
    if not covered or covered < SCAN_MIN_COVER * (right - left) * (top - bottom):
        return None
    return 72 * math.sqrt(pixels / covered)


def _bounds_on_page(image: pdfium.PdfObject) -> tuple[float, float, float, float]:
    # An image inside a form XObject has its bounds in the form's space: map them out.
    bounds: tuple[float, float, float, float] = image.get_bounds()
    form = image.container
    while form is not None:
        bounds = form.get_matrix().on_rect(*bounds)
        form = form.container
    return bounds


def _render(page: pdfium.PdfPage, dpi: float) -> Image.Image:
    width, height = page.get_size()
    dpi = min(max(dpi, OCR_MIN_DPI), OCR_MAX_DPI)
    scale = min(dpi / 72, math.sqrt(MAX_RENDER_PIXELS / (width * height)))
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image: Image.Image = bitmap.to_pil().copy()  # to_pil() shares PDFium's memory
    finally:
        bitmap.close()  # under the lock, as every PDFium call
    return image
