"""Receive a multipart upload by streaming the file part straight to disk.

The body is never held whole in memory (a small file is: it is stored in one write, with no
spooled file to move), and the size limit is enforced as bytes arrive: a body that announces
too much in ``Content-Length`` is refused before a byte is read, and one that sends too much is
cut off at the limit. A failed upload leaves no file behind.

Every malformed body is the client's error (a 400): a parser complaint, a boundary the parser
refuses, a part without a name, a body that stops before its closing boundary. A client that goes
away mid-body is routine on the internet: one INFO line, no traceback.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from doclane.documents.sniff import HEAD_BYTES
from doclane.errors import InvalidRequest, StorageFull, UploadTimeout, UploadTooLarge
from doclane.offload import run_blocking
from doclane.storage import write_file

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024 * 1024  # a text field (prompt, priority, …); the prompt is checked later
MAX_PARTS = 16
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the text fields and part headers around the file
SPOOL_IN_MEMORY = 64 * 1024  # a file part up to this size is held in memory, not spooled
SMALL_BODY = SPOOL_IN_MEMORY  # a body this small costs less to read than a look at the limits

# Unicode categories a shown name must not hold: control (Cc), format (Cf: the bidi overrides
# that make "invoice\u202efdp.exe" show as "invoiceexe.pdf", zero-width characters), line and
# paragraph separators (Zl, Zp). Other spaces (Zs) become a plain space.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_SPACES = re.compile(r" {2,}")

log = logging.getLogger(__name__)


class _ClientGone(Exception):
    """Reading the body failed: the client disconnected (or its connection broke) mid-upload."""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None  # None: the form had no file
    file_size: int = 0
    head: bytes = b""  # the file's first HEAD_BYTES, kept to sniff its type without a read
    held: bytes | None = None  # the whole file, if small enough to be kept in memory
    file_path: Path | None = None  # else where it was spooled

    async def on_disk(self, spool_dir: Path) -> Path:
        """The file as a local file: where it was spooled, or a new one in ``spool_dir`` with
        what was held (which then is dropped). A full disk is StorageFull, nothing left."""
        if self.file_path is None:
            assert self.held is not None, "the form has no file"
            path = spool_dir / f"incoming-{uuid.uuid4().hex}"
            await write_file(path, self.held)
            self.file_path, self.held = path, None
        return self.file_path


class _Spool:
    """The file part on its way in. Held in memory up to ``SPOOL_IN_MEMORY`` bytes, so that a
    small file never goes through the spool (no open, write per chunk, close and move, each
    leaving the event loop); a larger one streams to a file in the spool from then on."""

    def __init__(self, form: ReceivedForm, spool_dir: Path, clock: _BodyClock) -> None:
        self._form = form
        self._spool_dir = spool_dir
        self._clock = clock
        self._held = bytearray()
        self._out: anyio.AsyncFile[bytes] | None = None

    async def write(self, data: bytes) -> None:
        if self._out is None:
            self._held += data
            if len(self._held) <= SPOOL_IN_MEMORY:
                return
            data, self._held = bytes(self._held), bytearray()
        with self._clock.writing():
            if self._out is None:
                path = self._spool_dir / f"incoming-{uuid.uuid4().hex}"
                self._form.file_path = path  # before the open: a failure removes it
                self._out = await anyio.open_file(path, "wb")
            await self._out.write(data)

    async def close(self) -> None:
        if self._out is None:
            self._form.held = bytes(self._held)
        else:
            with self._clock.writing():
                await self._out.aclose()

    async def abandon(self) -> None:
        """Close the file, if one was opened, after a failure (that error is the one to report;
        a time-out's cancelled scope must not cut the close short)."""
        if self._out is not None:
            with suppress(OSError), anyio.CancelScope(shield=True):
                await self._out.aclose()


def safe_file_name(raw: str) -> str:
    """The uploaded name as shown back to users: no directories, no control, format (bidi) or
    separator characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in unicodedata.normalize("NFC", name):
        category = unicodedata.category(char)
        if category not in _REMOVED_CATEGORIES:
            kept.append(" " if category == "Zs" else char)
    name = _SPACES.sub(" ", "".join(kept)).strip()
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) < 16 else name[:255]
    return name or "upload"


def check_content_length(header: str | None, max_file_bytes: int) -> int | None:
    """The announced body length (None if not announced); raises if it is over the limit."""
    if header is None:
        return None
    try:
        length = int(header)
    except ValueError:
        raise InvalidRequest("Invalid Content-Length header", 400) from None
    if length > max_file_bytes + FORM_OVERHEAD_BYTES:
        raise _too_large(max_file_bytes)
    return length


def _too_large(max_file_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"File too large: the limit is {max_file_bytes // (1024 * 1024)} MiB")


@dataclass(frozen=True)
class BodyTimeouts:
    """How long a body may stall between two reads (``idle``), and take in all (``total``)."""

    idle: float = math.inf
    total: float = math.inf


async def receive_form(
    content_type: str,
    body: AsyncIterator[bytes],
    spool_dir: Path,
    max_file_bytes: int,
    timeouts: BodyTimeouts = BodyTimeouts(),
) -> ReceivedForm:
    """Parse a multipart body; the file part is held in memory if small, else lands in
    ``spool_dir`` under a fresh name.

    On any error the spooled file is removed before the error propagates. A body that stalls
    or takes too long (``timeouts``) is an UploadTimeout (408): a slow client cannot hold a
    connection and a file open for ever.
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
            "on_end",
        )
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    except FormParserError as exc:  # e.g. a boundary over python-multipart's 256 bytes
        raise InvalidRequest(f"Invalid multipart boundary: {exc}", 400) from None
    clock = _BodyClock(timeouts)
    try:
        with clock.scope:
            await _consume(parser, events, body, form, spool_dir, max_file_bytes, clock)
        if clock.scope.cancelled_caught:
            raise TimeoutError
    except BaseException as exc:
        if (spooled := form.file_path) is not None:
            with anyio.CancelScope(shield=True):  # off the event loop, even when cancelled
                await run_blocking(lambda: spooled.unlink(missing_ok=True))
        if isinstance(exc, _ClientGone):
            log.info(
                "upload dropped: the client went away mid-body (%s); %d file bytes discarded",
                exc.__cause__.__class__.__name__,
                form.file_size,
            )
            # Nobody will read this answer; it only ends the request without a traceback.
            raise InvalidRequest(
                "The upload was interrupted: the client disconnected", 400
            ) from None
        if isinstance(exc, TimeoutError):  # before OSError, of which it is one
            slow = not clock.stalled
            log.info("upload dropped: %s", "too slow in all" if slow else "the body stalled")
            raise UploadTimeout(
                f"The upload took longer than {timeouts.total:g} s"
                if slow
                else f"The upload stalled: no data for {timeouts.idle:g} s"
            ) from None
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
    clock: _BodyClock,
) -> None:
    header_field = b""
    headers: dict[bytes, bytes] = {}
    part_name: str | None = None
    field_value = bytearray()
    out: _Spool | None = None
    parts = 0
    ended = False
    try:
        while (chunk := await _next_chunk(body, clock)) is not None:
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise InvalidRequest(f"Malformed multipart body: {exc}", 400) from None
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
                    if b"name" not in disposition:  # RFC 7578: every part names its field
                        raise InvalidRequest(
                            "Malformed multipart body: a part has no Content-Disposition name",
                            400,
                        )
                    part_name = disposition[b"name"].decode("utf-8", "replace")
                    if part_name == FILE_FIELD and b"filename" in disposition:
                        if form.file_name is not None:
                            raise InvalidRequest("Send exactly one file", 400)
                        form.file_name = safe_file_name(
                            disposition[b"filename"].decode("utf-8", "replace")
                        )
                        out = _Spool(form, spool_dir, clock)
                elif event == "on_part_data":
                    if out is not None:
                        form.file_size += len(data)
                        if form.file_size > max_file_bytes:
                            raise _too_large(max_file_bytes)
                        if len(form.head) < HEAD_BYTES:
                            form.head += data[: HEAD_BYTES - len(form.head)]
                        await out.write(data)
                    else:
                        field_value += data
                        if len(field_value) > MAX_FIELD_BYTES:
                            raise InvalidRequest(f"Form field {part_name!r} is too long", 413)
                elif event == "on_part_end":
                    if out is not None:
                        await out.close()
                        out = None
                    elif part_name:
                        form.fields[part_name] = field_value.decode("utf-8", "replace")
                elif event == "on_end":
                    ended = True
            events.clear()
        parser.finalize()  # does not check that the body was complete (python-multipart 0.0.x)
        if not ended:  # a truncated body would otherwise queue a truncated file
            raise InvalidRequest(
                "Malformed multipart body: it ended before the closing boundary", 400
            )
    finally:
        if out is not None:  # only when failing already
            await out.abandon()


