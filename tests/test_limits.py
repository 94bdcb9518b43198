"""One user cannot take the server: uploads per minute and unfinished jobs (429 with
Retry-After), the priority a user may ask for, sockets per user (1008) and per process (1013),
and a body that stalls or crawls (408)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from doclane.app import create_app
from doclane.settings import Settings
from tests.documents import png_bytes
from tests.server import ServerProcess

pytestmark = pytest.mark.anyio

KEYS = "alice:alice-key,bob:bob-key"


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """An in-process app with keys and the given limits; no worker, so jobs stay queued."""
    async with anyio.create_task_group():
        clients: list[httpx.AsyncClient] = []

        async def make(**limits: Any) -> httpx.AsyncClient:
            settings = Settings(
                data_dir=tmp_path / f"data{len(clients)}", run_worker=False, api_keys=KEYS, **limits
            )
            app = create_app(settings)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://doclane"
            )
            client.aclose_lifespan = lifespan  # type: ignore[attr-defined]
            clients.append(client)
            return client

        yield make
        for client in clients:
            await client.aclose()
            await client.aclose_lifespan.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def upload(api: httpx.AsyncClient, key: str, **fields: str) -> httpx.Response:
    return await api.post(
        "/api/upload",
        files={"file": ("a.png", png_bytes())},
        data=fields,
        headers={"Authorization": f"Bearer {key}"},
    )


def assert_too_many(response: httpx.Response, *words: str) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["success"] is False and all(w in body["error"] for w in words), body
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


async def test_uploads_per_minute_per_user(limited: Callable[..., Any]) -> None:
    api = await limited(uploads_per_minute=3)
    started = time.time()
    for _ in range(3):
        assert (await upload(api, "alice-key")).status_code == 200
    retry_after = assert_too_many(await upload(api, "alice-key"), "3 a minute")
    assert retry_after >= 60 - (time.time() - started) - 1  # when the first leaves the minute
    assert (await upload(api, "bob-key")).status_code == 200  # another user is not held back


async def test_unfinished_jobs_per_user(limited: Callable[..., Any]) -> None:
    api = await limited(max_active_jobs=2)
    jobs = [(await upload(api, "alice-key")).json()["data"]["job_id"] for _ in range(2)]
    assert_too_many(await upload(api, "alice-key"), "2 queued or running")
    assert (await upload(api, "bob-key")).status_code == 200
    cancel = await api.delete(f"/api/jobs/{jobs[0]}", headers={"Authorization": "Bearer alice-key"})
    assert cancel.json()["data"]["status"] == "cancelled"
    assert (await upload(api, "alice-key")).status_code == 200  # a slot is free again


async def test_the_highest_priority_a_user_may_ask_for(limited: Callable[..., Any]) -> None:
    api = await limited(max_priority=5)
    assert (await upload(api, "alice-key", priority="5")).status_code == 200
    assert (await upload(api, "alice-key", priority="-1000")).status_code == 200
    refused = await upload(api, "alice-key", priority="6")
    assert refused.status_code == 422 and "at most 5" in refused.json()["error"]


async def closed_code(ws: ClientConnection) -> int:
    with anyio.fail_after(10):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code


async def pong(ws: ClientConnection) -> None:
    await ws.send('{"type": "ping"}')
    with anyio.fail_after(10):
        assert await ws.recv() == '{"type":"pong"}'


async def test_sockets_per_user_and_per_process(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        {
            "DOCLANE_API_KEYS": KEYS,
            "DOCLANE_WS_CONNECTIONS_PER_USER": "2",
            "DOCLANE_WS_MAX_CONNECTIONS": "4",
        }
    )
    alice, bob = f"{server.ws}?token=alice-key", f"{server.ws}?token=bob-key"
    async with connect(alice) as first, connect(alice) as second:
        await pong(first)
        await pong(second)
        async with connect(alice) as third:
            assert await closed_code(third) == 1008  # alice's limit
        async with connect(bob) as bobs:
            await pong(bobs)  # bob has his own
            async with connect(bob) as fourth, connect(server.ws) as fifth:
                await pong(fourth)
                assert await closed_code(fifth) == 1013  # the process's limit, before auth
        await second.close()
        with anyio.fail_after(10):  # the server lets go of the closed socket's slot
            while True:
                async with connect(alice) as again:
                    await again.send('{"type": "ping"}')
                    try:
                        if await again.recv() == '{"type":"pong"}':
                            break
                    except ConnectionClosed:
                        await anyio.sleep(0.1)


def raw_upload(server: ServerProcess, body_parts: list[bytes], pause: float) -> bytes:
    """Send an upload's head, then the body parts `pause` seconds apart; the response."""
    boundary = "b0undary"
    head = (
        f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 100000\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.01)
        for part in body_parts:
            try:
                if answer := sock.recv(4096):
                    return answer + rest_of(sock)
            except TimeoutError:
                pass
            try:
                sock.sendall(part)
            except OSError:
                break
            time.sleep(pause)
        sock.settimeout(30)
        return rest_of(sock)


def rest_of(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (it does after a 408)."""
    sock.settimeout(30)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


@pytest.mark.slow
async def test_a_stalled_or_crawling_body_is_cut_off(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        {"DOCLANE_UPLOAD_IDLE_TIMEOUT_SECONDS": "1", "DOCLANE_UPLOAD_DEADLINE_SECONDS": "3"}
    )
    started = time.monotonic()
    stalled = await anyio.to_thread.run_sync(raw_upload, server, [b"x" * 100], 0)
    assert stalled.startswith(b"HTTP/1.1 408") and b"stalled" in stalled, stalled
    assert time.monotonic() - started < 10
    started = time.monotonic()
    crawling = await anyio.to_thread.run_sync(raw_upload, server, [b"x"] * 100, 0.5)
    assert crawling.startswith(b"HTTP/1.1 408") and b"longer than 3 s" in crawling, crawling
    assert 2.5 < time.monotonic() - started < 10
    # Past what is held in memory, the file part is being spooled to disk when it stalls.
    spooled = await anyio.to_thread.run_sync(raw_upload, server, [b"x" * 80_000], 0)
    assert spooled.startswith(b"HTTP/1.1 408") and b"stalled" in spooled, spooled
    assert list((server.data_dir / "uploads").glob("incoming-*")) == []  # nothing left behind
