"""Excel and OpenDocument spreadsheets: the first sheet becomes a CSV file beside the upload,
written once, so the table path (DuckDB profile, computed answers) reads it like any CSV.

A spreadsheet is a ZIP (or OLE) container of XML that a few KB can make expand to gigabytes:
a cell at the sheet's far corner makes calamine allocate the whole rectangle, a repeat count
multiplies a cell a million times, a part compresses a thousandfold. So the container's parts
are measured before anything is parsed, the sheet's size is checked before its rows are read,
and the CSV stops growing at its cap; what slips past them hits the reader process's memory
limit (see doclane.sandbox). The conversion runs when the file is uploaded, so a bomb is a 422.
"""

from __future__ import annotations

import csv
import datetime
import os
import zipfile
from pathlib import Path
from typing import TextIO

from python_calamine import CalamineError, CalamineSheet, load_workbook

from doclane.documents.model import DEFAULT_LIMITS, Limits, ReportProgress
from doclane.errors import DocumentError

ZIP_MAGIC = b"PK\x03\x04"  # .xlsx and .ods are ZIP files
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls
RATIO_MIN_BYTES = 1024 * 1024  # a small part may compress as well as it likes
PROGRESS_ROWS = 10_000


def is_spreadsheet(head: bytes) -> bool:
    return head.startswith((ZIP_MAGIC, OLE_MAGIC))


def derived_csv(path: Path) -> Path:
    """Where the CSV of an uploaded spreadsheet lives: beside it, and removed with it."""
    return path.with_name(path.name + ".csv")


def as_csv(path: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """The CSV of a spreadsheet's first sheet (made now if the upload did not); a CSV file as
    it is."""
    with path.open("rb") as file:
        if not is_spreadsheet(file.read(len(OLE_MAGIC))):
            return path
    target = derived_csv(path)
    if not target.exists():
        convert_spreadsheet(path, limits, lambda *_: None)
    return target


def convert_spreadsheet(path: Path, limits: Limits, report: ReportProgress) -> Path:
    """Write the first sheet as CSV beside the file, within the limits (DocumentError past
    them). Whole or not at all: a failed or interrupted conversion leaves nothing behind."""
    if zipfile.is_zipfile(path):
        _check_zip(path, limits)
    try:
        workbook = load_workbook(str(path))
        if not workbook.sheet_names:
            raise DocumentError("The spreadsheet has no sheets")
        sheet = workbook.get_sheet_by_index(0)
    except (CalamineError, OSError, ValueError) as exc:
        raise DocumentError("The file is not a spreadsheet doclane can read") from exc
    cells = sheet.height * sheet.width
    if cells > limits.max_sheet_cells:
        raise DocumentError(
            f"The spreadsheet's first sheet spans {sheet.height:,} rows x {sheet.width:,} "
            f"columns; at most {limits.max_sheet_cells:,} cells are read"
        )
    target = derived_csv(path)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("w", newline="", encoding="utf-8") as out:
            _write_rows(sheet, _CappedText(out, limits.max_sheet_csv_bytes), report)
        os.replace(partial, target)  # whole or not at all, even if the reader dies mid-write
    finally:
        partial.unlink(missing_ok=True)
    return target


def _check_zip(path: Path, limits: Limits) -> None:
    """Refuse a container whose parts expand past the limits, from its directory alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError("The file is not a spreadsheet doclane can read") from exc
    total = sum(member.file_size for member in members)
    if total > limits.max_zip_bytes:
        raise DocumentError(
            f"The spreadsheet expands to {total:,} bytes; at most {limits.max_zip_bytes:,} are read"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_MIN_BYTES and ratio > limits.max_zip_ratio:
            raise DocumentError(
                f"The spreadsheet is refused as a likely decompression bomb: a part of it "
                f"expands {ratio:,.0f} times (at most {limits.max_zip_ratio:,})"
            )


class _CappedText:
    """A text file that refuses to grow past ``max_bytes`` (of UTF-8)."""

    def __init__(self, out: TextIO, max_bytes: int) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text.encode())
        if self.size > self.max_bytes:
            raise DocumentError(
                f"The spreadsheet's first sheet is over {self.max_bytes:,} bytes as a table; "
                "it is too large to read"
            )
        return self.out.write(text)


def _write_rows(sheet: CalamineSheet, out: _CappedText, report: ReportProgress) -> None:
    writer = csv.writer(out)
    for number, row in enumerate(sheet.iter_rows(), 1):
        writer.writerow([_cell(value) for value in row])
        if number % PROGRESS_ROWS == 0:
            report(number, sheet.height, f"Reading row {number:,} of {sheet.height:,}")


def _cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # Excel stores every number as a float
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return value
