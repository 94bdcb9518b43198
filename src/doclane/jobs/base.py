"""The job store interface: the jobs table is the job record, the queue and the event log.

Every backend (SQLite now, PostgreSQL for scale-out) passes the same contract tests. A write made
for a running job names the worker holding its lease; a write from a worker that lost the lease
(it expired, or the job was cancelled) raises :class:`~doclane.errors.LeaseLost` instead of
clobbering the new state. Each write that clients should see also appends one event to the job's
log in the same transaction, so the log and the row never disagree and a client can replay what
it missed.

A claim must not cost more as jobs scheduled for later pile up. So a pending job that is not due
yet is stored with a status of its own, ``scheduled`` (its public status is still ``pending``),
and a row is stored as ``pending`` only once it is due by the store's clock. Each state a claim
looks at has an index of its own rows only. A claim first promotes the scheduled jobs that fell
due (a range of the ``run_at`` index), then takes the first due job in claim order (priority,
then insertion) or the first running job whose lease expired, whichever comes first: index
probes, O(log n) however many jobs wait for later.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from doclane.errors import InvalidRequest, LeaseLost
from doclane.jobs.model import DocumentKind, Job, JobStatus, NewJob
from doclane.offload import run_blocking

Event = dict[str, Any]

CANCELLED_ERROR = "Job cancelled"
SCHEDULED = "scheduled"  # stored status of a pending job that is not due yet (see above)
NO_ATTEMPT_LIMIT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Change:
    """What a worker's write does to its job, besides raising the seq."""

    progress: int | None = None  # only ever raised
    answer: str | None = None
    status: JobStatus | None = None
    error: str | None = None
    # With status PENDING: seconds until the job may run again, counted by the store's clock
    # (the database's, on PostgreSQL), not the worker's.
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue at a glance, for the metrics."""

    jobs: dict[JobStatus, int]  # every job by its public status
    due: int  # pending jobs whose time has come, waiting for a worker
    oldest_due_seconds: float  # how long the longest-waiting of them has waited (0: none)


@dataclass(frozen=True, slots=True)
class Quota:
    """What one owner may have at once (the per-user limits, doclane/limits.py)."""

    active: int  # jobs queued (scheduled included) or running
    recent: int  # jobs created within the window
    window_seconds: float


@dataclass(frozen=True, slots=True)
class Usage:
    """One owner's jobs now, against a quota (see JobStore.usage). The counts stop at the
    quota's limits, so that counting costs the same however many jobs the owner has queued."""

    active: int  # queued (scheduled included) and running
    recent: int  # created within the window
    frees_in: float  # seconds until the oldest of the recent ones leaves the window

    def within(self, quota: Quota) -> bool:
        return self.active < quota.active and self.recent < quota.recent


class QuotaExceeded(Exception):
    """:meth:`JobStore.create` refused a job: its owner is at a limit of the quota given."""

    def __init__(self, usage: Usage) -> None:
        super().__init__(usage)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a user's jobs, newest first (see JobStore.history)."""

    jobs: list[Job]
    next: str | None  # the cursor of the page after this one; None: this is the last


# The stored statuses behind each public one (a pending job may be stored as scheduled).
STORED_STATUSES: dict[JobStatus, tuple[str, ...]] = {
    status: (SCHEDULED, status.value) if status is JobStatus.PENDING else (status.value,)
    for status in JobStatus
}
NO_CURSOR = 2**63 - 1  # before every job: the first page
CURSOR_PREFIX = "j1."


def history_statuses(status: JobStatus | None) -> tuple[str, ...]:
    """The stored statuses a history page reads: one index range each."""
    if status is not None:
        return STORED_STATUSES[status]
    return tuple(stored for group in STORED_STATUSES.values() for stored in group)


def encode_cursor(seq_no: int) -> str:
    """An opaque cursor: the page after it holds the jobs inserted before ``seq_no``'s."""
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{seq_no}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The insertion number a cursor names (:data:`NO_CURSOR` for none); raises
    InvalidRequest (400) for anything :func:`encode_cursor` did not make."""
    if cursor is None:
        return NO_CURSOR
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not number.isdigit() or len(number) > 19:
        raise InvalidRequest("Invalid cursor: pass the `next` value of a previous page", 400)
    return min(int(number), NO_CURSOR)


def history_page(rows: list[tuple[int, Job]], limit: int) -> HistoryPage:
    """A page from up to ``limit + 1`` ``(seq_no, job)`` rows, newest first: one more than
    the page says whether another page follows."""
    jobs = [job for _, job in rows[:limit]]
    more = len(rows) > limit
    return HistoryPage(jobs, encode_cursor(rows[limit - 1][0]) if more else None)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def job_from_row(row: Row) -> Job:
    """A job from a row of the store's job columns (times as epoch seconds)."""
    status = row["status"]
    return Job(
        job_id=row["job_id"],
        status=JobStatus.PENDING if status == SCHEDULED else JobStatus(status),
        progress=row["progress"],
        file_name=row["file_name"],
        upload_key=row["upload_key"],
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
        owner=row["owner"],
    )


