"""The documents the questions are asked about, and what the benchmark knows of each.

Real files are used as they are. The others are made from real files, the same way every time:
a *scan* renders pages of a real PDF to greyscale pictures and wraps them in an image-only PDF
(so only OCR can read it); a *screenshot* renders one page of a real PDF to a PNG; a *drawing*
is a price list, an invoice, a receipt or a table drawn with Pillow, its values taken from a
real CSV. For each document the benchmark keeps its text page by page (a real PDF's text layer,
the source pages of a scan or screenshot, the lines drawn), from which the truths are read and
against which the numbers of an answer are checked.
"""

from __future__ import annotations

import gzip
import re
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont

SCAN_DPI = 200  # a common scanner setting
SCREENSHOT_DPI = 120  # a page as a screen shows it


@dataclass
class Doc:
    key: str
    path: Path
    pages: list[str]  # text by page (page 1 first): what the truths are read from
    facts: dict[str, Any] = field(default_factory=dict)  # a drawing's figures and name lists
    table: pd.DataFrame | None = None  # a CSV, as pandas reads it

    @property
    def text(self) -> str:
        return "\n".join(self.pages)


def clean(text: str) -> str:
    """A PDF text layer as one reads it: hyphenated line ends joined, whitespace collapsed."""
    text = text.replace("\ufffe\r\n", "").replace("\ufffe", "").replace("\r\n", "\n")
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def pdf_pages(path: Path) -> list[str]:
    pdf = pdfium.PdfDocument(path)
    try:
        return [clean(page.get_textpage().get_text_range()) for page in pdf]
    finally:
        pdf.close()


def read_csv(path: Path) -> pd.DataFrame:
    """The table as pandas sniffs it (independently of doclane, which reads it with DuckDB)."""
    return pd.read_csv(path, sep=None, engine="python")


def real(key: str, path: Path, folder: Path) -> Doc:
    """A real file as it is (a gzipped PDF, as Debian ships some manuals, unpacked first)."""
    if path.suffix == ".gz":
        unpacked = folder / path.stem
        with gzip.open(path) as source, unpacked.open("wb") as target:
            shutil.copyfileobj(source, target)
        path = unpacked
    if path.suffix.lower() == ".csv":
        return Doc(key, path, [path.read_text(errors="replace")], table=read_csv(path))
    return Doc(key, path, pdf_pages(path))


def _render(source: Path, numbers: list[int], dpi: int) -> list[Image.Image]:
    pdf = pdfium.PdfDocument(source)
    try:
        return [pdf[n - 1].render(scale=dpi / 72, grayscale=True).to_pil().copy() for n in numbers]
    finally:
        pdf.close()


def scan(key: str, source: Path, numbers: list[int], folder: Path) -> Doc:
    """Pages of a real PDF as an image-only PDF, like a scanner makes."""
    images = _render(source, numbers, SCAN_DPI)
    path = folder / f"{key}.pdf"
    images[0].save(path, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:])
    texts = pdf_pages(source)
    return Doc(key, path, [texts[n - 1] for n in numbers])


def screenshot(key: str, source: Path, number: int, folder: Path) -> Doc:
    """One page of a real PDF as a PNG picture."""
    [image] = _render(source, [number], SCREENSHOT_DPI)
    path = folder / f"{key}.png"
    image.save(path)
    return Doc(key, path, [pdf_pages(source)[number - 1]])


# Drawings: each takes the source table and returns its title, its lines (one tuple of cells a
# line) and the figures it shows.
Lines = list[tuple[str, ...]]
Drawn = tuple[str, Lines, dict[str, Any]]
Drawing = Callable[[pd.DataFrame], Drawn]


def money(value: float) -> str:
    return f"{value:,.2f}"


