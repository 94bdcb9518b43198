"""A job: one uploaded document, one prompt, one answer. The same row is the queue entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class DocumentKind(StrEnum):
    PDF = "pdf"
    CSV = "csv"
    IMAGE = "image"


@dataclass(frozen=True, slots=True)
class NewJob:
    job_id: str
    file_name: str
    upload_key: str  # where the upload is in storage (doclane.storage), never a path
    kind: DocumentKind
    prompt: str
    priority: int
    run_at: float  # epoch seconds; the job is not started before this
    idempotency_key: str | None = None  # a retried upload with the same key gets this job
    owner: str = ""  # the user who uploaded it; "" with auth off (see doclane/auth.py)


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    status: JobStatus
    progress: int
    file_name: str
    upload_key: str  # where the upload is in storage (doclane.storage), never a path
    kind: DocumentKind
    prompt: str
    priority: int
    run_at: float
    created_at: float
    completed_at: float | None
    answer: str
    error: str | None
    attempts: int
    seq: int  # last event sequence number published for this job
    owner: str = ""  # the user who uploaded it; "" with auth off (see doclane/auth.py)

    def public(self) -> dict[str, object]:
        """The seed contract's view of a job (``GET /api/jobs/{id}``), and nothing more."""
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "progress": self.progress,
            "file_name": self.file_name,
            "created_at": iso_utc(self.created_at),
            "completed_at": iso_utc(self.completed_at) if self.completed_at else None,
            "ai_response": self.answer,
        }


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