class _BodyClock:
    """Both body time-outs as one cancel scope for the whole body (not one more per read).

    A read may wait ``idle`` seconds, within the total. Moving the scope's deadline reschedules
    a timer, and a small body comes in a dozen reads or more, so the deadline moves only when it
    falls outside ``[idle, idle * (1 + SLACK)]`` from now: a stall still ends no sooner than
    ``idle`` after the last data, and at most ``idle * SLACK`` later. A write to the spool
    counts only against the total (a slow disk is not a stalled client)."""

    SLACK = 0.125

    def __init__(self, timeouts: BodyTimeouts) -> None:
        self.idle = timeouts.idle
        self.end = anyio.current_time() + timeouts.total
        self.scope = anyio.CancelScope(deadline=self.end)
        self.stalled = False  # whether the idle time-out ended the body (else the total one)

    @contextmanager
    def reading(self) -> Iterator[None]:
        soonest = min(self.end, anyio.current_time() + self.idle)
        if not soonest <= self.scope.deadline <= soonest + self.idle * self.SLACK:
            self.scope.deadline = min(self.end, soonest + self.idle * self.SLACK)
        try:
            yield
        finally:
            # The deadline in force tells which fired: the loop's timers may fire a hair
            # before time.monotonic() reaches it, so the clock cannot.
            self.stalled = self.scope.cancel_called and self.scope.deadline < self.end

    @contextmanager
    def writing(self) -> Iterator[None]:
        self.scope.deadline = self.end
        yield


async def _next_chunk(body: AsyncIterator[bytes], clock: _BodyClock) -> bytes | None:
    """The next chunk of the body, or None at its end; the clock's scope is cancelled when
    the read outlasts a time-out.

    A failed read is the client's doing, told apart here from a failed write (``StorageFull``).
    """
    try:
        with clock.reading():
            return await anext(body)
    except StopAsyncIteration:
        return None
    except (ClientDisconnect, OSError) as exc:
        raise _ClientGone from exc
