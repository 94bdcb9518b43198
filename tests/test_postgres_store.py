"""The PostgreSQL store's own concerns: the database's clock, processes starting together,
query plans, lost connections, and the optional driver. The contract is in test_store.py."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from doclane.errors import DoclaneError, StoreUnavailable
from doclane.jobs import DocumentKind, JobStore, NewJob, migrations, open_store
from doclane.jobs.pgsql import CLAIM, PROMOTE, PROMOTE_BATCH
from tests.postgres import database_or_skip

HOUR = 3600.0


@pytest.fixture
def database_url() -> Iterator[str]:
    with database_or_skip() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    store = open_store(database_url)
    await store.open()
    yield store
    await store.close()


async def add(store: JobStore, run_at: float | None = None) -> str:
    job_id = str(uuid.uuid4())
    when = time.time() if run_at is None else run_at
    await store.create(NewJob(job_id, "a.pdf", "/nowhere", DocumentKind.PDF, "q", 0, when))
    return job_id


@pytest.mark.anyio
async def test_a_worker_with_a_fast_clock_keeps_the_database_time(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Due times, leases and their expiry are the database's: a worker whose clock runs an
    hour fast neither starts a job early nor takes a live lease, and its own lease ends on
    time. (The skewed clock is this process's ``time.time``, which the store must not use.)"""
    real = time.time
    later = await add(store, run_at=real() + 0.5)
    first, second = await add(store), await add(store)
    assert (job := await store.claim("honest", 60)) is not None and job.job_id == first

    monkeypatch.setattr(time, "time", lambda: real() + HOUR)
    fast = await store.claim("fast", 0.3)
    assert fast is not None and fast.job_id == second
    assert await store.claim("fast", 60) is None  # `later` is not due; `first` is leased
    next_run_at = await store.next_run_at()  # in this process's (fast) clock
    assert next_run_at == pytest.approx(real() + HOUR + 0.5, abs=0.3)
    made = await add(store)  # its run_at is an hour from now: scheduled
    created = await store.get(made)
    assert created is not None and created.created_at == pytest.approx(real(), abs=5)
    monkeypatch.undo()

    await anyio.sleep(0.6)  # `later` falls due, the fast worker's lease on `second` expires
    assert (job := await store.claim("w", 60)) is not None and job.job_id == later
    assert (job := await store.claim("w", 60)) is not None and job.job_id == second
    assert job.attempts == 2
    assert await store.claim("w", 60) is None


@pytest.mark.anyio
async def test_processes_starting_together_create_the_schema_once(database_url: str) -> None:
    stores = [open_store(database_url) for _ in range(4)]
    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(store.open)
    try:
        job_id = await add(stores[0])
        assert await stores[3].get(job_id) is not None
    finally:
        for store in stores:
            await store.close()
    import psycopg

    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT * FROM alembic_version").fetchall() == [(migrations.head(),)]


# The schema as doclane created it before migrations, kept here as history.
LEGACY_SCHEMA = """
CREATE TABLE schema_version (version integer NOT NULL);
CREATE TABLE jobs (
    seq_no bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN
        ('scheduled', 'pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress integer NOT NULL DEFAULT 0,
    file_name text NOT NULL,
    file_path text NOT NULL,
    kind text NOT NULL,
    prompt text NOT NULL,
    priority integer NOT NULL,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    answer text NOT NULL DEFAULT '',
    error text,
    attempts integer NOT NULL DEFAULT 0,
    seq integer NOT NULL DEFAULT 0,
    worker_id text,
    lease_expires_at timestamptz
);
CREATE INDEX jobs_pending ON jobs (priority DESC, seq_no) WHERE status = 'pending';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE TABLE events (
    job_id text NOT NULL,
    seq integer NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO schema_version VALUES (1);
INSERT INTO jobs (job_id, status, file_name, file_path, kind, prompt, priority, run_at)
VALUES ('old', 'pending', 'a.pdf', '/data/uploads/old', 'pdf', 'q', 0, now());
"""


def shape(database_url: str) -> dict[str, object]:
    """What a database's schema is made of: each column, each index's definition."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default
               FROM information_schema.columns WHERE table_schema = current_schema()
               ORDER BY table_name, column_name"""
        ).fetchall()
        indexes = conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes
               WHERE schemaname = current_schema() ORDER BY indexname"""
        ).fetchall()
        checks = conn.execute(
            """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
               WHERE connamespace = current_schema()::regnamespace ORDER BY conname"""
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": checks}


@pytest.mark.anyio
async def test_a_database_from_before_migrations_is_upgraded_in_place(database_url: str) -> None:
    """A database today's doclane made (no alembic_version) keeps its jobs and ends with
    exactly the schema of a new one."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(LEGACY_SCHEMA)
    store = open_store(database_url)
    await store.open()
    try:
        assert migrations.is_at_head(database_url)
        job = await store.get("old")
        assert job is not None and job.prompt == "q"
        assert job.upload_key == "old"  # was /data/uploads/old: that file below the root
        assert (claimed := await store.claim("w", 60)) is not None and claimed.job_id == "old"
    finally:
        await store.close()
    with database_or_skip() as fresh:
        migrations.upgrade(fresh)
        assert shape(database_url) == shape(fresh)


