"""The job store contract (the jobs table is the queue). Written once for every backend."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from doclane import messages
from doclane.errors import DoclaneError, InvalidRequest, JobNotFound, LeaseLost
from doclane.jobs import (
    Change,
    DocumentKind,
    Event,
    JobStatus,
    JobStore,
    NewJob,
    Quota,
    QuotaExceeded,
    migrations,
    open_store,
)
from tests.postgres import database_or_skip

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every backend: a fresh SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        with database_or_skip() as url:
            yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    store = open_store(database_url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[JobStore]:
    """A second store on the same database, with its own connections: another worker."""
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
    due_at = await store.next_run_at()
    assert due_at is not None and due_at <= time.time()  # one is due already
    scheduled = await store.get(later)
    assert scheduled is not None and scheduled.status is JobStatus.PENDING
    assert await drain(store) == [now]
    assert await store.next_run_at() == pytest.approx(time.time() + 0.6, abs=0.3)
    await anyio.sleep(0.7)
    assert await drain(store) == [later]


async def test_a_scheduled_job_keeps_its_place_once_due(store: JobStore) -> None:
    """Once due, a scheduled job is ordered like the others: priority, then insertion."""
    first = await add(store, 0, run_at=time.time() + 0.3)
    urgent = await add(store, 5, run_at=time.time() + 0.3)
    second = await add(store, 0)
    await anyio.sleep(0.4)
    assert await drain(store) == [urgent, first, second]


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


def update(job_id: str, progress: int) -> Event:
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


async def test_emit_many_writes_in_order_and_stops_at_a_lost_lease(store: JobStore) -> None:
    """Several changes in one go: logged in order with consecutive seqs, each as emit would;
    from a change that finds the lease gone on (here: after the final one), nothing."""
    job_id = await add(store)
    await store.claim("w", 60)
    writes = [
        (Change(progress=30), update(job_id, 30)),
        (Change(answer="Hi"), messages.ai_chunk(job_id, "Hi", "Hi")),
        (
            Change(progress=100, answer="Hi", status=JobStatus.COMPLETED),
            messages.job_completed(job_id, "Hi"),
        ),
        (Change(progress=100), update(job_id, 100)),  # after the end: refused
    ]
    logged = await store.emit_many(job_id, "w", writes)
    assert [e["seq"] for e in logged] == [1, 2, 3]
    assert logged == [{**event, "seq": n} for n, (_, event) in enumerate(writes[:3], 1)]
    assert await store.events_after(job_id, 0) == logged
    job = await store.get(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.seq == 3
    assert await store.emit_many(job_id, "w", writes[:2]) == []  # not held: nothing written
    assert await store.events_after(job_id, 0) == logged


async def test_retry_requeues_for_later(store: JobStore) -> None:
    job_id = await add(store)
    await store.claim("w", 60)
    await store.emit(job_id, "w", Change(status=JobStatus.PENDING, retry_in=0.3), update(job_id, 1))
    assert await store.claim("w", 60) is None  # not before its retry time
    waiting = await store.get(job_id)
    assert waiting is not None and waiting.status is JobStatus.PENDING
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

    scheduled = await add(store, run_at=time.time() + 3600)
    job, event = await store.cancel(scheduled)
    assert job.status is JobStatus.CANCELLED and event is not None and event["seq"] == 1
    assert await store.next_run_at() is None

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


def completion(job_id: str, answer: str) -> tuple[Change, Event]:
    change = Change(progress=100, answer=answer, status=JobStatus.COMPLETED)
    return change, messages.job_completed(job_id, answer)


async def test_concurrent_workers_take_each_job_once(store: JobStore, other: JobStore) -> None:
    jobs = [await add(store, priority=n % 3) for n in range(60)]
    taken: list[str] = []

    async def work(on: JobStore, worker_id: str) -> None:
        while (job := await on.claim(worker_id, 60)) is not None:
            taken.append(job.job_id)
            await on.emit(job.job_id, worker_id, *completion(job.job_id, worker_id))

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(work, (store, other)[n % 2], f"w{n}")
    assert sorted(taken) == sorted(jobs)


RACES = 100


async def finish(
    on: JobStore, job_id: str, worker_id: str, claim: bool, completed: list[str], delay: float = 0
) -> None:
    """Claim the job first if ``claim``, then complete it; note who did."""
    await anyio.sleep(delay)
    if claim:
        job = await on.claim(worker_id, 60)
        if job is None:
            return
        assert job.job_id == job_id and job.attempts == 2
    try:
        await on.emit(job_id, worker_id, *completion(job_id, worker_id))
    except LeaseLost:
        return
    completed.append(worker_id)


async def test_a_job_whose_lease_expired_completes_once(
    store: JobStore, other: JobStore, database_url: str
) -> None:
    """Two workers, each with its own connection, race to claim a job whose lease expired while
    its first worker, alive after all, tries to finish it: exactly one of the three completes
    it, the job's log holds exactly one job_completed, and the others get LeaseLost or nothing.
    """
    stale = open_store(database_url)
    await stale.open()
    rng = random.Random(9)
    winners: list[str] = []
    try:
        for _ in range(RACES):
            job_id = await add(store)
            await store.claim("stale", 60)
            await store.expire_lease(job_id, "stale")
            completed: list[str] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(finish, store, job_id, "a", True, completed)
                tg.start_soon(finish, other, job_id, "b", True, completed)
                # A claim takes longer than a write: the stale worker starts a little later,
                # at random, so that every outcome happens over the races.
                delay = rng.uniform(0, 0.002)
                tg.start_soon(finish, stale, job_id, "stale", False, completed, delay)
            assert len(completed) == 1, completed
            job = await store.get(job_id)
            assert job is not None
            assert job.status is JobStatus.COMPLETED and job.answer == completed[0]
            events = await store.events_after(job_id, 0)
            assert [(e["type"], e["ai_response"]) for e in events] == [
                ("job_completed", completed[0])
            ]
            winners += completed
    finally:
        await stale.close()
    print("winners:", {worker: winners.count(worker) for worker in sorted(set(winners))})


async def test_a_queued_job_wakes_an_idle_worker(store: JobStore) -> None:
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.wait_for_work, 30)
        await anyio.sleep(0.2)  # the worker is idle now
        await add(store)
    assert time.monotonic() - started < 5  # woken, not timed out


async def test_a_notice_before_the_wait_is_not_lost(store: JobStore) -> None:
    await add(store)  # between a worker's empty claim and its wait
    with anyio.fail_after(5):
        await store.wait_for_work(30)
    with anyio.move_on_after(0.3) as idle:  # the notice was taken: now it waits
        await store.wait_for_work(30)
    assert idle.cancelled_caught


async def test_a_job_handed_back_wakes_an_idle_worker(store: JobStore) -> None:
    job_id = await add(store)
    assert (await store.claim("w1", 60)) is not None
    with anyio.fail_after(5):
        await store.wait_for_work(30)  # the creation's notice
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.wait_for_work, 30)
        await anyio.sleep(0.2)
        started = time.monotonic()
        await store.release(job_id, "w1")
    assert time.monotonic() - started < 5


async def test_without_migrate_on_start_an_old_schema_is_refused(database_url: str) -> None:
    """DOCLANE_MIGRATE_ON_START=false: the operator migrates; a store only checks."""
    unmigrated = open_store(database_url, migrate=False)
    with pytest.raises(DoclaneError, match="run `doclane db upgrade`"):
        await unmigrated.open()
    await unmigrated.close()
    assert not migrations.is_at_head(database_url)
    migrations.upgrade(database_url)
    assert migrations.is_at_head(database_url)
    await unmigrated.open()
    try:
        await add(unmigrated)
    finally:
        await unmigrated.close()


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Several processes upgrade one new database at once: each waits for the first."""
    code = "import sys; from doclane.jobs import migrations; migrations.upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
    assert migrations.is_at_head(database_url)


