"""Hostile multipart bodies: every parser error is a 400, a truncated body is refused, and a
client that drops mid-upload costs one INFO line, never a traceback or a leftover file."""

from __future__ import annotations

import functools
import json
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest

from doclane.errors import InvalidRequest, UploadTimeout
from doclane.settings import Settings
from doclane.uploads import SPOOL_IN_MEMORY, BodyTimeouts, receive_form
from tests.documents import png_bytes
from tests.server import ServerProcess
from tests.test_upload import assert_error, leftover_files

pytestmark = pytest.mark.anyio

B = b"b0undary"
FILE_HEAD = b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
FILE_PART = b"--" + B + b"\r\n" + FILE_HEAD + png_bytes() + b"\r\n"
PROMPT_PART = b"--" + B + b'\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n'
CLOSE = b"--" + B + b"--\r\n"
DROP_WAIT = 5.0  # seconds the server gets to notice a dropped client


def content_type(boundary: bytes = B) -> str:
    return f"multipart/form-data; boundary={boundary.decode()}"


async def post_raw(api: httpx.AsyncClient, body: bytes, ctype: str) -> httpx.Response:
    return await api.post("/api/upload", content=body, headers={"content-type": ctype})


async def test_well_formed_raw_body_is_queued(api: httpx.AsyncClient, settings: Settings) -> None:
    # The baseline the truncations below cut from: whole, it is accepted.
    response = await post_raw(api, FILE_PART + PROMPT_PART + CLOSE, content_type())
    assert response.status_code == 200, response.text
    assert leftover_files(settings) == [response.json()["data"]["job_id"]]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(FILE_PART[:-50], id="in-file-data"),
        pytest.param(FILE_PART + b"--" + B, id="in-closing-boundary"),
        pytest.param(FILE_PART + b"--" + B + b"-", id="one-hyphen-short"),
        pytest.param(FILE_PART + PROMPT_PART, id="no-closing-boundary"),
        pytest.param(FILE_PART + b"--" + B + b"\r\nContent-Disposition: form-d", id="in-headers"),
        pytest.param(FILE_PART[:20], id="in-first-headers"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_unterminated_body_is_refused(
    api: httpx.AsyncClient, settings: Settings, body: bytes
) -> None:
    response = await post_raw(api, body, content_type())
    assert_error(response, 400, "closing boundary")
    assert leftover_files(settings) == []  # neither the spooled file nor a queued job


@pytest.mark.parametrize(
    ("length", "status"),
    [(255, 200), (256, 200), (257, 400), (300, 400)],
)
async def test_boundary_length_limit(
    api: httpx.AsyncClient, settings: Settings, length: int, status: int
) -> None:
    # python-multipart refuses boundaries over 256 bytes when the parser is built.
    boundary = b"x" * length
    body = b"--" + boundary + b"\r\n" + FILE_HEAD + png_bytes() + b"\r\n--" + boundary + b"--\r\n"
    response = await post_raw(api, body, content_type(boundary))
    if status == 200:
        assert response.status_code == 200, response.text
        assert leftover_files(settings) == [response.json()["data"]["job_id"]]
    else:
        assert_error(response, 400, "boundary", "256")
        assert leftover_files(settings) == []


@pytest.mark.parametrize(
    ("body", "ctype", "words"),
    [
        pytest.param(
            FILE_PART + b"--" + B + b"\r\nContent-Disposition form-data\r\n\r\nx\r\n" + CLOSE,
            content_type(),
            ["malformed", "header"],
            id="header-line-without-colon",
        ),
        pytest.param(
            FILE_PART + b"--" + B + b"\r\n: form-data\r\n\r\nx\r\n" + CLOSE,
            content_type(),
            ["malformed", "header"],
            id="empty-header-name",
        ),
        pytest.param(
            FILE_PART + b"--" + B + b'\r\nContent-Disposition: form-data; name="p"\rX\r\n\r\n',
            content_type(),
            ["malformed"],
            id="header-cr-without-lf",
        ),
        pytest.param(
            FILE_PART + b"--" + B + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n" + CLOSE,
            content_type(),
            ["malformed", "content-disposition"],
            id="part-without-content-disposition",
        ),
        pytest.param(
            FILE_PART + b"--" + B + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + CLOSE,
            content_type(),
            ["malformed", "content-disposition"],
            id="part-without-name",
        ),
        pytest.param(
            FILE_PART + b"--" + B + b"XX\r\n",
            content_type(),
            ["malformed"],
            id="garbage-after-boundary",
        ),
        pytest.param(
            b"--other\r\n" + FILE_HEAD + b"x\r\n--other--\r\n",
            content_type(),
            ["malformed", "boundary"],
            id="boundary-mismatch",
        ),
        pytest.param(
            FILE_PART + CLOSE, "multipart/form-data", ["multipart"], id="no-boundary-parameter"
        ),
        pytest.param(
            FILE_PART + CLOSE, "multipart/form-data; boundary=", ["multipart"], id="empty-boundary"
        ),
    ],
)
async def test_malformed_body_is_a_400(
    api: httpx.AsyncClient, settings: Settings, body: bytes, ctype: str, words: list[str]
) -> None:
    # Most cases follow a valid file part, so the spooled file must be removed too.
    assert_error(await post_raw(api, body, ctype), 400, *words)
    assert leftover_files(settings) == []


async def test_failed_read_is_the_client_not_the_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An OSError while *reading* the body (a broken connection) is not StorageFull (507).
    async def body() -> AsyncIterator[bytes]:
        yield b"--" + B + b"\r\n" + FILE_HEAD + b"partial data"
        raise ConnectionResetError("peer reset")

    caplog.set_level(logging.INFO, logger="doclane.uploads")
    with pytest.raises(InvalidRequest) as raised:
        await receive_form(content_type(), body(), tmp_path, 10_000)
    assert raised.value.status_code == 400
    assert "disconnected" in raised.value.message
    assert list(tmp_path.iterdir()) == []
    dropped = [r for r in caplog.records if "upload dropped" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in dropped] == [(logging.INFO, None)]
    assert "ConnectionResetError" in dropped[0].getMessage()


async def test_a_body_that_keeps_coming_is_never_stalled(tmp_path: Path) -> None:
    """Reads a tenth of a second apart, for four times the idle time-out: the deadline must
    follow the data (it is moved only once in a while, not on every read)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"--" + B + b"\r\n" + FILE_HEAD
        for _ in range(12):
            await anyio.sleep(0.1)
            yield b"a,b\n"
        yield b"\r\n" + CLOSE

    form = await receive_form(content_type(), body(), tmp_path, 10_000, BodyTimeouts(idle=0.3))
    assert form.held == b"a,b\n" * 12


async def test_a_stall_ends_the_body_no_sooner_than_the_idle_time(tmp_path: Path) -> None:
    idle = 0.5
    last_data = 0.0

    async def body() -> AsyncIterator[bytes]:
        nonlocal last_data
        yield b"--" + B + b"\r\n" + FILE_HEAD
        for _ in range(3):
            await anyio.sleep(0.2)
            last_data = time.monotonic()
            yield b"a,b\n"
        await anyio.sleep(60)

    with pytest.raises(UploadTimeout, match="stalled"):
        await receive_form(content_type(), body(), tmp_path, 10_000, BodyTimeouts(idle=idle))
    waited = time.monotonic() - last_data
    assert idle - 0.01 <= waited < idle * 1.125 + 1.0, waited  # timers may fire a hair early


def wait_for(condition: Callable[[], bool], timeout: float = DROP_WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def drop_mid_upload(server: ServerProcess, uploads: Path, reset: bool) -> None:
    """Start an upload over a raw socket, wait until its file is spooled, then vanish."""
    head = b"--" + B + b"\r\n" + FILE_HEAD
    request = (
        b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Content-Type: {content_type()}\r\nContent-Length: 1000000\r\n\r\n".encode()
        + head
        + b"a,b\n" * (SPOOL_IN_MEMORY // 4 + 16384)  # past what is held in memory: spooled
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)  # 128 KiB of a promised 1 MB
        spooled = wait_for(lambda: any(p.name.startswith("incoming-") for p in uploads.iterdir()))
        assert spooled, server.log()
        if reset:  # RST instead of FIN: the server sees a connection error, not an EOF
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_drop_mid_upload_is_one_info_line(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    uploads = Settings(data_dir=server.data_dir).uploads_dir

    def dropped_lines() -> list[str]:
        return [line for line in server.log().splitlines() if "upload dropped" in line]

    def settled(drops: int) -> bool:
        return len(dropped_lines()) >= drops and not any(uploads.iterdir())

    for count, reset in enumerate((False, True), start=1):
        drop_mid_upload(server, uploads, reset)
        done = wait_for(functools.partial(settled, count))
        log = server.log()
        assert done, log
        assert list(uploads.iterdir()) == [], log
        records = [json.loads(line) for line in log.splitlines()]  # one JSON object a line
        assert not [r for r in records if r["level"] not in ("debug", "info")], log
        assert not [r for r in records if "exception" in r or "Traceback" in r["event"]], log
        assert len(dropped_lines()) == count, log  # one line per dropped upload
        assert all('"level": "info"' in line for line in dropped_lines()), log
        assert httpx.get(f"{server.http}/api/health", timeout=5).status_code == 200
