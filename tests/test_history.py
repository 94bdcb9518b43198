"""GET /api/jobs through the real ASGI app: newest first, pages that follow a cursor while jobs
are added, the status filter, the limit's bounds, bad cursors, and one user's jobs only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from doclane.app import create_app
from doclane.jobs import JobStore
from doclane.settings import Settings
from tests.documents import png_bytes
from tests.test_auth import ALICE, BOB, KEYS, as_user
from tests.test_upload import assert_error

pytestmark = pytest.mark.anyio


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI

    @property
    def store(self) -> JobStore:
        store: JobStore = self.app.state.services.store
        return store

    async def upload(self, prompt: str = "Q", key: str | None = None) -> str:
        response = await self.client.post(
            "/api/upload",
            files={"file": ("a.png", png_bytes())},
            data={"prompt": prompt},
            headers=as_user(key) if key else {},
        )
        assert response.status_code == 200, response.text
        job_id: str = response.json()["data"]["job_id"]
        return job_id

    async def page(self, key: str | None = None, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            "/api/jobs", params=params, headers=as_user(key) if key else {}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["success"] is True and set(body) == {"success", "data"}
        assert set(body["data"]) == {"jobs", "next"}
        return body

    async def ids(self, key: str | None = None, **params: Any) -> list[list[str]]:
        """Every page's job ids, following `next` to the end."""
        pages = []
        while True:
            data = (await self.page(key, **params))["data"]
            pages.append([job["job_id"] for job in data["jobs"]])
            if data["next"] is None:
                return pages
            params["cursor"] = data["next"]


async def open_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://doclane") as client:
            yield Api(client, app)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """Auth off, no worker: jobs stay queued unless a test claims them."""
    async for opened in open_api(settings):
        yield opened


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", run_worker=False, api_keys=KEYS)
    async for opened in open_api(settings):
        yield opened


async def test_newest_first_each_job_as_get_shows_it(api: Api) -> None:
    assert await api.page() == {"success": True, "data": {"jobs": [], "next": None}}
    jobs = [await api.upload(f"question {n}") for n in range(3)]
    body = await api.page()
    assert [job["job_id"] for job in body["data"]["jobs"]] == jobs[::-1]
    assert body["data"]["next"] is None
    for job in body["data"]["jobs"]:  # exactly GET /api/jobs/{id}'s data, key for key
        single = (await api.client.get(f"/api/jobs/{job['job_id']}")).json()["data"]
        assert list(job.items()) == list(single.items())


async def test_pages_see_each_job_once_while_jobs_are_added(api: Api) -> None:
    before = [await api.upload() for _ in range(7)]
    seen: list[str] = []
    added: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        data = (await api.page(**params))["data"]
        seen += [job["job_id"] for job in data["jobs"]]
        added += [await api.upload(), await api.upload()]  # new jobs between every two pages
        if data["next"] is None:
            break
        params["cursor"] = data["next"]
    assert seen == before[::-1]  # none twice, none missing, in order
    assert await api.ids(limit=100) == [(before + added)[::-1]]  # the new ones: on a new read


async def test_limit_default_and_bounds(api: Api) -> None:
    jobs = [await api.upload() for _ in range(21)]
    first = (await api.page())["data"]
    assert [job["job_id"] for job in first["jobs"]] == jobs[:0:-1]  # 20 by default
    rest = (await api.page(cursor=first["next"]))["data"]
    assert [job["job_id"] for job in rest["jobs"]] == jobs[:1] and rest["next"] is None
    assert await api.ids(limit=100) == [jobs[::-1]]
    assert await api.ids(limit=1) == [[job_id] for job_id in jobs[::-1]]
    for bad in ("0", "101", "-1", "ten"):
        response = await api.client.get("/api/jobs", params={"limit": bad})
        assert_error(response, 422, "limit")


async def test_status_filter(api: Api) -> None:
    running = await api.upload()
    claimed = await api.store.claim("test-worker", 60)
    assert claimed is not None and claimed.job_id == running
    cancelled = await api.upload()
    assert (await api.client.delete(f"/api/jobs/{cancelled}")).status_code == 200
    waiting = [await api.upload(), await api.upload()]
    assert await api.ids(status="pending") == [waiting[::-1]]
    assert await api.ids(status="processing") == [[running]]
    assert await api.ids(status="cancelled") == [[cancelled]]
    assert await api.ids(status="completed") == [[]]
    assert await api.ids(status="pending", limit=1) == [[waiting[1]], [waiting[0]]]
    page = (await api.page(status="cancelled"))["data"]["jobs"]
    assert [job["status"] for job in page] == ["cancelled"]
    for bad in ("scheduled", "done", "PENDING", ""):  # the stored 'scheduled' is not public
        assert_error(await api.client.get("/api/jobs", params={"status": bad}), 422, "status")


@pytest.mark.parametrize("cursor", ["nonsense", "ajEuLTE", "x" * 300, "8c1d…"])
async def test_a_bad_cursor_is_400(api: Api, cursor: str) -> None:
    await api.upload()
    assert_error(await api.client.get("/api/jobs", params={"cursor": cursor}), 400, "cursor")


async def test_each_user_lists_only_their_jobs(keyed: Api) -> None:
    alices = [await keyed.upload(key=ALICE) for _ in range(3)]
    bobs = [await keyed.upload(key=BOB)]
    alices.append(await keyed.upload(key=ALICE))
    assert await keyed.ids(ALICE, limit=2) == [alices[:1:-1], alices[1::-1]]
    assert await keyed.ids(BOB) == [bobs]
    assert await keyed.ids(BOB, status="pending") == [bobs]
    # alice's cursor shows bob nothing of hers: it is only a place in insertion order
    cursor = (await keyed.page(ALICE, limit=1))["data"]["next"]
    assert await keyed.ids(BOB, cursor=cursor) == [bobs]
    for headers in ({}, as_user("wrong")):
        response = await keyed.client.get("/api/jobs", headers=headers)
        assert response.status_code == 401 and response.json()["success"] is False