def keyed(key: str | None) -> NewJob:
    return NewJob(
        str(uuid.uuid4()), "a.pdf", "/nowhere", DocumentKind.PDF, "q", 0, time.time(), key
    )


async def test_an_idempotency_key_names_one_job(store: JobStore) -> None:
    assert await store.find_by_idempotency_key("retry-1") is None
    first = await store.create(keyed("retry-1"))
    again = await store.create(keyed("retry-1"))  # a retry: nothing is written
    assert again.job_id == first.job_id
    found = await store.find_by_idempotency_key("retry-1")
    assert found is not None and found.job_id == first.job_id
    other_key = await store.create(keyed("retry-2"))
    unkeyed = [await store.create(keyed(None)) for _ in range(2)]  # no key: never the same
    assert await drain(store) == [first.job_id, other_key.job_id, *(j.job_id for j in unkeyed)]


async def test_concurrent_creates_with_one_key_make_one_job(
    store: JobStore, other: JobStore
) -> None:
    """Uploads racing with one key, through two stores (two API replicas): exactly one job is
    written and every caller gets it."""

    async def create(on: JobStore, key: str, results: list[str]) -> None:
        results.append((await on.create(keyed(key))).job_id)

    for race in range(10):
        results: list[str] = []
        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(create, (store, other)[n % 2], f"race-{race}", results)
        assert len(set(results)) == 1 and len(results) == 6
        assert await drain(store) == results[:1]


