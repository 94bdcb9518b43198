"""API keys and per-user isolation, tried as an attacker would: on the real app in-process for
REST, and on real servers for WebSocket (each way to show a key) and for the log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from doclane.app import create_app
from doclane.auth import FIRST_MESSAGE_SECONDS, Keyring
from doclane.errors import DoclaneError
from doclane.settings import Settings
from tests.documents import make_csv, make_report_pdf, png_bytes
from tests.server import ServerProcess
from tests.wsclient import FINAL_TYPES, check_stream

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"
KEYS = f"alice:{ALICE},bob:sha256:{hashlib.sha256(BOB.encode()).hexdigest()}"
OPEN_ROUTES = {"/api/health", "/api/ready"}


def as_user(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def keyed_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path / "data", run_worker=False, api_keys=KEYS)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://doclane") as client:
            yield client


async def post(api: httpx.AsyncClient, key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers.update(as_user(key))
    return await api.post(
        "/api/upload", files={"file": ("a.png", png_bytes())}, data={"prompt": "Q"}, headers=headers
    )


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"success", "error"} and body["success"] is False


def test_keys_from_the_setting_and_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team\n\ncarol:carol-secret\n")
    keyring = Keyring.from_settings(Settings(api_keys=KEYS, api_keys_file=keys_file))
    assert keyring.enabled
    assert [keyring.user_for(k) for k in (ALICE, BOB, "carol-secret")] == ["alice", "bob", "carol"]
    # a hash is not the key; neither is a prefix, nor another user's name
    hashed = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()
    assert [keyring.user_for(k) for k in (hashed, ALICE[:-1], "alice", "")] == [None] * 4
    assert not Keyring.from_settings(Settings()).enabled
    for bad in ("alice", "alice:", ":key", "a:sha256:abc", "a:same,b:same"):
        with pytest.raises(DoclaneError) as error:
            Keyring.from_settings(Settings(api_keys=bad))
        assert "same" not in error.value.message  # a key is never quoted back


async def test_every_route_but_health_and_ready_needs_a_key(
    keyed_api: httpx.AsyncClient,
) -> None:
    paths = (await keyed_api.get("/openapi.json")).json()["paths"]  # every route, as served
    routes = {path: methods for path, methods in paths.items() if path.startswith("/api/")}
    assert set(routes) >= {"/api/upload", "/api/jobs/{job_id}"}
    checked = 0
    for route, methods in routes.items():
        for method in methods:
            path = route.replace("{job_id}", "some-job")
            if route in OPEN_ROUTES:
                response = await keyed_api.request(method, path)
                assert response.status_code in (200, 503), (method, path)
                continue
            for headers in ({}, as_user("wrong"), {"Authorization": f"Basic {ALICE}"}):
                assert_unauthorized(await keyed_api.request(method, path, headers=headers))
            checked += 1
    assert checked >= 4  # upload, get, delete, cancel
    health = (await keyed_api.get("/api/health")).json()["data"]
    assert health["auth"] is True


async def test_rest_isolation_between_two_users(keyed_api: httpx.AsyncClient) -> None:
    response = await post(keyed_api, ALICE, **{"Idempotency-Key": "same-key"})
    alice_job = response.json()["data"]["job_id"]
    bobs = await post(keyed_api, BOB, **{"Idempotency-Key": "same-key"})  # his own key space
    bob_job = bobs.json()["data"]["job_id"]
    assert bob_job != alice_job
    own = await keyed_api.get(f"/api/jobs/{alice_job}", headers=as_user(ALICE))
    assert own.status_code == 200 and own.json()["data"]["job_id"] == alice_job
    for method, path in [
        ("GET", f"/api/jobs/{alice_job}"),
        ("DELETE", f"/api/jobs/{alice_job}"),
        ("POST", f"/api/jobs/{alice_job}/cancel"),
    ]:
        theirs = await keyed_api.request(method, path, headers=as_user(BOB))
        missing = await keyed_api.request(
            method, path.replace(alice_job, "no-such-job"), headers=as_user(BOB)
        )
        assert theirs.status_code == missing.status_code == 404, theirs.text
        assert theirs.json()["error"] == missing.json()["error"].replace("no-such-job", alice_job)
    still = await keyed_api.get(f"/api/jobs/{alice_job}", headers=as_user(ALICE))
    assert still.json()["data"]["status"] == "pending"  # bob's cancel did nothing


async def test_auth_off_is_one_user_as_before(api: httpx.AsyncClient) -> None:
    response = await post(api, None)
    job_id = response.json()["data"]["job_id"]
    assert (await api.get(f"/api/jobs/{job_id}")).status_code == 200
    assert (await api.get("/api/health")).json()["data"]["auth"] is False


# --- real servers ---------------------------------------------------------------------------


async def recv_all(ws: ClientConnection, until: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """Messages up to and including the first for which `until` holds."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(120):
        while not seen or not until(seen[-1]):
            seen.append(json.loads(await ws.recv()))
    return seen


