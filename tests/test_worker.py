"""The worker around the model: retries, permanent failures, time limits, cancellation,
graceful shutdown and resumption, driven by a scripted provider on a real SQLite store."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from doclane import messages, metrics
from doclane.errors import ProcessingError, TransientError
from doclane.events import Event, MemoryEventBus
from doclane.jobs import Change, JobStatus, JobStore, NewJob, open_store
from doclane.jobs.model import DocumentKind
from doclane.jobs.sqlite import SQLiteJobStore
from doclane.journal import Journal
from doclane.runner import MODEL_FAILED, WRITING_STEP
from doclane.settings import Settings
from doclane.storage import LocalStorage
from doclane.worker import EXHAUSTED_ERROR, SWEEP_SECONDS, Worker
from tests.documents import in_storage, make_report_pdf
from tests.fakes import ScriptedProvider, Step

pytestmark = pytest.mark.anyio

FINAL = {"job_completed", "job_failed"}


@dataclass
class Harness:
    store: JobStore
    bus: MemoryEventBus
    events: AsyncIterator[dict[str, Any]]
    pdf: Path
    data_dir: Path

    async def submit(self) -> str:
        job_id = f"job-{time.monotonic_ns()}"
        key = in_storage(self.pdf, self.data_dir, job_id)
        await self.store.create(
            NewJob(job_id, "r.pdf", key, DocumentKind.PDF, "Q?", 0, time.time())
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
    tmp_path: Path,
    provider: ScriptedProvider,
    bus: MemoryEventBus | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    settings = Settings(
        data_dir=tmp_path, poll_interval_seconds=0.05, retry_base_seconds=0.1, **overrides
    )
    store = open_store(settings.resolved_database_url)
    await store.open()
    bus = bus or MemoryEventBus()
    worker = Worker(settings, Journal(store, bus), provider, LocalStorage(settings.uploads_dir))
    try:
        async with bus.subscribe(10_000) as events, anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            yield Harness(store, bus, events, make_report_pdf(tmp_path / "r.pdf"), tmp_path)
            tg.cancel_scope.cancel()
    finally:
        await store.close()


class SlowToPublishTheEnd(MemoryEventBus):
    """Publishes a job's final event a second late: a heartbeat falls between its write and
    the run hearing it was written."""

    async def publish_many(self, events: Sequence[Event]) -> None:
        if any(event["type"] in ("job_completed", "job_failed") for event in events):
            await anyio.sleep(1)
        await super().publish_many(events)


def runs_ended() -> dict[str, float]:
    """This process's job runs by outcome (the worker's metrics)."""
    return {
        outcome: metrics.REGISTRY.get_sample_value("doclane_job_runs_total", {"outcome": outcome})
        or 0
        for outcome in ("completed", "failed", "stopped")
    }


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_a_heartbeat_after_the_final_write_leaves_the_run_as_it_ended(
    tmp_path: Path, outcome: str
) -> None:
    """Once the final event is written, the job is no longer the worker's to renew: the
    heartbeat's LeaseLost then is the end the run reached, not a lost lease (such a run was
    counted "stopped", though its client saw it complete)."""
    step = Step() if outcome == "completed" else Step(error=ProcessingError("The model refused"))
    before = runs_ended()
    async with running_worker(tmp_path, ScriptedProvider(step), SlowToPublishTheEnd()) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
        with anyio.fail_after(5):  # the run ends a moment after its last event
            while runs_ended() == before:
                await anyio.sleep(0.05)
    assert events[-1]["type"] == f"job_{outcome}"
    after = runs_ended()
    assert {key: after[key] - before[key] for key in after} == {
        key: float(key == outcome) for key in after
    }


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
        "error": MODEL_FAILED,  # the provider's own words are for the log
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
    key = in_storage(pdf, tmp_path, job_id)
    await store.create(NewJob(job_id, "r.pdf", key, DocumentKind.PDF, "Q?", 0, time.time()))
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


async def test_a_job_whose_worker_died_on_its_last_attempt_fails_promptly(tmp_path: Path) -> None:
    """The sweep runs on a timer, not before each claim: an expired job that has had its
    ``max_attempts`` runs is never claimed again (the model is not asked) by the idle worker
    polling meanwhile, and the sweep fails it within a second or so of its lease running out."""
    provider = ScriptedProvider(Step())
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    job_id = "twice-dead"
    key = in_storage(make_report_pdf(tmp_path / "dead.pdf"), tmp_path, job_id)
    await store.create(NewJob(job_id, "r.pdf", key, DocumentKind.PDF, "Q?", 0, time.time()))
    assert await store.claim("dead-host:1:x", 0.01, max_attempts=2) is not None
    await anyio.sleep(0.05)
    lease = 0.5  # the second dead worker's: it runs out while the worker below is running
    job = await store.claim("dead-host:2:x", lease, max_attempts=2)
    assert job is not None and job.attempts == 2
    expires = anyio.current_time() + lease
    await store.close()
    async with running_worker(tmp_path, provider, max_attempts=2) as h:
        events = await h.until_final(job_id, timeout=5)
        waited = anyio.current_time() - expires
        job = await h.store.get(job_id)
    assert [e["type"] for e in events] == ["job_failed"]
    assert events[0]["error"] == EXHAUSTED_ERROR
    assert 0 < waited < SWEEP_SECONDS + 0.5
    assert provider.prefixes == []  # never run a third time
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 2


async def test_progress_while_writing_rises_by_steps_not_per_chunk(tmp_path: Path) -> None:
    """A job_update follows a chunk only when the bar rose WRITING_STEP points: fewer
    messages than chunks, progress never going back, every partial the chunks so far."""
    provider = ScriptedProvider(Step(pieces=[f" w{i}" for i in range(150)], delay=0.002))
    async with running_worker(tmp_path, provider, chunk_interval_ms=0, max_answer_tokens=150) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
    assert events[-1]["type"] == "job_completed"
    updates = [e["progress"] for e in events if e["type"] == "job_update"]
    assert updates == sorted(updates) and len(set(updates)) == len(updates)
    writing = [e for e in events if e.get("stage") == "Writing the answer"]
    chunks = [e for e in events if e["type"] == "ai_chunk"]
    assert 1 <= len(writing) < len(chunks) // 2, (len(writing), len(chunks))
    rises = [b["progress"] - a["progress"] for a, b in itertools.pairwise(writing)]
    assert all(rise >= WRITING_STEP for rise in rises), rises
    partial = ""
    for chunk in chunks:
        partial += chunk["chunk"]
        assert chunk["partial"] == partial
    assert events[-1]["ai_response"] == partial


async def test_a_job_due_later_wakes_no_idle_worker(tmp_path: Path) -> None:
    """An idle worker waits until it would look again anyway (the poll, or the next scheduled
    job); a job due before that wakes it at once, one due only after it does not."""
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    woken: list[float] = []

    async def idle(timeout: float) -> None:
        started = anyio.current_time()
        await store.wait_for_work(timeout)
        woken.append(anyio.current_time() - started)

    def job(job_id: str, run_at: float) -> NewJob:
        return NewJob(job_id, "a.csv", job_id, DocumentKind.CSV, "Q?", 0, run_at)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(idle, 0.5)
            await anyio.sleep(0.05)
            await store.create(job("tomorrow", time.time() + 86_400))
            await store.create(job("in-a-second", time.time() + 1))
        async with anyio.create_task_group() as tg:
            tg.start_soon(idle, 5)
            await anyio.sleep(0.05)
            await store.create(job("in-a-moment", time.time() + 0.2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(idle, 5)
            await anyio.sleep(0.05)
            await store.create(job("now", time.time()))
    finally:
        await store.close()
    slept_through, woken_early, woken_now = woken
    assert slept_through >= 0.45  # its own time: it would have looked before either was due
    assert woken_early < 1 and woken_now < 1


class CountingStore(SQLiteJobStore):
    """The SQLite store, noting the size of each batch of events it is given to write."""

    batches: list[int]

    async def emit_many(
        self, job_id: str, worker_id: str, writes: Sequence[tuple[Change, Event]]
    ) -> list[Event]:
        self.batches.append(len(writes))
        return await super().emit_many(job_id, worker_id, writes)


async def test_a_burst_of_events_is_written_in_few_transactions(tmp_path: Path) -> None:
    """A job answering at once: its events wait for the writer and go in batches, one
    transaction each, yet every client sees each event once, in order, after it is logged."""
    settings = Settings(data_dir=tmp_path, poll_interval_seconds=0.05, chunk_interval_ms=0)
    store = CountingStore(str(tmp_path / "doclane.db"))
    store.batches = []
    await store.open()
    bus = MemoryEventBus()
    provider = ScriptedProvider(Step(pieces=[f" w{i}" for i in range(40)]))
    worker = Worker(settings, Journal(store, bus), provider, LocalStorage(settings.uploads_dir))
    pdf = make_report_pdf(tmp_path / "r.pdf")
    try:
        async with bus.subscribe(10_000) as events, anyio.create_task_group() as tg:
            harness = Harness(store, bus, events, pdf, tmp_path)
            job_id = await harness.submit()
            tg.start_soon(worker.run)
            seen = await harness.until_final(job_id)
            tg.cancel_scope.cancel()
        logged = await store.events_after(job_id, 0)
    finally:
        await store.close()
    assert seen[-1]["type"] == "job_completed"
    assert seen == logged and [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert sum(store.batches) == len(seen)
    assert len(store.batches) < len(seen), store.batches  # some went together
