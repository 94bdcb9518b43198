"""Images: the facts a model can use (format, size); text recognition comes later."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from doclane.documents.model import Document, ReportProgress, ShouldStop
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DocumentError("The image has too many pixels to process safely") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DocumentError("The image is damaged or in an unsupported format") from exc


def check_image(path: Path) -> None:
    with _open(path) as image:
        try:
            image.verify()
        except Exception as exc:  # Pillow raises many types for a broken file
            raise DocumentError("The image is damaged or truncated") from exc


def extract_image(path: Path, progress: ReportProgress, should_stop: ShouldStop) -> Document:
    with _open(path) as image:
        width, height = image.size
        frames = getattr(image, "n_frames", 1)
        facts = (
            f"Image file: {image.format} format, {width} x {height} pixels, "
            f"colour mode {image.mode}"
            + (f", {frames} frames" if frames > 1 else "")
            + ". Text recognition (OCR) is not enabled, so the picture's content is unknown."
        )
    progress(1, 1, "Reading image")
    return Document(DocumentKind.IMAGE, facts)