def price_list(autos: pd.DataFrame) -> Drawn:
    """A dealer's price list: the first priced car of eight makes (statsmodels' autos data)."""
    makes = ["audi", "bmw", "honda", "mazda", "nissan", "peugot", "toyota", "volvo"]
    rows = [autos[(autos.make == m) & autos.price.notna()].iloc[0] for m in makes]
    lines: Lines = [("Make", "Body style", "Doors", "Price (USD)")]
    lines += [(r.make.title(), r.style, r.doors, money(r.price)) for r in rows]
    facts: dict[str, Any] = {f"price:{r.make}": float(r.price) for r in rows}
    facts["cheapest"] = min(rows, key=lambda r: r.price).make
    facts["dearest"] = max(rows, key=lambda r: r.price).make
    facts["makes"] = makes
    return "Riverside Motors - Price list", lines, facts


def invoice(autos: pd.DataFrame) -> Drawn:
    """An invoice for cars of three makes at their listed prices, with 20% VAT."""
    order = [("subaru", 2), ("mitsubishi", 1), ("volkswagen", 3)]
    lines: Lines = [("Invoice number", "INV-20931", "", ""), ("Date", "2024-03-18", "", "")]
    lines.append(("Item", "Qty", "Unit price", "Amount"))
    facts: dict[str, Any] = {"number": "INV-20931"}
    subtotal = 0.0
    for make, quantity in order:
        row = autos[(autos.make == make) & autos.price.notna()].iloc[0]
        amount = quantity * float(row.price)
        subtotal += amount
        lines.append(
            (f"{make.title()} {row['style']}", str(quantity), money(row.price), money(amount))
        )
        facts[f"qty:{make}"] = float(quantity)
    vat = round(subtotal * 0.2, 2)
    lines += [("Subtotal", "", "", money(subtotal)), ("VAT 20%", "", "", money(vat))]
    lines.append(("Total due", "", "", money(subtotal + vat)))
    facts.update(subtotal=subtotal, vat=vat, total=round(subtotal + vat, 2))
    return "Harbour Fleet Services - INVOICE", lines, facts


def receipt(stocks: pd.DataFrame) -> Drawn:
    """A broker's receipt for shares bought at the prices of 1 January 2000 (vega's stocks)."""
    order = [("MSFT", 10), ("AMZN", 5), ("IBM", 8), ("AAPL", 12)]
    lines: Lines = [("Trade date", "Jan 1 2000", ""), ("Symbol", "Shares x price", "Amount")]
    facts: dict[str, Any] = {}
    total = 0.0
    for symbol, shares in order:
        price = float(
            stocks[(stocks.symbol == symbol) & (stocks.date == "Jan 1 2000")].price.iloc[0]
        )
        total += shares * price
        lines.append((symbol, f"{shares} x {money(price)}", money(shares * price)))
        facts[f"price:{symbol}"] = price
    lines.append(("TOTAL", "", money(total)))
    facts["total"] = round(total, 2)
    return "NORTHGATE BROKERS - RECEIPT", lines, facts


def crime_table(crime: pd.DataFrame) -> Drawn:
    """The first twelve states of statsmodels' state crime data, as a table in a report."""
    rows = crime.head(12)
    lines: Lines = [("State", "Murders per 100,000", "Poverty %")]
    lines += [(r.state, f"{r.murder:g}", f"{r.poverty:g}") for r in rows.itertuples()]
    facts: dict[str, Any] = {f"poverty:{r.state}": float(r.poverty) for r in rows.itertuples()}
    facts.update({f"murder:{r.state}": float(r.murder) for r in rows.itertuples()})
    return "Crime and poverty by state (2009)", lines, facts


