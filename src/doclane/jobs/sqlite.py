"""The embedded job store: one SQLite file in the data dir.

Claims run in ``BEGIN IMMEDIATE`` transactions, so several worker processes on one host can
share the file safely. The sqlite3 module blocks, so every call runs in the store's own thread,
one at a time (a single connection), never on the event loop: a thread of its own, handed each
call as doclane.offload hands blocking calls to its pool (a write takes ~50 us here; anyio's
hand-over cost more than that).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from doclane.errors import InvalidRequest, JobNotFound, LeaseLost
from doclane.jobs.base import (
    CANCELLED_ERROR,
    NO_ATTEMPT_LIMIT,
    SCHEDULED,
    Change,
    Event,
    HistoryPage,
    JobStore,
    QueueStats,
    Quota,
    QuotaExceeded,
    Usage,
    change_params,
    decode_cursor,
    history_page,
    history_statuses,
    job_from_row,
    prepare_schema,
    queue_stats,
    replay,
    stored_payload,
)
from doclane.jobs.model import Job, JobStatus, NewJob
from doclane.messages import cancelled_event, failed_event
from doclane.offload import run_in

T = TypeVar("T")

COLUMNS = (
    "job_id, status, progress, file_name, upload_key, kind, prompt, priority, run_at, "
    "created_at, completed_at, answer, error, attempts, seq, owner"
)
# A job of the owner given, or of anyone when the owner is None.
OWNED = "job_id = :job_id AND (:owner IS NULL OR owner = :owner)"
FINISHED = "status IN ('completed', 'failed', 'cancelled')"

PROMOTE = """UPDATE jobs INDEXED BY jobs_scheduled SET status = 'pending'
WHERE status = 'scheduled' AND run_at <= :now"""
# The first due job, or the first running job whose lease expired (its worker died): one probe
# of each state's index, so the claim reads O(log n) rows whatever waits for later. The indexes
# are named: without statistics, SQLite would take any index on status and sort its rows.
CLAIM = f"""
UPDATE jobs SET status = 'processing', worker_id = :worker_id, lease_expires_at = :lease_until,
    attempts = attempts + 1
WHERE seq_no = (
    SELECT seq_no FROM (
        SELECT * FROM (
            SELECT seq_no, priority FROM jobs INDEXED BY jobs_pending WHERE status = 'pending'
            ORDER BY priority DESC, seq_no LIMIT 1)
        UNION ALL
        SELECT * FROM (
            SELECT seq_no, priority FROM jobs INDEXED BY jobs_leases
            WHERE status = 'processing' AND lease_expires_at < :now
                AND attempts < :max_attempts
            ORDER BY priority DESC, seq_no LIMIT 1))
    ORDER BY priority DESC, seq_no LIMIT 1)
RETURNING {COLUMNS}"""
# A running job's change, if its worker still holds the lease (see base.py: Change).
EMIT = """
UPDATE jobs SET
    progress = MAX(progress, COALESCE(:progress, progress)),
    answer = COALESCE(:answer, answer),
    -- a retry that is not due yet waits as scheduled (see base.py)
    status = CASE WHEN :status = 'pending' AND :retry_in > 0
                  THEN 'scheduled' ELSE COALESCE(:status, status) END,
    error = COALESCE(:error, error),
    run_at = COALESCE(:now + :retry_in, run_at),
    completed_at = CASE WHEN :final THEN :now ELSE completed_at END,
    worker_id = CASE WHEN :ends_lease THEN NULL ELSE worker_id END,
    lease_expires_at = CASE WHEN :ends_lease THEN NULL ELSE lease_expires_at END,
    seq = seq + 1
