"""Hostile files, made on the fly: each is small to keep, but nasty to parse."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import xlsxwriter
import xlwt  # type: ignore[import-untyped]
from PIL import Image

from doclane.documents.warmup import pdf_of

MiB = 1024 * 1024


def many_pages_pdf(path: Path, pages: int = 100_000) -> Path:
    """A valid PDF with a huge page count (each page empty), a few MB on disk."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"] * pages
    path.write_bytes(pdf_of(objects))
    return path


def deeply_nested_pdf(path: Path, depth: int = 100_000) -> Path:
    """A one-page PDF whose catalog holds an array nested ``depth`` levels deep."""
    nested = b"[" * depth + b"]" * depth
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Junk " + nested + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    ]
    path.write_bytes(pdf_of(objects))
    return path


def long_line_csv(path: Path, line_bytes: int = 10 * 1024 * 1024) -> Path:
    """A header, then one 10 MB line."""
    path.write_bytes(b"a,b\n" + b"x" * line_bytes + b",1\n")
    return path


def amplified_pdf(path: Path, pages: int = 200, stream_mib: int = 5) -> Path:
    """Pages that all draw one shared content stream: 5 MiB of text operators, compressed to a
    few KB, parsed again for every page."""
    operator = b"0.001 -0.001 Td (abcdefghijklmnopqrstuvwxyz) Tj\n"
    content = b"BT /F1 1 Tf 0 700 Td\n" + operator * (stream_mib * MiB // len(operator)) + b"ET\n"
    packed = zlib.compress(content, 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 3 0 R >>"
    )
    path.write_bytes(pdf_of(objects + [page] * pages))
    return path


def far_corner_xlsx(path: Path) -> Path:
    """Two cells, at A1 and at the sheet's last cell: a reader that makes the sheet a dense
    rectangle asks for 16,384 x 1,048,576 cells (~512 GiB)."""
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write(0, 0, "a")
    sheet.write(1_048_575, 16_383, "z")
    workbook.close()
    return path


def corner_xls(path: Path, row: int = 65_535, column: int = 255) -> Path:
    """A legacy Excel file (OLE) with cells at A1 and at the BIFF8 sheet's last cell."""
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Sheet1")
    sheet.write(0, 0, "a")
    sheet.write(row, column, "z")
    workbook.save(str(path))
    return path


def repeated_ods(path: Path, rows: int = 1_000_000, columns: int = 1_000) -> Path:
    """An OpenDocument sheet of ~1 KB whose one cell is repeated ``columns`` x ``rows`` times."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Sheet1">'
        f'<table:table-row table:number-rows-repeated="{rows}">'
        f'<table:table-cell table:number-columns-repeated="{columns}" office:value-type="string">'
        "<text:p>boom</text:p></table:table-cell></table:table-row>"
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return path


def shared_strings_xlsx(path: Path, strings: int = 4_000_000) -> Path:
    """An XLSX whose shared-string table holds millions of entries: ~70 MB of XML packed into
    a few hundred KB."""
    workbook = xlsxwriter.Workbook(str(path))
    workbook.add_worksheet().write(0, 0, "a")
    workbook.close()
    with zipfile.ZipFile(path) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    table = b"<si><t>x</t></si>" * strings
    parts["xl/sharedStrings.xml"] = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        b'count="%d" uniqueCount="%d">' % (strings, strings) + table + b"</sst>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return path


def progressive_jpeg(path: Path, side: int = 6000, repeats: int = 2000) -> Path:
    """A progressive JPEG of one flat colour whose AC scans are repeated: each is ~60 bytes (all
    blocks zero, run-length coded) yet makes the decoder visit every block again, so a file of
    about a MB costs minutes of CPU."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    starts = [index for index in range(len(data) - 1) if data[index : index + 2] == b"\xff\xda"]
    scans = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data) - 2], strict=True)]

    def spectral_start(scan: bytes) -> int:
        components = scan[4]
        return scan[5 + 2 * components]

    ac_scans = b"".join(scan for scan in scans if spectral_start(scan) > 0)
    path.write_bytes(data[:-2] + ac_scans * repeats + b"\xff\xd9")
    return path


def huge_tiff(path: Path, side: int = 100_000) -> Path:
    """A TIFF header declaring ``side`` x ``side`` pixels, backed by a few bytes."""
    Image.new("1", (64, 64)).save(path, "TIFF", compression="group4")
    data = bytearray(path.read_bytes())
    for tag in (256, 257):  # ImageWidth, ImageLength
        entry = data.index(tag.to_bytes(2, "little") + (3).to_bytes(2, "little"))
        data[entry + 2 : entry + 12] = (
            (4).to_bytes(2, "little") + (1).to_bytes(4, "little") + side.to_bytes(4, "little")
        )
    path.write_bytes(bytes(data))
    return path


def wide_csv(path: Path, columns: int = 2_000, rows: int = 3) -> Path:
    header = ",".join(f"c{i}" for i in range(columns))
    lines = [",".join(str(r * columns + i) for i in range(columns)) for r in range(rows)]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def bomb_png(path: Path, side: int) -> Path:
    """A 1-bit white square: ``side`` 8000 is 64 million pixels in a ~10 KB file."""
    Image.new("1", (side, side), 1).save(path, format="PNG")
    return path