def employment_table(jobs: pd.DataFrame) -> Drawn:
    """US employment (thousands) for the first six months of 2009, as a table in a bulletin
    (vega's us-employment)."""
    rows = jobs[jobs.month.str.startswith("2009-0")].head(6)
    lines: Lines = [("Month", "Nonfarm jobs", "Construction", "Change")]
    facts: dict[str, Any] = {}
    for r in rows.itertuples():
        month = pd.Timestamp(r.month).strftime("%B %Y")
        cells = (f"{r.nonfarm:,.0f}", f"{r.construction:,.0f}", f"{r.nonfarm_change:+,.0f}")
        lines.append((month, *cells))
        facts[f"construction:{month}"] = float(r.construction)
        facts[f"change:{month}"] = float(r.nonfarm_change)
    months = [pd.Timestamp(m).strftime("%B") for m in rows.month]
    facts["months"] = months
    facts["worst"] = months[int(rows.nonfarm_change.to_numpy().argmin())]
    return "Employment bulletin, first half of 2009 (thousands)", lines, facts


def smoking_table(smoking: pd.DataFrame) -> Drawn:
    """Smokers and non-smokers with and without lung cancer in eight Chinese cities
    (statsmodels' china_smoking), as a five-column table."""
    lines: Lines = [("City", "Smoker, cancer", "Smoker, no cancer", "Non-smoker, cancer")]
    facts: dict[str, Any] = {"cities": list(smoking.Location)}
    for r in smoking.itertuples():
        yes, no, other = r.smoking_yes_cancer_yes, r.smoking_yes_cancer_no, r.smoking_no_cancer_yes
        lines.append((r.Location, str(yes), str(no), str(other)))
        facts[f"yes:{r.Location}"] = float(yes)
        facts[f"no:{r.Location}"] = float(no)
    best = smoking.loc[smoking.smoking_yes_cancer_yes.idxmax()]
    facts["most"] = best.Location
    return "Lung cancer and smoking, case-control study", lines, facts


def patient_form(births: pd.DataFrame) -> Drawn:
    """A filled-in hospital form, label and value side by side, for the first mother of
    statsmodels' low-birth-weight data."""
    r = births.iloc[0]
    lines: Lines = [
        ("Record ID:", str(r.id), "Race:", r.race.title()),
        ("Mother's age:", f"{r.age} years", "Smoker:", "yes" if r.smoke else "no"),
        ("Weight at last period:", f"{r.lwt} lb", "Doctor visits:", str(r.ftv)),
        ("Birth weight:", f"{r.bwt} g", "Low birth weight:", "yes" if r.low else "no"),
    ]
    facts: dict[str, Any] = {
        "id": str(r.id),
        "age": float(r.age),
        "bwt": float(r.bwt),
        "lwt": float(r.lwt),
        "race": r.race.title(),
        "ftv": float(r.ftv),
    }
    return "ST. MARY'S MATERNITY WARD - DELIVERY RECORD", lines, facts


DRAWINGS: dict[str, Drawing] = {
    "price_list": price_list,
    "invoice": invoice,
    "receipt": receipt,
    "crime_table": crime_table,
    "employment_table": employment_table,
    "smoking_table": smoking_table,
    "patient_form": patient_form,
}


def draw(key: str, kind: str, table: pd.DataFrame, folder: Path, suffix: str = "png") -> Doc:
    """Draw a document in columns, black on white, in Pillow's own TrueType font."""
    title, lines, facts = DRAWINGS[kind](table)
    font = ImageFont.load_default(size=26)
    bold = ImageFont.load_default(size=34)
    widths = [max(font.getlength(line[i]) for line in lines) + 40 for i in range(len(lines[0]))]
    width = max(int(sum(widths)) + 120, int(bold.getlength(title)) + 120)
    height = 160 + 44 * len(lines) + 60
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((60, 50), title, fill="black", font=bold)
    for row, line in enumerate(lines):
        x, y = 60.0, 140 + 44 * row
        for column, cell in enumerate(line):
            pen.text((x, y), cell, fill="black", font=font)
            x += widths[column]
    path = folder / f"{key}.{suffix}"
    image.save(path, quality=90) if suffix == "jpg" else image.save(path)
    text = "\n".join([title, *("  ".join(cell for cell in line if cell) for line in lines)])
    return Doc(key, path, [text], facts=facts)