@pytest.mark.anyio
async def test_a_database_from_a_newer_doclane_is_refused(database_url: str) -> None:
    import psycopg

    with database_or_skip() as older:  # a newer doclane from before migrations
        with psycopg.connect(older) as conn:
            conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (99)")
        with pytest.raises(DoclaneError, match="upgrade doclane"):
            migrations.upgrade(older)
    migrations.upgrade(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    store = open_store(database_url)
    with pytest.raises(DoclaneError, match="upgrade doclane"):
        await store.open()
    await store.close()


@pytest.mark.anyio
async def test_an_unreachable_database_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")
    store = open_store("postgresql://postgres@127.0.0.1:1/doclane?connect_timeout=5")
    with pytest.raises(DoclaneError, match=r"Cannot open the job database: .*port 1 failed"):
        await store.open()
    await store.close()


@pytest.mark.anyio
async def test_claims_read_only_the_due_end_of_the_queue(
    store: JobStore, database_url: str
) -> None:
    """With jobs due and jobs scheduled for tomorrow in the table, the claim takes the first
    row of the due jobs' index in order (no scan of them all and sort, no table scan) and
    probes the leases' index; promotion reads the scheduled jobs' index by run_at. So with
    the table's statistics, and before it has any (a new table, or one just filled)."""
    tomorrow = time.time() + 24 * HOUR

    async def fill(count: int, run_at: float | None) -> None:
        for _ in range(count):
            await add(store, run_at)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(fill, 250, tomorrow)
            tg.start_soon(fill, 40, None)
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for statistics in ("none yet", "analyzed"):
            if statistics == "analyzed":
                conn.execute("ANALYZE jobs")
            params = {"worker_id": "w", "lease": 60.0, "max_attempts": 3}
            claim = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {CLAIM}", params))
            promote = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {PROMOTE}"))
            due = claim[claim.index("CTE due") : claim.index("CTE expired")]
            assert "Index Scan using jobs_pending" in due, (statistics, claim)
            assert "Sort" not in due and "Bitmap" not in due, (statistics, claim)
            assert "jobs_leases" in claim and "Seq Scan" not in claim, (statistics, claim)
            assert "jobs_scheduled" in promote and "Seq Scan" not in promote, promote


@pytest.mark.anyio
async def test_a_burst_larger_than_a_promotion_batch_keeps_priority_order(
    store: JobStore,
) -> None:
    """More jobs fall due at once than one promotion takes: the claim still promotes them
    all first, so the most urgent one, last by due time, is claimed first."""
    due = time.time() + 1.5

    async def fill(count: int) -> None:
        for _ in range(count):
            await add(store, due)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(fill, (PROMOTE_BATCH + 100) // 10)
    urgent = str(uuid.uuid4())
    await store.create(NewJob(urgent, "a.pdf", "/", DocumentKind.PDF, "q", 9, due + 0.001))
    await anyio.sleep(max(0.0, due + 0.1 - time.time()))
    job = await store.claim("w", 60)
    assert job is not None and job.job_id == urgent


@pytest.mark.anyio
async def test_connections_the_server_dropped_are_replaced(
    store: JobStore, database_url: str
) -> None:
    job_id = await add(store)
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()"""
        )
    with pytest.raises(StoreUnavailable):  # the one call that finds it gone: a 503 at the API
        await store.get(job_id)
    assert await store.get(job_id) is not None


def test_a_missing_driver_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """As when doclane was installed without the extra: psycopg cannot be imported."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for module in ("doclane.jobs.postgres", "doclane.jobs.pgpool"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(DoclaneError, match=r"pip install 'doclane\[postgres\]'"):
        open_store("postgresql://postgres@127.0.0.1:5432/doclane")


def test_the_sqlite_default_never_imports_the_driver(tmp_path: Path) -> None:
    code = (
        "import sys, anyio\n"
        "from doclane.jobs import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "async def main():\n"
        "    await store.open()\n"
        "    await store.close()\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    result = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.anyio
async def test_a_job_queued_by_another_process_wakes_an_idle_worker(database_url: str) -> None:
    """LISTEN/NOTIFY: the API process queues, a worker process elsewhere wakes at once."""
    api, worker = open_store(database_url), open_store(database_url)
    await api.open()
    await worker.open()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.watch)
            await anyio.sleep(0.5)  # listening
            with anyio.fail_after(5):
                await worker.wait_for_work(30)  # the notice watch() gives when it starts
            woken = anyio.Event()

            async def idle() -> None:
                await worker.wait_for_work(30)
                woken.set()

            tg.start_soon(idle)
            await anyio.sleep(0.2)
            started = time.monotonic()
            await api.create(NewJob("queued", "a.pdf", "/x", DocumentKind.PDF, "q", 0, time.time()))
            with anyio.fail_after(5):
                await woken.wait()
            assert time.monotonic() - started < 1.0
            tg.cancel_scope.cancel()
    finally:
        await api.close()
        await worker.close()