async def test_stats_count_jobs_by_status_and_the_due_ones(store: JobStore) -> None:
    empty = await store.stats()
    assert empty.due == 0 and empty.oldest_due_seconds == 0
    assert set(empty.jobs.values()) == {0}
    waiting = await add(store, 0, run_at=time.time() - 30)  # due for 30 s
    await add(store, 0, run_at=time.time() - 5)
    await add(store, 0, run_at=time.time() + 3600)  # scheduled: pending, not due
    running = await add(store, 9)
    claimed = await store.claim("w", 60)
    assert claimed is not None and claimed.job_id == running
    stats = await store.stats()
    assert stats.jobs[JobStatus.PENDING] == 3 and stats.jobs[JobStatus.PROCESSING] == 1
    assert stats.due == 2
    assert stats.oldest_due_seconds == pytest.approx(30, abs=5)
    await store.cancel(waiting)
    stats = await store.stats()
    assert stats.jobs[JobStatus.CANCELLED] == 1 and stats.due == 1
    assert stats.oldest_due_seconds == pytest.approx(5, abs=5)


def owned(owner: str, key: str | None = None, job_id: str | None = None) -> NewJob:
    return NewJob(
        job_id or str(uuid.uuid4()), "a.pdf", "k", DocumentKind.PDF, "q", 0, time.time(), key, owner
    )


async def complete(store: JobStore, job_id: str) -> None:
    job = await store.claim("w", 60)
    assert job is not None and job.job_id == job_id
    change = Change(progress=100, answer="done", status=JobStatus.COMPLETED)
    await store.emit(job_id, "w", change, messages.job_completed(job_id, "done"))


async def test_each_owner_sees_only_their_jobs(store: JobStore) -> None:
    alice = await store.create(owned("alice", key="k1"))
    bob = await store.create(owned("bob", key="k1"))  # one key, two users: two jobs
    assert alice.job_id != bob.job_id and (alice.owner, bob.owner) == ("alice", "bob")
    assert (await store.get(alice.job_id, "alice")) == alice
    assert await store.get(alice.job_id, "bob") is None
    assert await store.get(alice.job_id) == alice  # no owner: any job (auth off)
    found = await store.find_by_idempotency_key("k1", "bob")
    assert found is not None and found.job_id == bob.job_id
    assert await store.find_by_idempotency_key("k1", "carol") is None
    with pytest.raises(JobNotFound):
        await store.cancel(alice.job_id, "bob")
    assert (await store.get(alice.job_id)).status is JobStatus.PENDING  # type: ignore[union-attr]
    cancelled, event = await store.cancel(alice.job_id, "alice")
    assert cancelled.status is JobStatus.CANCELLED and event is not None


