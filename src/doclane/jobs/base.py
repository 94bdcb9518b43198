"""The job store interface: the jobs table is the job record, the queue and the event log.

Every backend (SQLite now, PostgreSQL for scale-out) passes the same contract tests. A write made
for a running job names the worker holding its lease; a write from a worker that lost the lease
(it expired, or the job was cancelled) raises :class:`~doclane.errors.LeaseLost` instead of
clobbering the new state. Each write that clients should see also appends one event to the job's
log in the same transaction, so the log and the row never disagree and a client can replay what
it missed.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from doclane.jobs.model import Job, JobStatus, NewJob

Event = dict[str, Any]

CANCELLED_ERROR = "Job cancelled"


@dataclass(frozen=True, slots=True)
class Change:
    """What a worker's write does to its job, besides raising the seq."""

    progress: int | None = None  # only ever raised
    answer: str | None = None
    status: JobStatus | None = None
    error: str | None = None
    run_at: float | None = None  # with status PENDING: when the job may run again


def stored_payload(event: Event) -> str:
    """An event as kept in the log: ``partial`` is left out (the chunks rebuild it)."""
    return json.dumps({k: v for k, v in event.items() if k != "partial"})


def replay(payloads: Iterable[tuple[int, str]], after_seq: int) -> list[Event]:
    """A job's logged events with seq > after_seq, each ``ai_chunk`` with its ``partial``.

    ``payloads`` is the whole log in seq order: a chunk's partial is the concatenation of every
    chunk before it, including those the client already has.
    """
    events: list[Event] = []
    partial = ""
    for seq, payload in payloads:
        event = json.loads(payload)
        if event["type"] == "ai_chunk":
            partial += event["chunk"]
            event["partial"] = partial
        if seq > after_seq:
            events.append(event)
    return events


class JobStore(ABC):
    @abstractmethod
    async def open(self) -> None:
        """Create the schema if needed and get ready to serve."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def create(self, new: NewJob) -> Job: ...

    @abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Take the next due job: highest priority first, FIFO within a priority.

        A due job is a pending one whose ``run_at`` has passed, or a processing one whose lease
        expired (its worker died): that one runs again with its attempt count raised.
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

        A final status ends the lease; PENDING with ``run_at`` queues the job for a retry.
        """

    @abstractmethod
    async def release(self, job_id: str, worker_id: str) -> None:
        """Give a running job back to the queue uncounted (the worker is shutting down)."""

    @abstractmethod
    async def cancel(self, job_id: str) -> tuple[Job, Event | None]:
        """Cancel a pending or running job; the event is None if it was already cancelled.

        Raises JobNotFound, or InvalidRequest (409) for a job that already ended otherwise.
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
    async def next_run_at(self) -> float | None:
        """When the earliest pending job becomes due (epoch seconds), if any is pending."""
