"""Tell a file's real type from its first bytes; the name's extension is never trusted."""

from __future__ import annotations

import re

from doclane.jobs.model import DocumentKind

HEAD_BYTES = 8192

_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
# Control characters a text never holds (tab, line feed, form feed and carriage return aside).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


def sniff(head: bytes) -> DocumentKind | None:
    """The document kind the bytes are, or None when doclane cannot read them."""
    if b"%PDF-" in head[:1024]:
        return DocumentKind.PDF
    if head.startswith(_IMAGE_SIGNATURES) or _is_webp(head) or _is_bmp(head):
        return DocumentKind.IMAGE
    if _looks_like_text(head):
        return DocumentKind.CSV
    return None


def _is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _is_bmp(head: bytes) -> bool:
    # "BM" alone is too weak (a CSV may start with it): also require a known DIB header size.
    return head[:2] == b"BM" and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the head's end
            text = head[: exc.start].decode("utf-8")
        else:
            text = head.decode("cp1252", errors="replace")
    controls = len(_CONTROLS.findall(text))
    replaced = text.count("\ufffd")
    return (controls + replaced) <= len(text) // 100
