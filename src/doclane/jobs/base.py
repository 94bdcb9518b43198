"""The job store interface: the jobs table is both the job record and the queue.

Every backend (SQLite now, PostgreSQL for scale-out) passes the same contract tests. Writes made
on behalf of a running job name the worker that holds its lease; a write from a worker that lost
the lease raises :class:`~doclane.errors.LeaseLost` instead of clobbering the new owner's work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from doclane.jobs.model import Job, JobStatus, NewJob


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
    async def fail_exhausted(self, max_attempts: int, error: str) -> list[Job]:
        """Fail jobs whose lease expired after their last allowed attempt; return them."""

    @abstractmethod
    async def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> None:
        """Extend the lease; raises LeaseLost if the worker no longer owns the job."""

    @abstractmethod
    async def record(self, job_id: str, worker_id: str, progress: int, answer: str) -> int:
        """Persist progress (never lowered) and the answer so far; return the event's seq."""

    @abstractmethod
    async def finish(
        self, job_id: str, worker_id: str, status: JobStatus, answer: str, error: str | None
    ) -> Job:
        """Move a running job to a final status; the returned job carries the final event's seq."""

    @abstractmethod
    async def leases(self) -> list[tuple[str, str]]:
        """``(job_id, worker_id)`` of every job being processed."""

    @abstractmethod
    async def expire_lease(self, job_id: str, worker_id: str) -> None:
        """Make a job claimable now (its worker is known to be dead)."""

    @abstractmethod
    async def next_run_at(self) -> float | None:
        """When the earliest pending job becomes due (epoch seconds), if any is pending."""
