"""Real documents made on the fly: PDFs (reportlab), CSVs, images (Pillow)."""

from __future__ import annotations

import io
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from doclane.documents import DEFAULT_LIMITS, Limits, check_upload, sniff_upload
from doclane.jobs import DocumentKind
from doclane.storage import upload_key


def in_storage(path: Path, data_dir: Path, job_id: str) -> str:
    """Copy a document to where the upload route keeps a job's file (the default storage,
    ``<data_dir>/uploads``) and return its key: for tests that queue jobs without uploading."""
    key = upload_key(job_id, "test")
    target = data_dir / "uploads" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return key


def stored_jobs(root: Path) -> list[str]:
    """What a storage root holds, by job: the job id of each stored file (its name up to the
    first dot, in its shard), and any other file (a spooled leftover) by its name; sorted, one
    entry per job however many files it has."""
    if not root.exists():
        return []
    found = {
        path.name.split(".")[0] if path.parent != root else path.name
        for path in root.rglob("*")
        if path.is_file()
    }
    return sorted(found)


def make_report_pdf(path: Path, page_count: int = 3) -> Path:
    """A small report whose facts sit on known pages."""
    pages = []
    for number in range(1, page_count + 1):
        lines = [f"Acme Corporation annual report, section {number}."]
        if number == 2:
            lines.append("Revenue in 2024 was 4.2 million dollars.")
        else:
            lines.append(f"The team planted {number * 7} trees this year.")
        pages.append(lines)
    return make_pdf(path, pages)


def make_topics_pdf(path: Path, topics: Sequence[str], pages_per_topic: int = 1) -> Path:
    """A long report, ``pages_per_topic`` pages on each topic in turn, 20 lines a page: too
    long to read at once, so a summary of it goes section by section."""
    line = "Section {n} is about {topic}: notes {n}.{i} on {topic}."
    pages = [
        [line.format(n=n, i=i, topic=topics[(n - 1) // pages_per_topic]) for i in range(20)]
        for n in range(1, len(topics) * pages_per_topic + 1)
    ]
    return make_pdf(path, pages)


def encrypt_pdf(source: Path, target: Path, password: str) -> Path:
    writer = PdfWriter()
    writer.append(PdfReader(source))
    writer.encrypt(password)
    with target.open("wb") as out:
        writer.write(out)
    return target


def make_csv(path: Path, rows: int = 40) -> Path:
    regions = ["North", "South", "East", "West"]
    lines = ["order_id,region,amount"]
    for i in range(1, rows + 1):
        lines.append(f"{i},{regions[i % 4]},{i * 2.5:.2f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_png(path: Path, size: tuple[int, int] = (320, 200), fmt: str = "PNG") -> Path:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((20, 80), "Invoice 1234", fill="black")
    image.save(path, format=fmt)
    return path


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def scan(
    lines: list[str], dpi: int = 200, size: tuple[float, float] = (8.27, 11.69)
) -> Image.Image:
    """A scanned page (A4 unless `size` in inches says otherwise): 12 pt print in Pillow's
    bundled TrueType font, black on white, greyscale, at `dpi`."""
    image = Image.new("L", (round(size[0] * dpi), round(size[1] * dpi)), 255)
    font = ImageFont.load_default(size=12 * dpi // 72)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((dpi // 2, dpi // 2 + row * 20 * dpi // 72), line, fill=0, font=font)
    return image


def speckle(image: Image.Image, share: float, seed: int = 0) -> Image.Image:
    """Salt-and-pepper noise on `share` of the pixels, as a dusty scanner glass leaves."""
    rng = random.Random(seed)
    noisy = image.copy()
    width, height = noisy.size
    for _ in range(int(width * height * share)):
        noisy.putpixel((rng.randrange(width), rng.randrange(height)), rng.choice((0, 255)))
    return noisy


def make_pdf(path: Path, pages: Sequence[list[str] | Image.Image]) -> Path:
    """A4 pages: a list of lines is a text page, an image fills its page as a scan does."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in pages:
        if isinstance(page, Image.Image):
            pdf.drawImage(ImageReader(page), 0, 0, *A4)
        else:
            y = 780
            for line in page:
                pdf.drawString(72, y, line)
                y -= 18
        pdf.showPage()
    pdf.save()
    return path


def inspect_upload(path: Path, limits: Limits = DEFAULT_LIMITS) -> DocumentKind:
    """The upload checks, in this process: what the server runs in a reader process."""
    file_type = sniff_upload(path)
    check_upload(lambda *_: None, path, file_type, limits)
    return file_type.kind
