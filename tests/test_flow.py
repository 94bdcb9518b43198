"""The seed front end's whole flow against a real `doclane serve` and the real local model."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.documents import make_csv, make_png, make_report_pdf
from tests.server import ServerProcess
from tests.wsclient import Received, check_stream, follow, get_job, of_job, queued, upload

pytestmark = pytest.mark.anyio

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.mark.parametrize(
    ("make", "name", "prompt"),
    [
        (make_report_pdf, "report.pdf", "What was the revenue in 2024?"),
        (make_csv, "orders.csv", "How many rows are there?"),
        (make_png, "scan.png", "Describe this image."),
    ],
)
async def test_seed_client_flow(
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
    make: Callable[[Path], Path],
    name: str,
    prompt: str,
) -> None:
    server = start_server()
    document = make(tmp_path / name)
    async with connect(server.ws) as ws, connect(server.ws) as second:
        body = await upload(server.http, document, prompt)
        job_id = body["data"]["job_id"]
        assert body == queued(job_id)
        received: dict[str, list[Received]] = {}

        async def follow_into(name: str, connection: ClientConnection) -> None:
            received[name] = await follow(connection, {job_id})

        async with anyio.create_task_group() as tg:  # read both: an unread socket stalls
            tg.start_soon(follow_into, "first", ws)
            tg.start_soon(follow_into, "second", second)
        events = of_job(received["first"], job_id)
        second_events = of_job(received["second"], job_id)

    answer = check_stream(events)
    assert second_events == events  # every client gets every event
    assert any(e["type"] == "job_update" for e in events)

    job = (await get_job(server.http, job_id))["data"]
    assert set(job) == {
        "job_id",
        "status",
        "progress",
        "file_name",
        "created_at",
        "completed_at",
        "ai_response",
    }
    assert job["job_id"] == job_id
    assert job["status"] == "completed"
    assert job["progress"] == 100
    assert job["file_name"] == name
    assert ISO_UTC.match(job["created_at"]) and ISO_UTC.match(job["completed_at"])
    assert job["created_at"] <= job["completed_at"]
    assert job["ai_response"] == answer


@pytest.mark.slow
async def test_priority_order_and_schedule(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Jobs queued while no worker runs start by priority, FIFO within a priority, and a job
    scheduled for later does not start before its time, whatever its priority."""
    data_dir = tmp_path / "data"
    queue_only = start_server({"DOCLANE_RUN_WORKER": "false"}, data_dir)
    pdf = make_report_pdf(tmp_path / "r.pdf")
    ids: dict[str, str] = {}
    for label, priority in [("low", "0"), ("high", "5"), ("low2", "0"), ("mid", "2")]:
        body = await upload(queue_only.http, pdf, "Summarise.", priority=priority)
        ids[label] = body["data"]["job_id"]
    not_before = math.ceil(time.time()) + 4
    naive_utc = datetime.fromtimestamp(not_before, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    body = await upload(queue_only.http, pdf, "Summarise.", priority="9", scheduled_at=naive_utc)
    ids["later"] = body["data"]["job_id"]
    queue_only.stop()

    server = start_server(data_dir=data_dir)
    async with connect(server.ws) as ws:
        received = await follow(ws, set(ids.values()))
    first_seen: dict[str, float] = {}
    order: list[str] = []
    for r in received:
        label = next(k for k, v in ids.items() if v == r.event["job_id"])
        if label not in first_seen:
            first_seen[label] = r.at
            order.append(label)
    assert [label for label in order if label != "later"] == ["high", "mid", "low", "low2"]
    assert first_seen["later"] >= not_before
    for job_id in ids.values():
        assert (await get_job(server.http, job_id))["data"]["status"] == "completed"