WHERE job_id = :job_id AND worker_id = :worker_id AND status = 'processing'
RETURNING seq"""
# The earliest scheduled job's run_at, and the next due job's (in claim order: an index probe).
# Due jobs: every pending row, and the scheduled rows whose time has come (not promoted yet).
DUE = """
SELECT count(*) AS due, min(run_at) AS oldest FROM jobs
WHERE status = 'pending' OR (status = 'scheduled' AND run_at <= :now)"""

NEXT_RUN = """
SELECT (SELECT MIN(run_at) FROM jobs WHERE status = 'scheduled') AS scheduled,
       (SELECT run_at FROM jobs WHERE status = 'pending'
        ORDER BY priority DESC, seq_no LIMIT 1) AS pending"""

# A user's unfinished jobs and those made in the window, each counted up to its limit: index
# ranges (jobs_owner_active, jobs_owner_created) of at most that many rows, however many the
# user has queued; the oldest in the window is one more probe.
USAGE = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE owner = :owner
            AND status IN ('scheduled', 'pending', 'processing') LIMIT :active)) AS active,
       (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE owner = :owner AND created_at > :since
            LIMIT :recent)) AS recent,
       (SELECT min(created_at) FROM jobs WHERE owner = :owner AND created_at > :since) AS oldest"""


def _history_query(statuses: tuple[str, ...], owned: bool) -> str:
    """A page of history: the newest rows of each stored status's index range before the
    cursor, merged (see migration 0005: the index is on ``lower(status)``, which only this
    query names); the rows themselves are read for the page only."""
    owner = "owner = :owner AND " if owned else ""
    ranges = " UNION ALL ".join(
        f"""SELECT * FROM (SELECT seq_no FROM jobs
            WHERE {owner}lower(status) = '{status}' AND seq_no < :before
            ORDER BY seq_no DESC LIMIT :limit)"""
        for status in statuses
    )
    return f"""SELECT seq_no, {COLUMNS} FROM jobs WHERE seq_no IN (
            SELECT seq_no FROM ({ranges}) ORDER BY seq_no DESC LIMIT :limit)
        ORDER BY seq_no DESC"""


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front, so a claim never races another process."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _log(conn: sqlite3.Connection, job_id: str, seq: int, event: Event) -> Event:
    conn.execute(
        "INSERT INTO events (job_id, seq, payload) VALUES (?, ?, ?)",
        (job_id, seq, stored_payload(event)),
    )
    return {**event, "seq": seq}


def _by_key(conn: sqlite3.Connection, key: str | None, owner: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key)
    ).fetchone()
    return row


def _usage(conn: sqlite3.Connection, owner: str, quota: Quota) -> Usage:
    since = time.time() - quota.window_seconds
    params = {"owner": owner, "since": since, "active": quota.active, "recent": quota.recent}
    row = conn.execute(USAGE, params).fetchone()
    oldest = row["oldest"]
    return Usage(row["active"], row["recent"], 0.0 if oldest is None else oldest - since)


def _owned(conn: sqlite3.Connection, job_id: str, owner: str | None) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE {OWNED}", {"job_id": job_id, "owner": owner}
    ).fetchone()
    return row


