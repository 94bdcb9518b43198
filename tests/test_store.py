"""The job store contract (the jobs table is the queue). Written once for every backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from doclane import messages
from doclane.errors import InvalidRequest, JobNotFound, LeaseLost
from doclane.jobs import Change, DocumentKind, JobStatus, JobStore, NewJob, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    store = open_store(database_url)
    await store.open()
    yield store
    await store.close()


async def add(store: JobStore, priority: int = 0, run_at: float | None = None) -> str:
    job_id = str(uuid.uuid4())
    await store.create(
        NewJob(
            job_id,
            "a.pdf",
            "/nowhere",
            DocumentKind.PDF,
            "q",
            priority,
            time.time() if run_at is None else run_at,
        )
    )
    return job_id


async def drain(store: JobStore) -> list[str]:
    claimed = []
    while (job := await store.claim("w", 60)) is not None:
        claimed.append(job.job_id)
    return claimed


async def test_priority_then_fifo(store: JobStore) -> None:
    low1 = await add(store, 0)
    high = await add(store, 10)
    low2 = await add(store, 0)
    negative = await add(store, -5)
    mid = await add(store, 3)
    assert await drain(store) == [high, mid, low1, low2, negative]


async def test_scheduled_job_never_early(store: JobStore) -> None:
    later = await add(store, 100, run_at=time.time() + 0.6)
    now = await add(store, 0)
    assert await drain(store) == [now]
    assert await store.next_run_at() == pytest.approx(time.time() + 0.6, abs=0.3)
    await anyio.sleep(0.7)
    assert await drain(store) == [later]


async def test_claim_marks_processing_and_counts_attempts(store: JobStore) -> None:
    job_id = await add(store)
    job = await store.claim("w1", 60)
    assert job is not None and job.job_id == job_id
    assert job.status is JobStatus.PROCESSING
    assert job.attempts == 1
    assert await store.claim("w2", 60) is None  # leased: nobody else gets it


async def test_expired_lease_is_claimed_again(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("dead-worker", 0.2)
    await anyio.sleep(0.3)
    job = await store.claim("w2", 60)
    assert job is not None and job.job_id == job_id and job.attempts == 2
    with pytest.raises(LeaseLost):  # the old owner can no longer write
        await store.emit(job_id, "dead-worker", Change(answer="stale"), update(job_id, 50))
    with pytest.raises(LeaseLost):
        await store.heartbeat(job_id, "dead-worker", 60)


async def test_heartbeat_keeps_the_lease(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w1", 0.4)
    for _ in range(3):
        await anyio.sleep(0.2)
        await store.heartbeat(job_id, "w1", 0.4)
    assert await store.claim("w2", 60) is None


async def test_exhausted_job_fails(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w1", 0.1)
    await anyio.sleep(0.2)
    [event] = await store.fail_exhausted(1, "gave up")
    assert event == {
        "type": "job_failed",
        "job_id": job_id,
        "error": "gave up",
        "status": "failed",
        "seq": 1,
    }
    failed = await store.get(job_id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED and failed.error == "gave up"
    assert failed.completed_at is not None
    assert await store.claim("w2", 60) is None
    assert await store.events_after(job_id, 0) == [event]


def update(job_id: str, progress: int) -> messages.Event:
    return messages.job_update(job_id, progress, "working")


async def test_emit_logs_events_and_progress_never_decreases(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w", 60)
    first = await store.emit(job_id, "w", Change(progress=40), update(job_id, 40))
    chunk = await store.emit(
        job_id, "w", Change(progress=20, answer="Hel"), messages.ai_chunk(job_id, "Hel", "Hel")
    )
    second = await store.emit(
        job_id, "w", Change(answer="Hello"), messages.ai_chunk(job_id, "lo", "Hello")
    )
    assert [first["seq"], chunk["seq"], second["seq"]] == [1, 2, 3]
    job = await store.get(job_id)
    assert job is not None
    assert job.progress == 40 and job.answer == "Hello" and job.seq == 3
    done = await store.emit(
        job_id,
        "w",
        Change(progress=100, answer="Hello!", status=JobStatus.COMPLETED),
        messages.job_completed(job_id, "Hello!"),
    )
    job = await store.get(job_id)
    assert job is not None
    assert job.status is JobStatus.COMPLETED and job.progress == 100 and job.seq == 4
    assert job.completed_at is not None
    with pytest.raises(LeaseLost):  # a finished job takes no more writes
        await store.emit(job_id, "w", Change(progress=100), update(job_id, 100))
    # The log replays exactly what was sent, partial included, from any point.
    assert await store.events_after(job_id, 0) == [first, chunk, second, done]
    assert await store.events_after(job_id, 2) == [second, done]
    assert (await store.events_after(job_id, 2))[0]["partial"] == "Hello"
    assert await store.events_after(job_id, 4) == []


async def test_retry_requeues_for_later(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w", 60)
    await store.emit(
        job_id, "w", Change(status=JobStatus.PENDING, run_at=time.time() + 0.3), update(job_id, 1)
    )
    assert await store.claim("w", 60) is None  # not before its retry time
    await anyio.sleep(0.4)
    job = await store.claim("w", 60)
    assert job is not None and job.job_id == job_id and job.attempts == 2


async def test_release_gives_the_job_back_uncounted(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w", 60)
    await store.release(job_id, "w")
    job = await store.claim("w2", 60)
    assert job is not None and job.job_id == job_id and job.attempts == 1


async def test_cancel(store: JobStore) -> None:
    pending = await add(store)
    job, event = await store.cancel(pending)
    assert job.status is JobStatus.CANCELLED and job.completed_at is not None
    assert event == {
        "type": "job_failed",
        "job_id": pending,
        "error": "Job cancelled",
        "status": "cancelled",
        "seq": 1,
    }
    again, no_event = await store.cancel(pending)  # idempotent
    assert again.status is JobStatus.CANCELLED and no_event is None
    assert await store.claim("w", 60) is None

    running = await add(store)
    await store.claim("w", 60)
    await store.cancel(running)
    with pytest.raises(LeaseLost):  # the worker learns at its next write or heartbeat
        await store.heartbeat(running, "w", 60)

    done = await add(store)
    await store.claim("w", 60)
    await store.emit(done, "w", Change(status=JobStatus.COMPLETED), update(done, 100))
    with pytest.raises(InvalidRequest) as conflict:
        await store.cancel(done)
    assert conflict.value.status_code == 409
    with pytest.raises(JobNotFound):
        await store.cancel("no-such-job")


async def test_jobs_survive_reopening(store: JobStore, database_url: str) -> None:
    pending = await add(store, 1)
    scheduled = await add(store, 2, run_at=time.time() + 3600)
    await store.close()
    reopened = open_store(database_url)
    await reopened.open()
    try:
        assert (await reopened.get(pending)) is not None
        job = await reopened.get(scheduled)
        assert job is not None and job.status is JobStatus.PENDING
    finally:
        await reopened.close()
    await store.open()  # the fixture closes it again
