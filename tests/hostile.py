"""Hostile files, made on the fly: each is small to keep, but nasty to parse."""

from __future__ import annotations

from pathlib import Path


def _pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    return bytes(out)


def many_pages_pdf(path: Path, pages: int = 100_000) -> Path:
    """A valid PDF with a huge page count (each page empty), a few MB on disk."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"] * pages
    path.write_bytes(_pdf(objects))
    return path


def deeply_nested_pdf(path: Path, depth: int = 100_000) -> Path:
    """A one-page PDF whose catalog holds an array nested ``depth`` levels deep."""
    nested = b"[" * depth + b"]" * depth
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Junk " + nested + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    ]
    path.write_bytes(_pdf(objects))
    return path


def long_line_csv(path: Path, line_bytes: int = 10 * 1024 * 1024) -> Path:
    """A header, then one 10 MB line."""
    path.write_bytes(b"a,b\n" + b"x" * line_bytes + b",1\n")
    return path
