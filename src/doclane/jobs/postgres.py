"""The distributed job store: PostgreSQL, for any number of workers and API replicas on any host.

Same contract as the SQLite store (see base.py). What differs is how it is kept under
concurrency:

- Time is the database's: ``now()`` decides whether a job is due, when a lease expires and
  when a job was created or ended, so workers with skewed clocks agree. Times go in and out as
  epoch seconds, as on SQLite.
- A claim locks its row with ``FOR UPDATE SKIP LOCKED``: concurrent claims never wait for each
  other and never take the same job; a row another claim holds is skipped, not waited for.
- A worker's write names the job, its worker and ``status = 'processing'`` in one ``UPDATE``:
  whoever lost the lease (expired and claimed again, or cancelled) matches no row and gets
  LeaseLost, and row locks order the race, so a job completes once.
- The row change and its event are one statement (``WITH … UPDATE … INSERT INTO events``),
  one round trip and one transaction. When the event bus is NOTIFY (events/postgres.py), the
  same statement notifies the event: PostgreSQL delivers it when the transaction commits, so
  no event is heard before it is in the log, nor lost between its write and its publishing.

The tables (``jobs``, ``events``, the migrations' ``alembic_version``) go in the connection's
search path; to keep them in a schema of their own, add ``?options=-csearch_path%3Ddoclane``
to the URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import psycopg

from doclane.errors import InvalidRequest, JobNotFound, LeaseLost
from doclane.jobs.base import (
    CANCELLED_ERROR,
    NO_ATTEMPT_LIMIT,
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
from doclane.jobs.pgpool import Pool
from doclane.jobs.pgsql import (
    BY_KEY,
    CANCEL,
    CANCEL_NOTIFY,
    CLAIM,
    COLUMNS,
    CREATE_NOTIFY,
    CREATE_WITHIN_QUOTA,
    DELETE,
    DELETE_FINISHED,
    DUE,
    EMIT,
    EMIT_NOTIFY,
    EXHAUSTED,
    FAIL_EXHAUSTED,
    HEARTBEAT,
    NEXT_RUN,
    NO_FLUSH,
    OWNED,
    PROMOTE,
    PROMOTE_BATCH,
    RELEASE,
    USAGE,
    WORK_CHANNEL,
    history_query,
)
from doclane.messages import cancelled_event, failed_event

log = logging.getLogger(__name__)

RELISTEN = 1.0  # seconds before a lost LISTEN connection is opened again

NoticeHead = Callable[[Event], str]


class _Burst(Exception):
    """A claim's promotion filled a batch: the claim runs again, promoting the rest first."""


def _quota_params(quota: Quota) -> dict[str, Any]:
    return {
        "max_active": quota.active,
        "max_recent": quota.recent,
        "window": float(quota.window_seconds),
    }


