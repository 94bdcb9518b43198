"""Images: the facts a model can use (format, size) and the text OCR reads in them."""

from __future__ import annotations

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


def extract_image(
    path: Path,
    progress: ReportProgress,
    should_stop: ShouldStop,
    max_pixels: int,
) -> Document:
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
    progress(2, 2, "Image read")
    if not text:
        return Document(DocumentKind.IMAGE, facts + ". Text recognition (OCR) found no text in it.")
    facts += ". Its text was read by text recognition (OCR), which can misread characters."
    return Document(DocumentKind.IMAGE, facts, [Page(1, text)])
