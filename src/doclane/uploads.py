"""Receive a multipart upload by streaming the file part straight to disk.

The body is never held whole in memory, and the size limit is enforced as bytes arrive: a body
that announces too much in ``Content-Length`` is refused before a byte is read, and one that sends
too much is cut off at the limit. A failed upload leaves no file behind.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from doclane.errors import InvalidRequest, StorageFull, UploadTooLarge

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024 * 1024  # a text field (prompt, priority, …); the prompt is checked later
MAX_PARTS = 16
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the text fields and part headers around the file

_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_path: Path | None = None
    file_size: int = 0


def safe_file_name(raw: str) -> str:
    """The uploaded name as shown back to users: no directories, no control characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("", unicodedata.normalize("NFC", name)).strip()
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) < 16 else name[:255]
    return name or "upload"


def check_content_length(header: str | None, max_file_bytes: int) -> None:
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise InvalidRequest("Invalid Content-Length header", 400) from None
    if length > max_file_bytes + FORM_OVERHEAD_BYTES:
        raise _too_large(max_file_bytes)


def _too_large(max_file_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"File too large: the limit is {max_file_bytes // (1024 * 1024)} MiB")


async def receive_form(
    content_type: str, body: AsyncIterator[bytes], spool_dir: Path, max_file_bytes: int
) -> ReceivedForm:
    """Parse a multipart body; the file part lands in ``spool_dir`` under a fresh name.

    On any error the spooled file is removed before the error propagates.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Expected a multipart/form-data body with a 'file' field", 400)

    form = ReceivedForm()
    events: list[tuple[str, bytes]] = []

    def on(name: str) -> object:
        return lambda *args: events.append((name, args[0][args[1] : args[2]] if args else b""))

    callbacks = {
        name: on(name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        await _consume(parser, events, body, form, spool_dir, max_file_bytes)
    except BaseException as exc:
        if form.file_path is not None:
            form.file_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, a quota, an I/O error: on write or on close
            raise StorageFull("The server could not store the file") from exc
        raise
    return form


async def _consume(
    parser: MultipartParser,
    events: list[tuple[str, bytes]],
    body: AsyncIterator[bytes],
    form: ReceivedForm,
    spool_dir: Path,
    max_file_bytes: int,
) -> None:
    header_field = b""
    headers: dict[bytes, bytes] = {}
    part_name: str | None = None
    field_value = bytearray()
    out: anyio.AsyncFile[bytes] | None = None
    parts = 0
    try:
        async for chunk in body:
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise InvalidRequest("Malformed multipart body", 400) from None
            for event, data in events:
                if event == "on_part_begin":
                    parts += 1
                    if parts > MAX_PARTS:
                        raise InvalidRequest("Too many form fields", 400)
                    headers, header_field, field_value = {}, b"", bytearray()
                elif event == "on_header_field":
                    header_field += data
                elif event == "on_header_value":
                    headers[header_field.lower()] = headers.get(header_field.lower(), b"") + data
                elif event == "on_header_end":
                    header_field = b""
                elif event == "on_headers_finished":
                    _, disposition = parse_options_header(headers.get(b"content-disposition"))
                    part_name = disposition.get(b"name", b"").decode("utf-8", "replace")
                    if part_name == FILE_FIELD and b"filename" in disposition:
                        if form.file_path is not None:
                            raise InvalidRequest("Send exactly one file", 400)
                        form.file_name = safe_file_name(
                            disposition[b"filename"].decode("utf-8", "replace")
                        )
                        form.file_path = spool_dir / f"incoming-{uuid.uuid4().hex}"
                        out = await anyio.open_file(form.file_path, "wb")
                elif event == "on_part_data":
                    if out is not None:
                        form.file_size += len(data)
                        if form.file_size > max_file_bytes:
                            raise _too_large(max_file_bytes)
                        await out.write(data)
                    else:
                        field_value += data
                        if len(field_value) > MAX_FIELD_BYTES:
                            raise InvalidRequest(f"Form field {part_name!r} is too long", 413)
                elif event == "on_part_end":
                    if out is not None:
                        await out.aclose()
                        out = None
                    elif part_name:
                        form.fields[part_name] = field_value.decode("utf-8", "replace")
            events.clear()
        parser.finalize()
    finally:
        if out is not None:  # only when failing already: that error is the one to report
            with suppress(OSError):
                await out.aclose()