async def test_usage_counts_a_users_unfinished_and_recent_jobs(store: JobStore) -> None:
    quota = Quota(active=10, recent=10, window_seconds=60)
    empty = await store.usage("alice", quota)
    assert (empty.active, empty.recent) == (0, 0)
    first = await store.create(owned("alice"))
    await store.create(owned("alice"))
    await store.create(owned("bob"))
    await complete(store, first.job_id)
    usage = await store.usage("alice", quota)
    assert (usage.active, usage.recent) == (1, 2)
    assert 55 < usage.frees_in <= 60  # the first leaves the minute's window in about a minute
    capped = await store.usage("alice", Quota(active=1, recent=1, window_seconds=60))
    assert (capped.active, capped.recent) == (1, 1)  # counted up to the limits, no further


async def test_create_within_a_quota_refuses_past_either_limit(store: JobStore) -> None:
    quota = Quota(active=2, recent=3, window_seconds=60)
    first = await store.create(owned("alice", key="k1"), quota)
    await store.create(owned("alice"), quota)
    with pytest.raises(QuotaExceeded) as unfinished:
        await store.create(owned("alice"), quota)
    assert (unfinished.value.usage.active, unfinished.value.usage.recent) == (2, 2)
    retry = await store.create(owned("alice", key="k1"), quota)  # a retry is never refused
    assert retry.job_id == first.job_id
    await store.create(owned("bob"), quota)  # another owner is not held back
    await complete(store, first.job_id)  # a slot is free again
    await store.create(owned("alice"), quota)
    with pytest.raises(QuotaExceeded) as recent:  # 3 made within the minute
        await store.create(owned("alice"), quota)
    assert (recent.value.usage.active, recent.value.usage.recent) == (2, 3)
    assert 55 < recent.value.usage.frees_in <= 60
    assert len((await store.history("alice")).jobs) == 3  # nothing written when refused


async def race_creates(
    stores: tuple[JobStore, ...], owner: str, quota: Quota, count: int
) -> tuple[list[str], list[QuotaExceeded]]:
    """``count`` creates at once, spread over ``stores``: the jobs made, the refusals."""
    made: list[str] = []
    refused: list[QuotaExceeded] = []

    async def create(on: JobStore) -> None:
        try:
            made.append((await on.create(owned(owner), quota)).job_id)
        except QuotaExceeded as exc:
            refused.append(exc)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(count):
                tg.start_soon(create, stores[n % len(stores)])
    return made, refused


async def test_concurrent_creates_within_a_quota_make_exactly_its_limit(
    store: JobStore, other: JobStore
) -> None:
    """Uploads of one user racing through two stores (two API replicas) at a limit of 5: five
    jobs, however the creates interleave; the others are refused."""
    quota = Quota(active=5, recent=1000, window_seconds=60)
    for race in range(5):
        owner = f"racer-{race}"
        made, refused = await race_creates((store, other), owner, quota, 16)
        assert (len(made), len(refused)) == (5, 11)
        assert all(exc.usage.active == 5 for exc in refused)
        assert sorted(job.job_id for job in (await store.history(owner)).jobs) == sorted(made)


async def test_delete_removes_a_finished_job_and_its_events(store: JobStore) -> None:
    job = await store.create(owned("alice"))
    running = await store.create(owned("alice"))
    await complete(store, job.job_id)
    assert await store.events_after(job.job_id, 0) != []
    assert await store.delete(job.job_id, "bob") is None  # not bob's
    assert await store.delete(running.job_id, "alice") is None  # not finished
    deleted = await store.delete(job.job_id, "alice")
    assert deleted is not None and deleted.status is JobStatus.COMPLETED
    assert await store.get(job.job_id) is None
    assert await store.events_after(job.job_id, 0) == []
    assert await store.delete(job.job_id, "alice") is None  # once


