"""Deleting a job deletes all of it: its row, its events, its upload and what was derived from
it; on request (DELETE of a finished job), and DOCLANE_RETENTION_DAYS after it ended."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from doclane.jobs import open_store
from doclane.retention import sweep_interval
from tests.documents import make_report_pdf, stored_jobs
from tests.server import ServerProcess
from tests.wsclient import follow, upload

pytestmark = pytest.mark.anyio


async def run_to_the_end(server: ServerProcess, document: Path) -> str:
    async with connect(server.ws) as ws:
        job_id: str = (await upload(server.http, document, "What was revenue?"))["data"]["job_id"]
        await follow(ws, {job_id})
    return job_id


async def logged_events(server: ServerProcess, job_id: str) -> list[object]:
    store = open_store(f"sqlite:///{server.data_dir / 'doclane.db'}")
    await store.open()
    try:
        return list(await store.events_after(job_id, 0))
    finally:
        await store.close()


async def test_delete_of_a_finished_job_deletes_it(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    job_id = await run_to_the_end(server, make_report_pdf(tmp_path / "r.pdf"))
    uploads = server.data_dir / "uploads"
    assert stored_jobs(uploads) == [job_id]
    assert await logged_events(server, job_id) != []
    async with httpx.AsyncClient(base_url=server.http) as http:
        deleted = await http.delete(f"/api/jobs/{job_id}")
        assert deleted.status_code == 200, deleted.text
        data = deleted.json()["data"]
        assert data["job_id"] == job_id and data["status"] == "completed" and data["ai_response"]
        assert (await http.get(f"/api/jobs/{job_id}")).status_code == 404
        assert (await http.delete(f"/api/jobs/{job_id}")).status_code == 404  # once
    assert stored_jobs(uploads) == []
    assert await logged_events(server, job_id) == []
    async with connect(server.ws) as ws:  # nothing left to replay
        await ws.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
        with anyio.fail_after(10):
            assert json.loads(await ws.recv()) == {
                "type": "error",
                "job_id": job_id,
                "error": "Job not found",
            }


@pytest.mark.slow
async def test_finished_jobs_are_deleted_after_the_retention(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    days = 5 / 86_400  # five seconds
    server = start_server({"DOCLANE_RETENTION_DAYS": str(days)})
    job_id = await run_to_the_end(server, make_report_pdf(tmp_path / "r.pdf"))
    uploads = server.data_dir / "uploads"
    assert stored_jobs(uploads) == [job_id]
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get(f"/api/jobs/{job_id}")).status_code == 200  # not yet
        with anyio.fail_after(5 + 3 * sweep_interval(days) + 10):
            while (await http.get(f"/api/jobs/{job_id}")).status_code != 404:
                await anyio.sleep(0.2)
    assert stored_jobs(uploads) == []
    assert await logged_events(server, job_id) == []
    assert "retention: 1 finished job(s)" in server.log()