def change_params(job_id: str, worker_id: str, change: Change) -> dict[str, object]:
    """The named parameters of a backend's ``emit`` statement."""
    status = change.status
    return {
        "job_id": job_id,
        "worker_id": worker_id,
        "progress": change.progress,
        "answer": change.answer,
        "status": status.value if status else None,
        "error": change.error,
        "retry_in": change.retry_in,
        "final": status is not None and status.is_final,  # completed_at is set
        "ends_lease": status is not None and status is not JobStatus.PROCESSING,
    }


def stored_payload(event: Event) -> str:
    """An event as kept in the log: ``partial`` is left out (the chunks rebuild it), and so is
    ``seq``, which the log keeps in a column of its own (so one statement can write both)."""
    return json.dumps({k: v for k, v in event.items() if k not in ("partial", "seq")})


def replay(payloads: Iterable[tuple[int, str]], after_seq: int) -> list[Event]:
    """A job's logged events with seq > after_seq, each ``ai_chunk`` with its ``partial``.

    ``payloads`` is the whole log in seq order: a chunk's partial is the concatenation of every
    chunk before it, including those the client already has.
    """
    events: list[Event] = []
    partial = ""
    for seq, payload in payloads:
        event = json.loads(payload)
        event["seq"] = seq  # older SQLite logs also have it in the payload: the same value
        if event["type"] == "ai_chunk":
            partial += event["chunk"]
            event["partial"] = partial
        if seq > after_seq:
            events.append(event)
    return events


async def prepare_schema(database_url: str, migrate: bool) -> None:
    """A store's first step in ``open()``: migrate the database to this doclane's schema, or,
    when the operator runs ``doclane db upgrade`` instead, check that it is there."""
    from doclane.jobs import migrations  # Alembic and SQLAlchemy load only when a store opens

    check = migrations.upgrade if migrate else migrations.require_head
    await run_blocking(check, database_url)