class SQLiteJobStore(JobStore):
    def __init__(self, path: str, migrate: bool = True) -> None:
        self._path = path
        self._migrate = migrate
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the store's thread; a cancelled caller still waits for it to finish,
        so a write is never done unbeknown to its caller."""
        if self._thread is None:
            raise RuntimeError("job store is not open")
        return await run_in(self._thread, fn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("job store is not open")
        return await self._call(lambda: fn(conn))

    async def open(self) -> None:
        await prepare_schema(f"sqlite:///{self._path}", self._migrate)

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            return conn

        self._thread = ThreadPoolExecutor(1, thread_name_prefix="doclane-sqlite")
        self._conn = await self._call(connect)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=False)

    async def create(self, new: NewJob, quota: Quota | None = None) -> Job:
        def insert(conn: sqlite3.Connection) -> tuple[Job, bool]:
            now = time.time()
            with _transaction(conn):
                if quota is not None:  # one writer at a time: the count holds until the insert
                    usage = _usage(conn, new.owner, quota)
                    if not usage.within(quota):
                        existing = _by_key(conn, new.idempotency_key, new.owner)
                        if existing is None:
                            raise QuotaExceeded(usage)
                        return job_from_row(existing), False
                row = conn.execute(
                    f"""INSERT INTO jobs (job_id, status, file_name, upload_key, kind, prompt,
                            priority, run_at, created_at, idempotency_key, owner)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL
                        DO NOTHING RETURNING {COLUMNS}""",
                    (
                        new.job_id,
                        SCHEDULED if new.run_at > now else "pending",
                        new.file_name,
                        new.upload_key,
                        new.kind.value,
                        new.prompt,
                        new.priority,
                        new.run_at,
                        now,
                        new.idempotency_key,
                        new.owner,
                    ),
                ).fetchone()
                if row is not None:
                    return job_from_row(row), True
                # The key's job was there first (in this transaction, so it is still there).
                existing = _by_key(conn, new.idempotency_key, new.owner)
                assert existing is not None
                return job_from_row(existing), False

        job, created = await self._run(insert)
        if created:
            self.work_arrived(job.run_at)
        return job

    async def get(self, job_id: str, owner: str | None = None) -> Job | None:
        def select(conn: sqlite3.Connection) -> Job | None:
            row = _owned(conn, job_id, owner)
            return job_from_row(row) if row else None

        return await self._run(select)

    async def history(
        self,
        owner: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> HistoryPage:
        query = _history_query(history_statuses(status), owned=owner is not None)
        params = {"owner": owner, "before": decode_cursor(cursor), "limit": limit + 1}

        def select(conn: sqlite3.Connection) -> HistoryPage:
            rows = conn.execute(query, params).fetchall()
            return history_page([(row["seq_no"], job_from_row(row)) for row in rows], limit)

        return await self._run(select)

    async def find_by_idempotency_key(self, key: str, owner: str = "") -> Job | None:
        def select(conn: sqlite3.Connection) -> Job | None:
            row = _by_key(conn, key, owner)
            return job_from_row(row) if row else None

        return await self._run(select)

    async def usage(self, owner: str, quota: Quota) -> Usage:
        return await self._run(lambda conn: _usage(conn, owner, quota))

    async def delete(self, job_id: str, owner: str | None = None) -> Job | None:
        def delete(conn: sqlite3.Connection) -> Job | None:
            params = {"job_id": job_id, "owner": owner}
            with _transaction(conn):
                row = conn.execute(
                    f"DELETE FROM jobs WHERE {OWNED} AND {FINISHED} RETURNING {COLUMNS}", params
                ).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            return job_from_row(row) if row else None

        return await self._run(delete)

    async def delete_finished_before(self, ended_before: float, limit: int) -> list[str]:
        def delete(conn: sqlite3.Connection) -> list[str]:
            with _transaction(conn):
                rows = conn.execute(
                    f"""DELETE FROM jobs WHERE seq_no IN (
                            SELECT seq_no FROM jobs WHERE {FINISHED} AND completed_at < ?
                            LIMIT ?)
                        RETURNING job_id""",
                    (ended_before, limit),
                ).fetchall()
                ids = [row["job_id"] for row in rows]
                conn.executemany("DELETE FROM events WHERE job_id = ?", [(i,) for i in ids])
            return ids

        return await self._run(delete)

    async def claim(
        self, worker_id: str, lease_seconds: float, max_attempts: int = NO_ATTEMPT_LIMIT
    ) -> Job | None:
        def take(conn: sqlite3.Connection) -> Job | None:
            now = time.time()
            params = {
                "worker_id": worker_id,
                "lease_until": now + lease_seconds,
                "now": now,
                "max_attempts": max_attempts,
            }
            with _transaction(conn):
                conn.execute(PROMOTE, {"now": now})
                row = conn.execute(CLAIM, params).fetchone()
            return job_from_row(row) if row else None

        return await self._run(take)

    async def fail_exhausted(self, max_attempts: int, error: str) -> list[Event]:
        def fail(conn: sqlite3.Connection) -> list[Event]:
            now = time.time()
            with _transaction(conn):
                rows = conn.execute(
                    """UPDATE jobs SET status = 'failed', error = ?, completed_at = ?,
                           seq = seq + 1, worker_id = NULL, lease_expires_at = NULL
                       WHERE status = 'processing' AND lease_expires_at < ? AND attempts >= ?
                       RETURNING job_id, seq""",
                    (error, now, now, max_attempts),
                ).fetchall()
                return [
                    _log(conn, row["job_id"], row["seq"], failed_event(row["job_id"], error))
                    for row in rows
                ]

        return await self._run(fail)

    async def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> None:
        def extend(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                """UPDATE jobs SET lease_expires_at = ?
                   WHERE job_id = ? AND worker_id = ? AND status = 'processing'""",
                (time.time() + lease_seconds, job_id, worker_id),
            )
            if cur.rowcount != 1:
                raise LeaseLost(job_id)

        await self._run(extend)

    async def emit(self, job_id: str, worker_id: str, change: Change, event: Event) -> Event:
        logged = await self.emit_many(job_id, worker_id, [(change, event)])
        if not logged:
            raise LeaseLost(job_id)
        return logged[0]

    async def emit_many(
        self, job_id: str, worker_id: str, writes: Sequence[tuple[Change, Event]]
    ) -> list[Event]:
        params = [(change_params(job_id, worker_id, change), event) for change, event in writes]

        def write(conn: sqlite3.Connection) -> list[Event]:
            logged = []
            now = time.time()
            with _transaction(conn):
                for change, event in params:
                    row = conn.execute(EMIT, {**change, "now": now}).fetchone()
                    if row is None:  # the lease is gone: nothing after it is written
                        break
                    logged.append(_log(conn, job_id, row["seq"], event))
            return logged

        return await self._run(write)

    async def release(self, job_id: str, worker_id: str) -> None:
        def give_back(conn: sqlite3.Connection) -> None:
            conn.execute(
                """UPDATE jobs SET status = 'pending', attempts = attempts - 1,
                       worker_id = NULL, lease_expires_at = NULL
                   WHERE job_id = ? AND worker_id = ? AND status = 'processing'""",
                (job_id, worker_id),
            )

        await self._run(give_back)
        self.work_arrived()

    async def cancel(self, job_id: str, owner: str | None = None) -> tuple[Job, Event | None]:
        def cancel(conn: sqlite3.Connection) -> tuple[Job, Event | None]:
            params = {"error": CANCELLED_ERROR, "now": time.time(), "job_id": job_id}
            with _transaction(conn):
                row = conn.execute(
                    f"""UPDATE jobs SET status = 'cancelled', error = :error, completed_at = :now,
                           seq = seq + 1, worker_id = NULL, lease_expires_at = NULL
                       WHERE {OWNED} AND status IN ('scheduled', 'pending', 'processing')
                       RETURNING seq""",
                    {**params, "owner": owner},
                ).fetchone()
                event = _log(conn, job_id, row["seq"], cancelled_event(job_id)) if row else None
                current = _owned(conn, job_id, owner)
            if current is None:
                raise JobNotFound(job_id)
            job = job_from_row(current)
            if job.status is not JobStatus.CANCELLED:
                raise InvalidRequest(f"Job already {job.status.value}; it cannot be cancelled", 409)
            return job, event

        return await self._run(cancel)

    async def events_after(self, job_id: str, after_seq: int) -> list[Event]:
        def select(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT seq, payload FROM events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            return replay(((row["seq"], row["payload"]) for row in rows), after_seq)

        return await self._run(select)

    async def leases(self) -> list[tuple[str, str]]:
        def select(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT job_id, worker_id FROM jobs WHERE status = 'processing'"
            ).fetchall()
            return [(row["job_id"], row["worker_id"]) for row in rows]

        return await self._run(select)

    async def expire_lease(self, job_id: str, worker_id: str) -> None:
        def expire(conn: sqlite3.Connection) -> None:
            conn.execute(
                """UPDATE jobs SET lease_expires_at = 0
                   WHERE job_id = ? AND worker_id = ? AND status = 'processing'""",
                (job_id, worker_id),
            )

        await self._run(expire)

    async def stats(self) -> QueueStats:
        def select(conn: sqlite3.Connection) -> QueueStats:
            counts = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
            now = time.time()
            due = conn.execute(DUE, {"now": now}).fetchone()
            oldest = None if due["oldest"] is None else now - due["oldest"]
            return queue_stats([(row[0], row[1]) for row in counts], due["due"], oldest)

        return await self._run(select)

    async def next_run_at(self) -> float | None:
        def select(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(NEXT_RUN).fetchone()
            return min(
                (t for t in (row["scheduled"], row["pending"]) if t is not None), default=None
            )

        return await self._run(select)
