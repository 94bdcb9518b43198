"""The embedded job store: one SQLite file in the data dir.

Claims run in ``BEGIN IMMEDIATE`` transactions, so several worker processes on one host can
share the file safely. The sqlite3 module blocks, so every call runs in a worker thread, one at a
time per store (a single connection), never on the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from doclane.errors import DoclaneError, InvalidRequest, JobNotFound, LeaseLost
from doclane.jobs.base import CANCELLED_ERROR, Change, Event, JobStore, replay, stored_payload
from doclane.jobs.model import DocumentKind, Job, JobStatus, NewJob
from doclane.messages import cancelled_event, failed_event

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq_no INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: FIFO within a priority
    job_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    file_name TEXT NOT NULL,
    file_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    prompt TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    completed_at REAL,
    answer TEXT NOT NULL DEFAULT '',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_expires_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, priority DESC, seq_no);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,  -- the event as sent, without ai_chunk's partial (see replay)
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 1

COLUMNS = (
    "job_id, status, progress, file_name, file_path, kind, prompt, priority, run_at, "
    "created_at, completed_at, answer, error, attempts, seq"
)


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
    event = {**event, "seq": seq}
    conn.execute(
        "INSERT INTO events (job_id, seq, payload) VALUES (?, ?, ?)",
        (job_id, seq, stored_payload(event)),
    )
    return event


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"],
        status=JobStatus(row["status"]),
        progress=row["progress"],
        file_name=row["file_name"],
        file_path=row["file_path"],
        kind=DocumentKind(row["kind"]),
        prompt=row["prompt"],
        priority=row["priority"],
        run_at=row["run_at"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        answer=row["answer"],
        error=row["error"],
        attempts=row["attempts"],
        seq=row["seq"],
    )


class SQLiteJobStore(JobStore):
    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("job store is not open")
        return await anyio.to_thread.run_sync(fn, conn, limiter=self._limiter)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise DoclaneError(f"{self._path} has job schema v{version}; expected v1")
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return conn

        self._conn = await anyio.to_thread.run_sync(connect, limiter=self._limiter)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)

    async def create(self, new: NewJob) -> Job:
        def insert(conn: sqlite3.Connection) -> Job:
            row = conn.execute(
                f"""INSERT INTO jobs (job_id, status, file_name, file_path, kind, prompt,
                        priority, run_at, created_at)
                    VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
                (
                    new.job_id,
                    new.file_name,
                    new.file_path,
                    new.kind.value,
                    new.prompt,
                    new.priority,
                    new.run_at,
                    time.time(),
                ),
            ).fetchone()
            return _job(row)

        return await self._run(insert)

    async def get(self, job_id: str) -> Job | None:
        def select(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            return _job(row) if row else None

        return await self._run(select)

    async def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        def take(conn: sqlite3.Connection) -> Job | None:
            now = time.time()
            with _transaction(conn):
                row = conn.execute(
                    f"""UPDATE jobs SET status = 'processing', worker_id = ?,
                            lease_expires_at = ?, attempts = attempts + 1
                        WHERE seq_no = (
                            SELECT seq_no FROM jobs
                            WHERE (status = 'pending' AND run_at <= ?)
                               OR (status = 'processing' AND lease_expires_at < ?)
                            ORDER BY priority DESC, seq_no LIMIT 1)
                        RETURNING {COLUMNS}""",
                    (worker_id, now + lease_seconds, now, now),
                ).fetchone()
            return _job(row) if row else None

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
        final = change.status is not None and change.status.is_final
        ends_lease = change.status is not None and change.status is not JobStatus.PROCESSING

        def write(conn: sqlite3.Connection) -> Event:
            with _transaction(conn):
                row = conn.execute(
                    """UPDATE jobs SET
                           progress = MAX(progress, COALESCE(?, progress)),
                           answer = COALESCE(?, answer),
                           status = COALESCE(?, status),
                           error = COALESCE(?, error),
                           run_at = COALESCE(?, run_at),
                           completed_at = CASE WHEN ? THEN ? ELSE completed_at END,
                           worker_id = CASE WHEN ? THEN NULL ELSE worker_id END,
                           lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END,
                           seq = seq + 1
                       WHERE job_id = ? AND worker_id = ? AND status = 'processing'
                       RETURNING seq""",
                    (
                        change.progress,
                        change.answer,
                        change.status.value if change.status else None,
                        change.error,
                        change.run_at,
                        final,
                        time.time(),
                        ends_lease,
                        ends_lease,
                        job_id,
                        worker_id,
                    ),
                ).fetchone()
                if row is None:
                    raise LeaseLost(job_id)
                return _log(conn, job_id, row["seq"], event)

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

    async def cancel(self, job_id: str) -> tuple[Job, Event | None]:
        def cancel(conn: sqlite3.Connection) -> tuple[Job, Event | None]:
            with _transaction(conn):
                row = conn.execute(
                    """UPDATE jobs SET status = 'cancelled', error = ?, completed_at = ?,
                           seq = seq + 1, worker_id = NULL, lease_expires_at = NULL
                       WHERE job_id = ? AND status IN ('pending', 'processing')
                       RETURNING seq""",
                    (CANCELLED_ERROR, time.time(), job_id),
                ).fetchone()
                event = _log(conn, job_id, row["seq"], cancelled_event(job_id)) if row else None
                current = conn.execute(
                    f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
                ).fetchone()
            if current is None:
                raise JobNotFound(job_id)
            job = _job(current)
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

    async def next_run_at(self) -> float | None:
        def select(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT MIN(run_at) FROM jobs WHERE status = 'pending'").fetchone()
            return row[0] if row else None

        return await self._run(select)
