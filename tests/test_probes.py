"""What operators' tools read: readiness, Prometheus metrics, and the JSON log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from doclane.app import create_app
from doclane.settings import Settings
from tests.documents import make_csv
from tests.postgres import database_or_skip
from tests.prometheus import samples, settled_samples
from tests.server import ServerProcess
from tests.wsclient import follow, upload

pytestmark = pytest.mark.anyio


async def test_ready_and_metrics_of_the_embedded_app(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    ready = await api.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "success": True,
        "data": {"ready": True, "database": "ok", "bus": "ok"},  # no worker here: no model
    }

    before = samples((await api.get("/metrics")).text)
    csv = make_csv(tmp_path / "orders.csv")
    for _ in range(2):
        with csv.open("rb") as file:
            accepted = await api.post("/api/upload", files={"file": file}, data={"prompt": "Sum?"})
        assert accepted.status_code == 200
    refused = await api.post("/api/upload", files={"file": ("a.csv", b"")})
    assert refused.status_code == 400  # an empty file

    response = await api.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    pending = ("doclane_jobs", (("status", "pending"),))
    assert after[pending] == 2  # read from the store: no worker runs them here
    assert after[("doclane_queue_due_jobs", ())] == 2
    assert after[("doclane_queue_oldest_due_seconds", ())] >= 0
    for labels, count in [
        ((("outcome", "accepted"), ("status", "200")), 2),
        (
            (("outcome", "refused"), ("status", "400")),
            1,
        ),
    ]:
        key = ("doclane_uploads_total", labels)
        assert after[key] - before.get(key, 0) == count, key


async def test_a_job_in_the_metrics_and_the_log(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    csv = make_csv(tmp_path / "orders.csv")
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, csv, "How many rows are there?"))["data"]["job_id"]
        await follow(ws, {job_id})
    async with httpx.AsyncClient(base_url=server.http) as http:
        ready = (await http.get("/api/ready")).json()
        [found] = await settled_samples(
            http,
            ["/metrics"],
            lambda f: (
                f[0].get(("doclane_job_run_seconds_count", ()), 0) >= 1
                and f[0].get(("doclane_websocket_connections", ()), 1) == 0
            ),
        )
    assert ready["data"] == {"ready": True, "database": "ok", "bus": "ok", "model": "ok"}
    assert found[("doclane_job_runs_total", (("outcome", "completed"),))] == 1
    assert found[("doclane_job_run_seconds_count", ())] == 1
    assert found[("doclane_job_first_chunk_seconds_count", ())] == 1
    assert found[("doclane_llm_generated_tokens_total", ())] > 0
    assert (
        found[("doclane_llm_prompt_tokens_total", ())]
        > found[("doclane_llm_generated_tokens_total", ())]
    )
    assert found[("doclane_websocket_messages_sent_total", ())] >= 3  # updates, chunk, final
    assert found[("doclane_websocket_connections", ())] == 0  # closed again

    # A log line per record, JSON (stderr is a file here); the job's lines name the job.
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all({"event", "level", "timestamp", "logger"} <= set(line) for line in lines)
    of_job = [line for line in lines if job_id in line["event"]]
    assert of_job and all(line.get("job_id") == job_id for line in of_job), of_job
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any("/api/upload" in line["event"] for line in access)


async def test_not_ready_when_the_database_is_gone(
    start_server: Callable[..., ServerProcess],
) -> None:
    with database_or_skip() as url:
        server = start_server({"DOCLANE_DATABASE_URL": url})
        async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
            assert (await http.get("/api/ready")).status_code == 200
            import psycopg

            dbname = url.rsplit("/", 1)[1]
            admin = re.sub(r"/[^/]+$", "/postgres", url)
            with psycopg.connect(admin, autocommit=True) as conn:  # the database vanishes
                conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            response = await http.get("/api/ready")
            health = await http.get("/api/health")
            refused = await http.post(
                "/api/upload", files={"file": ("a.csv", b"a,b\n1,2\n")}, data={"prompt": "?"}
            )
            job = await http.get("/api/jobs/0b0e6f9a-0000-4000-8000-000000000000")
    for answer in (refused, job):  # said plainly, with when to try again; no traceback
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.json() == {
            "success": False,
            "error": "The job database is unreachable; try again shortly",
        }
    assert "Traceback" not in server.log()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False and body["data"]["ready"] is False
    assert body["data"]["database"] != "ok" and body["error"].startswith("Not ready: database")
    assert health.status_code == 200  # alive, only not ready


async def test_metrics_need_a_key_when_auth_is_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", run_worker=False, api_keys="ops:s3cret-key")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            anonymous = await http.get("/metrics")
            keyed = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-key"})
            ready = await http.get("/api/ready")
    assert anonymous.status_code == 401
    assert keyed.status_code == 200 and "doclane_jobs" in keyed.text
    assert ready.status_code == 200  # probes stay open