async def closed_with(ws: ClientConnection) -> tuple[int, list[Any]]:
    """The close code the server sent, and what it sent before."""
    got: list[Any] = []
    with anyio.fail_after(FIRST_MESSAGE_SECONDS + 10):
        try:
            while True:
                got.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, got


async def upload_as(server: ServerProcess, key: str, path: Path, prompt: str) -> str:
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        with path.open("rb") as file:
            response = await http.post(
                "/api/upload",
                files={"file": (path.name, file)},
                data={"prompt": prompt},
                headers=as_user(key),
            )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["data"]["job_id"]
    return job_id


@pytest.mark.slow
async def test_two_users_stream_only_their_own_jobs(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_API_KEYS": KEYS})
    pdf, csv = make_report_pdf(tmp_path / "r.pdf"), make_csv(tmp_path / "s.csv")
    async with (
        connect(server.ws, additional_headers=as_user(ALICE)) as alice_header,
        connect(f"{server.ws}?token={BOB}") as bob_query,
        connect(server.ws) as alice_first,
        connect(server.ws) as bob_first,
        connect(server.ws) as nobody,
        connect(f"{server.ws}?token=wrong") as wrong_query,
        connect(server.ws) as wrong_first,
        connect(server.ws, additional_headers=as_user("wrong")) as wrong_header,
    ):
        await alice_first.send(json.dumps({"type": "auth", "token": ALICE}))
        await bob_first.send(json.dumps({"type": "auth", "token": BOB}))
        await wrong_first.send(json.dumps({"type": "auth", "token": "wrong"}))
        async with anyio.create_task_group() as tg:  # two users' jobs at once
            jobs: dict[str, str] = {}

            async def submit(user: str, key: str, path: Path, prompt: str) -> None:
                jobs[user] = await upload_as(server, key, path, prompt)

            tg.start_soon(submit, "alice", ALICE, pdf, "What was revenue?")
            tg.start_soon(submit, "bob", BOB, csv, "What is the total revenue?")
        sockets = {"alice": [alice_header, alice_first], "bob": [bob_query, bob_first]}
        for user, mine in sockets.items():
            theirs = jobs["bob" if user == "alice" else "alice"]
            for ws in mine:
                got = await recv_all(
                    ws, lambda e, u=user: e.get("job_id") == jobs[u] and e["type"] in FINAL_TYPES
                )
                check_stream(got)  # the whole of their own job, and nothing else
                assert {e["job_id"] for e in got} == {jobs[user]}
                # A replayed subscribe to the other user's job: as if it did not exist.
                await ws.send(json.dumps({"type": "subscribe", "job_id": theirs, "after_seq": 0}))
                await ws.send(json.dumps({"type": "ping"}))
                rest = await recv_all(ws, lambda e: e["type"] == "pong")
                assert rest[0] == {"type": "error", "job_id": theirs, "error": "Job not found"}
                assert all(e.get("job_id") != theirs for e in rest[1:])
        for ws in (nobody, wrong_query, wrong_first, wrong_header):
            code, before = await closed_with(ws)
            assert code == 1008 and before == []  # never a job event
    log = server.log()
    assert "/ws?token=" in log  # the line is there, its token is not
    assert ALICE not in log and BOB not in log and "token=wrong" not in log


async def test_auth_off_sockets_get_every_event(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    async with connect(server.ws) as ws, httpx.AsyncClient(base_url=server.http) as http:
        with make_report_pdf(tmp_path / "r.pdf").open("rb") as file:
            response = await http.post("/api/upload", files={"file": ("r.pdf", file)})
        job_id = response.json()["data"]["job_id"]
        got = await recv_all(ws, lambda e: e.get("job_id") == job_id and e["type"] in FINAL_TYPES)
        check_stream([e for e in got if e.get("job_id") == job_id])
