"""Jobs: the model, the store interface, and the backend chosen by the database URL."""

from __future__ import annotations

from doclane.errors import DoclaneError
from doclane.jobs.base import Change, Event, JobStore
from doclane.jobs.model import DocumentKind, Job, JobStatus, NewJob

__all__ = [
    "Change",
    "DocumentKind",
    "Event",
    "Job",
    "JobStatus",
    "JobStore",
    "NewJob",
    "open_store",
]


def open_store(database_url: str) -> JobStore:
    """Pick the job store for a URL; the backend's driver is imported only when used."""
    if database_url.startswith("sqlite:///"):
        from doclane.jobs.sqlite import SQLiteJobStore

        return SQLiteJobStore(database_url.removeprefix("sqlite:///"))
    raise DoclaneError(f"Unsupported database URL {database_url!r} (expected sqlite:///PATH)")
