"""A client that behaves like the seed's front end: connect to /ws, upload, follow the events."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection

JOB_TIMEOUT = 120.0
FINAL_TYPES = {"job_completed", "job_failed"}


@dataclass(frozen=True)
class Received:
    at: float  # wall-clock time the client got it
    event: dict[str, Any]


def queued(job_id: str) -> dict[str, Any]:
    """The seed's exact upload response."""
    return {
        "success": True,
        "data": {
            "job_id": job_id,
            "status": "pending",
            "progress": 0,
            "message": "File uploaded successfully",
        },
    }


async def upload(base_url: str, path: Path, prompt: str = "", **fields: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        with path.open("rb") as file:
            response = await client.post(
                "/api/upload", files={"file": (path.name, file)}, data={"prompt": prompt, **fields}
            )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_job(base_url: str, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def follow(
    ws: ClientConnection, job_ids: set[str], timeout: float = JOB_TIMEOUT
) -> list[Received]:
    """Every event for the given jobs in arrival order, until each has had its final event."""
    received: list[Received] = []
    open_jobs = set(job_ids)
    with anyio.fail_after(timeout):
        while open_jobs:
            event = json.loads(await ws.recv())
            if event.get("job_id") in job_ids:
                received.append(Received(time.time(), event))
                if event["type"] in FINAL_TYPES:
                    open_jobs.discard(event["job_id"])
    return received


def of_job(received: list[Received], job_id: str) -> list[dict[str, Any]]:
    return [r.event for r in received if r.event["job_id"] == job_id]


def check_stream(events: list[dict[str, Any]]) -> str:
    """Assert the seed's streaming contract on one job's events; return the final answer."""
    assert events, "no events"
    progress = [e["progress"] for e in events if e["type"] == "job_update"]
    assert progress == sorted(progress), f"progress went down: {progress}"
    assert all(isinstance(p, int) and 0 <= p <= 100 for p in progress)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    text = ""
    for event in events:
        if event["type"] == "ai_chunk":
            assert set(event) >= {"type", "job_id", "chunk", "partial"}
            text += event["chunk"]
            assert event["partial"] == text
    final = events[-1]
    assert final["type"] == "job_completed", final
    assert set(final) >= {"type", "job_id", "ai_response"}
    assert final["ai_response"] == text
    assert text.strip()
    assert sum(1 for e in events if e["type"] in FINAL_TYPES) == 1
    return text
