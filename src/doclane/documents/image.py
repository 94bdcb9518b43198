"""Images: the facts a model can use (format, size), the text OCR reads in them, and, for a
model that reads images, the picture itself as a JPEG copy capped in size."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from doclane.documents.model import Document, Page, ReportProgress, ShouldStop
from doclane.documents.ocr import recognise
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open an image (its header only) or raise DocumentError, before a pixel is decoded."""
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own guard, past ~179 million pixels
        raise DocumentError("The image has too many pixels to process safely") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DocumentError("The image is damaged or in an unsupported format") from exc
    width, height = image.size
    if width * height > max_pixels:  # a few bytes of PNG can declare gigabytes of pixels
        image.close()
        raise DocumentError(
            f"The image is {width:,} x {height:,} pixels; at most {max_pixels:,} pixels are "
            "accepted"
        )
    return image


def check_image(path: Path, max_pixels: int) -> None:
    with _open(path, max_pixels) as image:
        try:
            image.verify()
        except Exception as exc:  # Pillow raises many types for a broken file
            raise DocumentError("The image is damaged or truncated") from exc


# A picture sent to a vision model: its longest side and its size at most this (OpenAI's models
# scale an image down to 2,048 px anyway; a data URL is a third larger than its bytes).
PICTURE_SIDE = 1536
PICTURE_BYTES = 1_500_000


def picture(image: Image.Image, side: int = PICTURE_SIDE, max_bytes: int = PICTURE_BYTES) -> str:
    """``image`` as a ``data:image/jpeg;base64,…`` URL: scaled down to ``side`` pixels at most,
    then further until its JPEG takes at most ``max_bytes``. Transparency is laid on white."""
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    while True:
        flat.thumbnail((side, side))
        out = io.BytesIO()
        flat.save(out, "JPEG", quality=85, optimize=True)
        if out.tell() <= max_bytes or side <= 64:
            return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
        side = int(max(flat.size) * 0.75)


def extract_image(
    path: Path,
    progress: ReportProgress,
    should_stop: ShouldStop,
    max_pixels: int,
    with_picture: bool = False,
) -> Document:
    """The image's facts and OCR text; with ``with_picture``, its picture too (``picture``)."""
    with _open(path, max_pixels) as image:
        progress(1, 2, "Recognising text in the image (OCR)")
        try:
            upright = ImageOps.exif_transpose(image)  # as a viewer shows it (a phone photo)
        except OSError as exc:  # pixels are decoded here: a truncated file fails now
            raise DocumentError("The image is damaged or truncated") from exc
        frames = getattr(image, "n_frames", 1)
        facts = (
            f"Image file: {image.format} format, {upright.width} x {upright.height} pixels, "
            f"colour mode {image.mode}"
            + (f", {frames} frames (the first was read)" if frames > 1 else "")
        )
        text = recognise(upright)
        shown = picture(upright) if with_picture else ""
    progress(2, 2, "Image read")
    if not text:
        facts += ". Text recognition (OCR) found no text in it."
        return Document(DocumentKind.IMAGE, facts, image=shown, page_count=1, ocr_pages=1)
    facts += ". Its text was read by text recognition (OCR), which can misread characters."
    return Document(DocumentKind.IMAGE, facts, [Page(1, text)], shown, page_count=1, ocr_pages=1)
