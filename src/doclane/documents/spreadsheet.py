"""Excel and OpenDocument spreadsheets: the first sheet becomes a CSV file beside the upload,
written once, so the table path (DuckDB profile, computed answers) reads it like any CSV."""

from __future__ import annotations

import csv
import datetime
import os
from pathlib import Path

from python_calamine import CalamineError, load_workbook

from doclane.errors import DocumentError

ZIP_MAGIC = b"PK\x03\x04"  # .xlsx and .ods are ZIP files
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls


def is_spreadsheet(head: bytes) -> bool:
    return head.startswith((ZIP_MAGIC, OLE_MAGIC))


def check_spreadsheet(path: Path) -> None:
    try:
        workbook = load_workbook(str(path))
        if not workbook.sheet_names:
            raise DocumentError("The spreadsheet has no sheets")
    except (CalamineError, OSError, ValueError) as exc:
        raise DocumentError("The file is not a spreadsheet doclane can read") from exc


def as_csv(path: Path) -> Path:
    """The CSV of a spreadsheet's first sheet (made on first use); a CSV file as it is."""
    with path.open("rb") as file:
        if not is_spreadsheet(file.read(len(OLE_MAGIC))):
            return path
    target = path.with_name(path.name + ".csv")
    if not target.exists():
        try:
            rows = load_workbook(str(path)).get_sheet_by_index(0).to_python()
        except (CalamineError, OSError, ValueError) as exc:
            raise DocumentError("The spreadsheet could not be read") from exc
        partial = target.with_name(target.name + ".part")
        with partial.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            for row in rows:
                writer.writerow([_cell(value) for value in row])
        os.replace(partial, target)  # whole or not at all, even if the worker dies mid-write
    return target


def _cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # Excel stores every number as a float
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return value