class PostgresJobStore(JobStore):
    def __init__(self, url: str, migrate: bool = True, pool_size: int = 10) -> None:
        self._url = url
        self._migrate = migrate
        self._pool_size = pool_size
        self._pool: Pool | None = None
        self._notice: tuple[str, NoticeHead] | None = None

    def notify_events(self, channel: str, head: NoticeHead) -> None:
        """From now on, NOTIFY each event on ``channel`` in the transaction that logs it. The
        payload is ``head(event)`` (the event without its seq, up to where the seq goes), the
        seq and ``}``."""
        self._notice = (channel, head)

    @property
    def notifies_events(self) -> bool:
        return self._notice is not None

    def _notice_params(self, event: Event) -> dict[str, str]:
        assert self._notice is not None
        channel, head = self._notice
        return {"channel": channel, "head": head(event)}

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("job store is not open")
        return self._pool

    async def _one(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def open(self) -> None:
        await prepare_schema(self._url, self._migrate)  # processes starting together wait
        self._pool = Pool(self._url, self._pool_size)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def create(self, new: NewJob, quota: Quota | None = None) -> Job:
        params = {
            "job_id": new.job_id,
            "file_name": new.file_name,
            "upload_key": new.upload_key,
            "kind": new.kind.value,
            "prompt": new.prompt,
            "priority": new.priority,
            "run_at": float(new.run_at),
            "idempotency_key": new.idempotency_key,
            "owner": new.owner,
        }
        if quota is None:
            row = await self._one(CREATE_NOTIFY, params)
            created = row is not None
            if row is None:  # the key's job was there first (nothing notified)
                row = await self._one(BY_KEY, {"key": new.idempotency_key, "owner": new.owner})
                assert row is not None  # unless deleted this instant: not worth a retry
        else:
            row, created = await self._create_within(quota, params)
        job = job_from_row(row)
        if created:
            self.work_arrived(job.run_at)
        return job

    async def _create_within(
        self, quota: Quota, params: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The new job's row, or the key's job's if it was there first (False); raises
        QuotaExceeded. One statement: the lock, the counts and the insert are
        doclane_create_job's (migration 0006). A refusal looks again to say which limit."""
        params = {**params, **_quota_params(quota), "key": params["idempotency_key"]}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(CREATE_WITHIN_QUOTA, params)).fetchone()
            if row is not None:
                return row, True
            existing = await (await conn.execute(BY_KEY, params)).fetchone()
            if existing is not None:
                return existing, False
            usage = await (await conn.execute(USAGE, params)).fetchone()
        assert usage is not None  # one row of scalar subqueries
        raise QuotaExceeded(Usage(usage["active"], usage["recent"], usage["frees_in"] or 0.0))

    async def get(self, job_id: str, owner: str | None = None) -> Job | None:
        query = f"SELECT {COLUMNS} FROM jobs WHERE {OWNED}"
        row = await self._one(query, {"job_id": job_id, "owner": owner})
        return job_from_row(row) if row else None

    async def history(
        self,
        owner: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> HistoryPage:
        query = history_query(history_statuses(status), owned=owner is not None)
        params = {"owner": owner, "before": decode_cursor(cursor), "limit": limit + 1}
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        return history_page([(row["seq_no"], job_from_row(row)) for row in rows], limit)

    async def find_by_idempotency_key(self, key: str, owner: str = "") -> Job | None:
        row = await self._one(BY_KEY, {"key": key, "owner": owner})
        return job_from_row(row) if row else None

    async def usage(self, owner: str, quota: Quota) -> Usage:
        row = await self._one(USAGE, {"owner": owner, **_quota_params(quota)})
        assert row is not None  # one row of scalar subqueries
        return Usage(row["active"], row["recent"], row["frees_in"] or 0.0)

    async def delete(self, job_id: str, owner: str | None = None) -> Job | None:
        row = await self._one(DELETE, {"job_id": job_id, "owner": owner})
        return job_from_row(row) if row else None

    async def delete_finished_before(self, ended_before: float, limit: int) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                DELETE_FINISHED, {"before": float(ended_before), "limit": limit}
            )
            return [row["job_id"] for row in await cur.fetchall()]

    async def claim(
        self, worker_id: str, lease_seconds: float, max_attempts: int = NO_ATTEMPT_LIMIT
    ) -> Job | None:
        params = {
            "worker_id": worker_id,
            "lease": float(lease_seconds),
            "max_attempts": max_attempts,
        }
        async with self.pool.connection() as conn:
            try:  # the statements sent in one go (pipeline mode): one wait, not five
                async with conn.pipeline(), conn.transaction():
                    await conn.execute(NO_FLUSH)
                    promoted = await conn.execute(PROMOTE)
                    row = await (await conn.execute(CLAIM, params)).fetchone()
                    if promoted.rowcount == PROMOTE_BATCH:
                        raise _Burst  # more fell due than a batch: undone, claimed below
            except _Burst:
                async with conn.transaction():
                    await conn.execute(NO_FLUSH)
                    while (await conn.execute(PROMOTE)).rowcount == PROMOTE_BATCH:
                        pass  # all of a burst first, so that it is claimed in priority order
                    row = await (await conn.execute(CLAIM, params)).fetchone()
        return job_from_row(row) if row else None

    async def fail_exhausted(self, max_attempts: int, error: str) -> list[Event]:
        params = {"max_attempts": max_attempts, "error": error}
        async with self.pool.connection() as conn:
            # A cheap look first: every worker runs this each second, and it almost always
            # finds none.
            cur = await conn.execute(f"SELECT 1 FROM jobs WHERE {EXHAUSTED} LIMIT 1", params)
            if await cur.fetchone() is None:
                return []
            async with conn.transaction():
                cur = await conn.execute(FAIL_EXHAUSTED, params)
                failed = [
                    (row["job_id"], row["seq"], failed_event(row["job_id"], error))
                    for row in await cur.fetchall()
                ]
                async with conn.cursor() as log:
                    await log.executemany(
                        "INSERT INTO events (job_id, seq, payload) VALUES (%s, %s, %s)",
                        [(job_id, seq, stored_payload(event)) for job_id, seq, event in failed],
                    )
                    if self._notice is not None:
                        await log.executemany(
                            "SELECT pg_notify(%(channel)s, %(head)s::text || %(seq)s::text || '}')",
                            [{**self._notice_params(e), "seq": seq} for _, seq, e in failed],
                        )
        return [{**event, "seq": seq} for _, seq, event in failed]

    async def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> None:
        params = {"job_id": job_id, "worker_id": worker_id, "lease": float(lease_seconds)}
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(NO_FLUSH)
            cur = await conn.execute(HEARTBEAT, params)
            if cur.rowcount != 1:
                raise LeaseLost(job_id)

    def _emit_params(
        self, job_id: str, worker_id: str, change: Change, event: Event
    ) -> dict[str, Any]:
        params: dict[str, Any] = change_params(job_id, worker_id, change)
        params["payload"] = stored_payload(event)
        if self._notice is not None:
            params.update(self._notice_params(event))
        return params

    async def emit(self, job_id: str, worker_id: str, change: Change, event: Event) -> Event:
        params = self._emit_params(job_id, worker_id, change, event)
        row = await self._one(EMIT if self._notice is None else EMIT_NOTIFY, params)
        if row is None:
            raise LeaseLost(job_id)
        return {**event, "seq": row["seq"]}

    async def emit_many(
        self, job_id: str, worker_id: str, writes: Sequence[tuple[Change, Event]]
    ) -> list[Event]:
        """One transaction, one durable commit, the statements sent in one go (pipeline mode);
        a statement after a lost lease matches no row, so writes and notifies nothing."""
        if len(writes) == 1:
            change, event = writes[0]
            try:
                return [await self.emit(job_id, worker_id, change, event)]
            except LeaseLost:
                return []
        query = EMIT if self._notice is None else EMIT_NOTIFY
        logged: list[Event] = []
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            cursors = [
                await conn.execute(query, self._emit_params(job_id, worker_id, change, event))
                for change, event in writes
            ]
            for cursor, (_, event) in zip(cursors, writes, strict=True):
                row = await cursor.fetchone()
                if row is None:
                    break
                logged.append({**event, "seq": row["seq"]})
        return logged

    async def release(self, job_id: str, worker_id: str) -> None:
        await self._notifying(RELEASE, {"job_id": job_id, "worker_id": worker_id})
        self.work_arrived()

    async def _notifying(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Run a statement that makes a job claimable and tell every listening process, in one
        transaction: the notice is delivered when the job is there to claim."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(query, params)
            row = await cur.fetchone() if cur.description else None
            await conn.execute(f"NOTIFY {WORK_CHANNEL}")
            return row

    async def watch(self) -> None:
        """LISTEN on a connection of its own and relay each notice to this process's idle
        workers; a lost connection is opened again (meanwhile workers poll)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {WORK_CHANNEL}")
                    self.work_arrived()  # anything queued while nobody listened
                    async for _ in conn.notifies():
                        self.work_arrived()
            except psycopg.Error as exc:
                log.warning("listening for new jobs failed (%s); again in %g s", exc, RELISTEN)
            await anyio.sleep(RELISTEN)

    async def cancel(self, job_id: str, owner: str | None = None) -> tuple[Job, Event | None]:
        event = cancelled_event(job_id)
        params: dict[str, Any] = {
            "job_id": job_id,
            "owner": owner,
            "error": CANCELLED_ERROR,
            "payload": stored_payload(event),
        }
        if self._notice is not None:
            params.update(self._notice_params(event))
        row = await self._one(CANCEL if self._notice is None else CANCEL_NOTIFY, params)
        if row is not None:
            return job_from_row(row), {**event, "seq": row["seq"]}
        job = await self.get(job_id, owner)
        if job is None:
            raise JobNotFound(job_id)
        if job.status is not JobStatus.CANCELLED:
            raise InvalidRequest(f"Job already {job.status.value}; it cannot be cancelled", 409)
        return job, None

    async def events_after(self, job_id: str, after_seq: int) -> list[Event]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, payload FROM events WHERE job_id = %(id)s ORDER BY seq",
                {"id": job_id},
            )
            rows = await cur.fetchall()
        return replay(((row["seq"], row["payload"]) for row in rows), after_seq)

    async def leases(self) -> list[tuple[str, str]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT job_id, worker_id FROM jobs WHERE status = 'processing'"
            )
            return [(row["job_id"], row["worker_id"]) for row in await cur.fetchall()]

    async def expire_lease(self, job_id: str, worker_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                """UPDATE jobs SET lease_expires_at = '-infinity'
                   WHERE job_id = %(job_id)s AND worker_id = %(worker_id)s
                     AND status = 'processing'""",
                {"job_id": job_id, "worker_id": worker_id},
            )

    async def stats(self) -> QueueStats:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            counts = [(row["status"], row["n"]) for row in await cur.fetchall()]
            due = await (await conn.execute(DUE)).fetchone()
        assert due is not None
        return queue_stats(counts, due["due"], due["oldest"])

    async def next_run_at(self) -> float | None:
        row = await self._one(NEXT_RUN)
        wait = row["wait"] if row else None
        # The database's clock says how long; this process's clock says when (see base.py).
        return None if wait is None else time.time() + wait
