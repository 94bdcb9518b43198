"""The worker around the model: retries, permanent failures, time limits, cancellation,
graceful shutdown and resumption, driven by a scripted provider on a real SQLite store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from doclane import messages
from doclane.errors import ProcessingError, TransientError
from doclane.events import MemoryEventBus
from doclane.jobs import Change, JobStatus, JobStore, NewJob, open_store
from doclane.jobs.model import DocumentKind
from doclane.settings import Settings
from doclane.worker import Worker
from tests.documents import make_report_pdf
from tests.fakes import ScriptedProvider, Step

pytestmark = pytest.mark.anyio

FINAL = {"job_completed", "job_failed"}


@dataclass
class Harness:
    store: JobStore
    bus: MemoryEventBus
    events: AsyncIterator[dict[str, Any]]
    pdf: Path

    async def submit(self) -> str:
        job_id = f"job-{time.monotonic_ns()}"
        await self.store.create(
            NewJob(job_id, "r.pdf", str(self.pdf), DocumentKind.PDF, "Q?", 0, time.time())
        )
        return job_id

    async def first_chunk(self, timeout: float = 20) -> None:
        with anyio.fail_after(timeout):
            async for event in self.events:
                if event["type"] == "ai_chunk":
                    return

    async def until_final(self, job_id: str, timeout: float = 20) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        with anyio.fail_after(timeout):
            async for event in self.events:
                if event["job_id"] == job_id:
                    seen.append(event)
                    if event["type"] in FINAL:
                        return seen
        raise AssertionError("event stream ended")


@asynccontextmanager
async def running_worker(
    tmp_path: Path, provider: ScriptedProvider, **overrides: Any
) -> AsyncIterator[Harness]:
    settings = Settings(
        data_dir=tmp_path, poll_interval_seconds=0.05, retry_base_seconds=0.1, **overrides
    )
    store = open_store(settings.resolved_database_url)
    await store.open()
    bus = MemoryEventBus()
    worker = Worker(settings, store, bus, provider)
    try:
        async with bus.subscribe(10_000) as events, anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            yield Harness(store, bus, events, make_report_pdf(tmp_path / "r.pdf"))
            tg.cancel_scope.cancel()
    finally:
        await store.close()


async def test_transient_failure_is_retried(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(error=TransientError("Rate limited")), Step())
    async with running_worker(tmp_path, provider) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
        job = await h.store.get(job_id)
    assert events[-1]["type"] == "job_completed"
    assert any(e.get("status") == "pending" and "retrying" in e["stage"] for e in events)
    assert job is not None and job.attempts == 2 and job.answer == "Hello world."


async def test_transient_failures_give_up_after_the_attempt_limit(tmp_path: Path) -> None:
    provider = ScriptedProvider(*[Step(error=TransientError("Rate limited"))] * 3)
    async with running_worker(tmp_path, provider, max_attempts=3) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
    assert events[-1]["type"] == "job_failed"
    assert events[-1]["error"] == "Rate limited (gave up after 3 attempts)"
    assert len(provider.prefixes) == 3


async def test_permanent_failure_fails_at_once(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(error=ProcessingError("The model refused")))
    async with running_worker(tmp_path, provider) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
        job = await h.store.get(job_id)
    assert events[-1] == {
        "type": "job_failed",
        "job_id": job_id,
        "error": "The model refused",
        "status": "failed",
        "seq": events[-1]["seq"],
    }
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 1


async def test_time_limit(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(pieces=["x"] * 1000, delay=0.05))
    async with running_worker(tmp_path, provider, job_timeout_seconds=1.0) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
    assert events[-1]["type"] == "job_failed"
    assert "longer than its limit of 1 s" in events[-1]["error"]


async def test_cancel_stops_a_running_job_within_a_second(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(pieces=["word "] * 1000, delay=0.02))
    async with running_worker(tmp_path, provider) as h:
        job_id = await h.submit()
        await h.first_chunk()
        _, cancelled = await h.store.cancel(job_id)
        assert cancelled is not None
        cancelled_at = anyio.current_time()
        await h.bus.publish(cancelled)
        after = await h.until_final(job_id)
        with anyio.fail_after(5):
            while not provider.closed_at:
                await anyio.sleep(0.05)
        job = await h.store.get(job_id)
    assert provider.closed_at[0] - cancelled_at < 1.0
    assert after[-1]["status"] == "cancelled" and after[-1]["error"] == "Job cancelled"
    assert job is not None and job.status is JobStatus.CANCELLED
    # Nothing the worker wrote after the cancel reached the job's log.
    assert (await _log(tmp_path, job_id))[-1]["status"] == "cancelled"


async def test_shutdown_hands_the_running_job_back(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(pieces=["word "] * 1000, delay=0.02))
    async with running_worker(tmp_path, provider) as h:
        job_id = await h.submit()
        await h.first_chunk()
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    job = await store.get(job_id)
    await store.close()
    assert job is not None
    assert job.status is JobStatus.PENDING and job.attempts == 0
    assert job.answer  # what was streamed stays, and the next run continues it


async def test_rerun_continues_the_persisted_answer(tmp_path: Path) -> None:
    provider = ScriptedProvider(Step(pieces=[" and more."]))
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    job_id = "crashed-job"
    pdf = make_report_pdf(tmp_path / "crashed.pdf")
    await store.create(NewJob(job_id, "r.pdf", str(pdf), DocumentKind.PDF, "Q?", 0, time.time()))
    await store.claim("dead-host:1:x", 0.01)
    await store.emit(
        job_id,
        "dead-host:1:x",
        Change(answer="Half an answer"),
        messages.ai_chunk(job_id, "Half an answer", "Half an answer"),
    )
    await store.close()
    await anyio.sleep(0.05)  # the dead worker's lease expires
    async with running_worker(tmp_path, provider) as h:
        events = await h.until_final(job_id)
    assert provider.prefixes == ["Half an answer"]
    chunk = next(e for e in events if e["type"] == "ai_chunk")
    assert chunk["chunk"] == " and more." and chunk["partial"] == "Half an answer and more."
    assert events[-1]["ai_response"] == "Half an answer and more."


async def _log(tmp_path: Path, job_id: str) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    try:
        return await store.events_after(job_id, 0)
    finally:
        await store.close()