class JobStore(ABC):
    """The job store; see the module docstring.

    Idle workers wait in :meth:`wait_for_work`: a job queued or handed back through this store
    wakes them at once, and a backend that can hear other processes (PostgreSQL's
    LISTEN/NOTIFY, relayed by :meth:`watch`) wakes them for those too. No route ever wakes a
    worker directly, so an API process and a worker process need not be the same.
    """

    _work: anyio.Event | None = None  # set: a notice no waiter has taken yet
    _looks: list[float] | None = None  # when each idle worker of this process looks anyway

    def work_arrived(self, due_at: float | None = None) -> None:
        """A job may have become due (at ``due_at``, epoch seconds, if it is known and later
        than now): wake this process's idle workers (or the next to idle, so a notice that
        comes between a worker's empty claim and its wait is not lost). A job due only after
        an idle worker will look again anyway wakes nobody: that worker then waits for it."""
        if due_at is not None and self._looks and due_at >= min(self._looks):
            return
        if self._work is None:
            self._work = anyio.Event()
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - an idle wait
        """Return when :meth:`work_arrived` is called, or after ``timeout`` seconds."""
        if self._work is None:
            self._work = anyio.Event()
        if self._looks is None:
            self._looks = []
        work, looks, look = self._work, self._looks, time.time() + timeout
        looks.append(look)
        try:
            with anyio.move_on_after(timeout):
                await work.wait()
        finally:
            looks.remove(look)
        if work.is_set() and self._work is work:
            self._work = None  # taken: the next wait waits for the next notice

    async def watch(self) -> None:
        """Relay other processes' work notices to :meth:`work_arrived` until cancelled; a
        backend that has no way to hear them waits for the poll instead."""
        await anyio.sleep_forever()

    async def ping(self) -> None:
        """Raise unless the database answers now (the readiness probe): a key lookup."""
        await self.get("")

    @abstractmethod
    async def open(self) -> None:
        """Migrate the schema (see :func:`prepare_schema`) and get ready to serve."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def create(self, new: NewJob, quota: Quota | None = None) -> Job:
        """Queue a job. If a job already holds ``new.idempotency_key`` (stored before, or by a
        concurrent call), nothing is written and that job is returned: compare job ids.

        With a ``quota``, the owner's usage is counted and the job written in one transaction,
        atomically: creates racing each other never take the owner past a limit. One that would
        raises QuotaExceeded (unless the key's job exists: that one is returned)."""

    @abstractmethod
    async def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, if it exists and (unless ``owner`` is None) belongs to ``owner``."""

    @abstractmethod
    async def history(
        self,
        owner: str | None,
        status: JobStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> HistoryPage:
        """``owner``'s jobs (everyone's with None), newest first, ``limit`` at a time, only
        those with the public ``status`` if one is given. ``cursor`` is a previous page's
        ``next``; a bad one raises InvalidRequest (400).

        Newest means last inserted: the cursor names a place in insertion order, so a job
        inserted while a client pages is never seen twice, nor makes another one missed. A
        page reads O(log n + limit) index entries (see migration 0005)."""

    @abstractmethod
    async def find_by_idempotency_key(self, key: str, owner: str = "") -> Job | None:
        """The job an upload of ``owner`` with this ``Idempotency-Key`` created, if any."""

    @abstractmethod
    async def usage(self, owner: str, quota: Quota) -> Usage:
        """What ``owner`` has now against ``quota``: unfinished jobs, and jobs created in its
        window, each counted up to the quota's limit (index ranges of at most that many rows).

        A look only: :meth:`create` with the quota is what enforces it."""

    @abstractmethod
    async def delete(self, job_id: str, owner: str | None = None) -> Job | None:
        """Delete a finished job (row and events) that belongs to ``owner`` (any owner with
        None) and return it; None if there is no such finished job. Its files are the
        caller's to delete."""

    @abstractmethod
    async def delete_finished_before(self, ended_before: float, limit: int) -> list[str]:
        """Delete up to ``limit`` jobs that ended before ``ended_before`` (epoch seconds) with
        their events; return their ids. Safe to run in several processes at once: each job is
        deleted, and returned, by one of them."""

    @abstractmethod
    async def claim(
        self, worker_id: str, lease_seconds: float, max_attempts: int = NO_ATTEMPT_LIMIT
    ) -> Job | None:
        """Take the next due job: highest priority first, FIFO within a priority.

        A due job is a pending one whose ``run_at`` has passed, or a processing one whose lease
        expired (its worker died): that one runs again with its attempt count raised, unless it
        has had ``max_attempts`` runs already (it is left for :meth:`fail_exhausted`).
        """

    @abstractmethod
    async def fail_exhausted(self, max_attempts: int, error: str) -> list[Event]:
        """Fail jobs whose lease expired after their last allowed attempt; return the events."""

    @abstractmethod
    async def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> None:
        """Extend the lease; raises LeaseLost if the worker no longer owns the job."""

    @abstractmethod
    async def emit(self, job_id: str, worker_id: str, change: Change, event: Event) -> Event:
        """Apply a running job's change and log the event; return the event with its seq.

        A final status ends the lease; PENDING with ``retry_in`` queues the job for a retry.
        """

    async def emit_many(
        self, job_id: str, worker_id: str, writes: Sequence[tuple[Change, Event]]
    ) -> list[Event]:
        """:meth:`emit` of several changes in order, in one transaction where the backend can
        (one commit for them all). Returns the events logged: all of them, or those before the
        lease was found lost (nothing after that is written)."""
        logged = []
        for change, event in writes:
            try:
                logged.append(await self.emit(job_id, worker_id, change, event))
            except LeaseLost:
                break
        return logged

    @abstractmethod
    async def release(self, job_id: str, worker_id: str) -> None:
        """Give a running job back to the queue uncounted (the worker is shutting down)."""

    @abstractmethod
    async def cancel(self, job_id: str, owner: str | None = None) -> tuple[Job, Event | None]:
        """Cancel a pending or running job; the event is None if it was already cancelled.

        Raises JobNotFound (also for another owner's job, unless ``owner`` is None), or
        InvalidRequest (409) for a job that already ended otherwise.
        """

    @abstractmethod
    async def events_after(self, job_id: str, after_seq: int) -> list[Event]:
        """The job's events with seq > after_seq, in order (see :func:`replay`)."""

    @abstractmethod
    async def leases(self) -> list[tuple[str, str]]:
        """``(job_id, worker_id)`` of every job being processed."""

    @abstractmethod
    async def expire_lease(self, job_id: str, worker_id: str) -> None:
        """Make a job claimable now (its worker is known to be dead)."""

    @abstractmethod
    async def stats(self) -> QueueStats:
        """Jobs by status, and the due ones' count and longest wait (by the store's clock)."""

    @abstractmethod
    async def next_run_at(self) -> float | None:
        """When the earliest pending job becomes due, if any is pending: epoch seconds on this
        process's clock (a backend that keeps time by the database's clock converts), in the
        past when one is due already."""


def queue_stats(
    counts: Iterable[tuple[str, int]], due: int, oldest_due: float | None
) -> QueueStats:
    """QueueStats from a backend's counts per stored status (``scheduled`` counts as pending)."""
    jobs = dict.fromkeys(JobStatus, 0)
    for status, count in counts:
        jobs[JobStatus.PENDING if status == SCHEDULED else JobStatus(status)] += count
    return QueueStats(jobs, due, max(0.0, oldest_due or 0.0))
