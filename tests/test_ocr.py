"""OCR on real scans made here: image-only PDF pages, mixed PDFs, noisy scans, photos, bombs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from doclane.documents import extract
from doclane.documents.model import Limits
from doclane.documents.ocr import recognise
from doclane.documents.pdf import PDFIUM_LOCK
from doclane.errors import DocumentError
from doclane.jobs import DocumentKind
from doclane.settings import Settings
from tests.documents import inspect_upload, make_pdf, scan, speckle
from tests.hostile import bomb_png

INVOICE = ["Invoice 4471 from Harbour Supplies", "Total due: 1,280 euros by 30 June"]
MINUTES = ["Minutes of the board meeting", "The board approved the Lisbon office"]


def no_progress(done: int, total: int, stage: str) -> None:
    pass


def test_scanned_pdf_pages_are_read_by_ocr(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [scan(INVOICE), scan(MINUTES)])
    reports: list[tuple[int, int, str]] = []
    document = extract(pdf, DocumentKind.PDF, lambda *a: reports.append(a), lambda: False)
    assert [page.number for page in document.pages] == [1, 2]
    assert "Invoice 4471" in document.pages[0].text and "1,280 euros" in document.pages[0].text
    assert "Lisbon office" in document.pages[1].text
    # Two passes, each half the work: the text layer (empty here), then OCR of the scans.
    assert reports == [
        (1, 4, "Reading page 1 of 2"),
        (2, 4, "Reading page 2 of 2"),
        (3, 4, "OCR page 1 of 2"),
        (4, 4, "OCR page 2 of 2"),
        (4, 4, "Document read"),
    ]
    assert "2 scanned pages were read by text recognition (OCR)" in document.facts


def test_mixed_pdf_keeps_text_pages_and_reads_the_scan(tmp_path: Path) -> None:
    typed = ["Acme Corporation annual report.", "Revenue in 2024 was 4.2 million dollars."]
    pdf = make_pdf(tmp_path / "mixed.pdf", [typed, scan(INVOICE), ["The end."]])
    reports: list[tuple[int, int, str]] = []

    def progress(*report: Any) -> None:
        assert not PDFIUM_LOCK.locked()  # the caller may block on its event loop here
        reports.append(report)

    document = extract(pdf, DocumentKind.PDF, progress, lambda: False)
    assert [page.number for page in document.pages] == [1, 2, 3]
    assert document.pages[0].text == "\n".join(typed)
    assert "Invoice 4471" in document.pages[1].text
    assert document.pages[2].text == "The end."
    assert [stage for *_, stage in reports] == [
        "Reading page 1 of 3",
        "Reading page 2 of 3",
        "Reading page 3 of 3",
        "OCR page 2 of 3",
        "Document read",
    ]
    assert "1 scanned page was read" in document.facts


def test_a_page_with_a_small_picture_is_not_a_scan(tmp_path: Path) -> None:
    pdf = canvas.Canvas(str(tmp_path / "logo.pdf"), pagesize=A4)
    pdf.drawImage(ImageReader(scan(INVOICE, size=(5, 1))), 72, 600, 360, 72)
    pdf.save()
    document = extract(tmp_path / "logo.pdf", DocumentKind.PDF, no_progress, lambda: False)
    assert document.pages == [] and "OCR" not in document.facts


def test_ocr_stops_between_pages(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [scan(INVOICE), scan(MINUTES)])
    reports: list[tuple[int, int, str]] = []
    stop_after_one_ocr_page = lambda: any("OCR" in stage for *_, stage in reports)  # noqa: E731
    document = extract(pdf, DocumentKind.PDF, lambda *a: reports.append(a), stop_after_one_ocr_page)
    assert [page.number for page in document.pages] == [1]


def test_a_noisy_scan_is_still_read(tmp_path: Path) -> None:
    noisy = speckle(scan(INVOICE), share=0.03)  # tesseract alone reads "30-June-:" here
    pdf = make_pdf(tmp_path / "noisy.pdf", [noisy])
    text = extract(pdf, DocumentKind.PDF, no_progress, lambda: False).pages[0].text
    for words in ("Invoice 4471", "Harbour Supplies", "1,280 euros", "30 June"):
        assert words in text


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("PNG", "RGBA"),  # transparent background: must read as white, not black
        ("PNG", "I;16"),  # 16-bit greyscale
        ("WEBP", "RGB"),
        ("TIFF", "1"),
        ("BMP", "L"),
        ("GIF", "P"),
    ],
)
def test_image_text_is_read(tmp_path: Path, fmt: str, mode: str) -> None:
    page = scan(INVOICE, size=(5, 1))
    if mode == "RGBA":
        image = Image.new("RGBA", page.size, (0, 0, 0, 0))
        image.putalpha(page.point(lambda value: 255 - value))
    elif mode == "I;16":  # grey ink on grey paper: every value is over 255
        image = page.convert("I").point(lambda value: (40 + value * 190 / 255) * 256)
        image = image.convert("I;16")
    else:
        image = page.convert(mode)
    path = tmp_path / f"invoice.{fmt.lower()}"
    image.save(path, format=fmt)
    document = extract(path, DocumentKind.IMAGE, no_progress, lambda: False)
    assert f"Image file: {fmt} format, 1000 x 200 pixels" in document.facts
    assert "read by text recognition (OCR)" in document.facts
    assert document.pages[0].number == 1
    assert "Invoice 4471" in document.pages[0].text and "30 June" in document.pages[0].text


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    sideways = scan(INVOICE, size=(5, 1)).rotate(90, expand=True)  # a phone held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "photo.jpg"
    sideways.save(path, format="JPEG", quality=95, exif=exif)
    document = extract(path, DocumentKind.IMAGE, no_progress, lambda: False)
    assert "1000 x 200 pixels" in document.facts
    assert "Invoice 4471" in document.pages[0].text


def test_an_animated_gif_is_read_from_its_first_frame(tmp_path: Path) -> None:
    first, second = (scan(lines, size=(5, 1)).convert("P") for lines in (INVOICE, MINUTES))
    path = tmp_path / "slides.gif"
    first.save(path, save_all=True, append_images=[second])
    document = extract(path, DocumentKind.IMAGE, no_progress, lambda: False)
    assert "2 frames (the first was read)" in document.facts
    assert "Invoice 4471" in document.pages[0].text and "Lisbon" not in document.pages[0].text


def test_a_truncated_image_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    scan(INVOICE, size=(5, 1)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DocumentError, match="truncated"):
        extract(path, DocumentKind.IMAGE, no_progress, lambda: False)


def test_an_image_without_text_says_so(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(path)
    document = extract(path, DocumentKind.IMAGE, no_progress, lambda: False)
    assert document.pages == []
    assert "found no text" in document.facts


def test_engines_serve_threads_in_parallel() -> None:
    images = [scan(INVOICE, size=(5, 1)), scan(MINUTES, size=(5, 1))]
    texts: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i: texts.__setitem__(i, recognise(images[i])))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "Invoice 4471" in texts[0] and "Lisbon office" in texts[1]


@pytest.mark.parametrize("side", [8000, 14000])  # under and over Pillow's own guard
def test_decompression_bombs_are_refused(tmp_path: Path, side: int) -> None:
    path = bomb_png(tmp_path / "bomb.png", side)
    assert path.stat().st_size < 100_000
    with pytest.raises(DocumentError, match="pixels"):
        inspect_upload(path)
    with pytest.raises(DocumentError, match="pixels"):
        extract(path, DocumentKind.IMAGE, no_progress, lambda: False)


def test_the_pixel_limit_is_a_parameter(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "small.png", 100)
    assert inspect_upload(path, Limits(max_image_pixels=10_000)) is DocumentKind.IMAGE
    with pytest.raises(DocumentError, match="at most 9,999 pixels"):
        inspect_upload(path, Limits(max_image_pixels=9_999))
    assert Settings.model_fields["max_image_pixels"].default == Limits().max_image_pixels


@pytest.mark.anyio
async def test_a_bomb_upload_gets_422(api: httpx.AsyncClient, tmp_path: Path) -> None:
    content = bomb_png(tmp_path / "bomb.png", 8000).read_bytes()
    response = await api.post("/api/upload", files={"file": ("bomb.png", content)})
    assert response.status_code == 422
    assert "8,000 x 8,000 pixels" in response.json()["error"]