async def test_sweeps_running_together_delete_each_old_job_once(
    store: JobStore, other: JobStore
) -> None:
    jobs = [await store.create(owned("alice")) for _ in range(6)]
    for job in jobs:
        await complete(store, job.job_id)
    kept = await store.create(owned("alice"))  # unfinished: never swept
    assert await store.delete_finished_before(time.time() - 3600, 100) == []  # too recent
    results: list[list[str]] = []

    async def sweep(on: JobStore) -> None:
        while ids := await on.delete_finished_before(time.time() + 1, 2):
            results.append(ids)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sweep, store)
        tg.start_soon(sweep, other)
    swept = [job_id for ids in results for job_id in ids]
    assert sorted(swept) == sorted(job.job_id for job in jobs)  # each once
    assert [await store.events_after(job.job_id, 0) for job in jobs] == [[]] * len(jobs)
    assert await store.get(kept.job_id) is not None


async def history_ids(
    store: JobStore, owner: str | None, status: JobStatus | None = None, limit: int = 2
) -> list[list[str]]:
    """Every page of ``owner``'s history, as job ids, following the cursors to the end."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.history(owner, status, limit, cursor)
        pages.append([job.job_id for job in page.jobs])
        if page.next is None:
            return pages
        assert len(page.jobs) == limit  # only a full page has one after it
        cursor = page.next


async def test_history_is_newest_first_a_page_at_a_time(store: JobStore) -> None:
    jobs = [(await store.create(owned("alice"))).job_id for _ in range(5)]
    bobs = (await store.create(owned("bob"))).job_id
    newest = [*reversed(jobs)]
    assert await history_ids(store, "alice") == [newest[:2], newest[2:4], newest[4:]]
    assert await history_ids(store, "alice", limit=5) == [newest]
    assert await history_ids(store, "bob") == [[bobs]]
    assert await history_ids(store, "carol") == [[]]
    assert await history_ids(store, None, limit=10) == [[bobs, *newest]]  # auth off: all
    page = await store.history("alice", limit=1)
    assert page.jobs == [await store.get(jobs[-1])]  # whole jobs, as get() reads them


async def test_history_filters_by_public_status(store: JobStore) -> None:
    done = (await store.create(owned("alice"))).job_id
    await complete(store, done)
    later = await add_owned_later(store, "alice")
    waiting = (await store.create(owned("alice"))).job_id
    cancelled = (await store.create(owned("alice"))).job_id
    await store.cancel(cancelled)
    assert await history_ids(store, "alice", JobStatus.PENDING) == [[waiting, later]]
    assert await history_ids(store, "alice", JobStatus.COMPLETED) == [[done]]
    assert await history_ids(store, "alice", JobStatus.CANCELLED) == [[cancelled]]
    assert await history_ids(store, "alice", JobStatus.FAILED) == [[]]
    assert await history_ids(store, None, JobStatus.PENDING, limit=1) == [[waiting], [later]]


async def add_owned_later(store: JobStore, owner: str) -> str:
    """A job of ``owner`` scheduled an hour ahead (stored as scheduled, public status pending)."""
    later = time.time() + 3600
    job = await store.create(
        NewJob(str(uuid.uuid4()), "a.pdf", "k", DocumentKind.PDF, "q", 0, later, None, owner)
    )
    return job.job_id


async def test_history_pages_see_each_job_once_while_jobs_are_added(
    store: JobStore, other: JobStore
) -> None:
    """Paging while another process inserts: every job there before the first page is seen
    exactly once, in order, whatever is inserted meanwhile."""
    before = [(await store.create(owned("alice"))).job_id for _ in range(9)]
    seen: list[str] = []
    cursor = None
    added = 0
    while True:
        page = await store.history("alice", limit=2, cursor=cursor)
        seen += [job.job_id for job in page.jobs]
        for _ in range(3):  # newer jobs arrive between every two pages
            await other.create(owned("alice"))
            added += 1
        if page.next is None:
            break
        cursor = page.next
    assert seen == [*reversed(before)]
    assert len((await store.history("alice", limit=100)).jobs) == len(before) + added


@pytest.mark.parametrize("cursor", ["", "nonsense", "ajEuLTE", "==", "x" * 500, "j1.5"])
async def test_history_refuses_a_cursor_it_did_not_make(store: JobStore, cursor: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        await store.history("alice", cursor=cursor)
    assert error.value.status_code == 400 and "cursor" in error.value.message
