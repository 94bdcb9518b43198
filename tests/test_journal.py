"""The journal: an event is logged before it is published, and a bus that fails loses no job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from doclane import messages
from doclane.events import Event, EventBus
from doclane.jobs import Change, DocumentKind, JobStatus, NewJob, open_store
from doclane.journal import Journal

pytestmark = pytest.mark.anyio


class BrokenBus(EventBus):
    """A bus that is down: every publish fails."""

    def __init__(self) -> None:
        self.attempts: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.attempts.append(event)
        raise ConnectionError("the bus is down")

    def subscribe(self, queue_size: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        raise NotImplementedError


async def test_a_broken_bus_costs_no_job_its_progress(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.open()
    try:
        bus = BrokenBus()
        journal = Journal(store, bus)
        for job_id in ("done", "dropped"):
            await store.create(NewJob(job_id, "a.pdf", "/x", DocumentKind.PDF, "q", 0, time.time()))
        job = await store.claim("w", 60)
        assert job is not None and job.job_id == "done"
        chunk = await journal.record(
            "done", "w", Change(answer="Hi"), messages.ai_chunk("done", "Hi", "Hi")
        )
        await journal.record(
            "done",
            "w",
            Change(progress=100, answer="Hi", status=JobStatus.COMPLETED),
            messages.job_completed("done", "Hi"),
        )
        cancelled = await journal.cancel("dropped")

        finished = await store.get("done")
        assert finished is not None and finished.status is JobStatus.COMPLETED
        assert finished.answer == "Hi"
        assert [e["type"] for e in await store.events_after("done", 0)] == [
            "ai_chunk",
            "job_completed",
        ]
        assert cancelled.status is JobStatus.CANCELLED
        # Each event was offered to the bus once, after it was logged (it carries its seq).
        assert [e["seq"] for e in bus.attempts[:2]] == [chunk["seq"], chunk["seq"] + 1]
        assert bus.attempts[2]["job_id"] == "dropped" and bus.attempts[2]["type"] == "job_failed"
    finally:
        await store.close()
