"""Jobs: the model, the store interface, and the backend chosen by the database URL."""

from __future__ import annotations

from doclane.errors import DoclaneError
from doclane.jobs.base import Change, Event, JobStore, Quota, QuotaExceeded, Usage
from doclane.jobs.model import DocumentKind, Job, JobStatus, NewJob

__all__ = [
    "Change",
    "DocumentKind",
    "Event",
    "Job",
    "JobStatus",
    "JobStore",
    "NewJob",
    "Quota",
    "QuotaExceeded",
    "Usage",
    "open_store",
]


def open_store(database_url: str, migrate: bool = True) -> JobStore:
    """Pick the job store for a URL; the backend's driver is imported only when used.

    Its ``open()`` migrates the schema, or with ``migrate=False`` (``DOCLANE_MIGRATE_ON_START``)
    only checks it is current."""
    if database_url.startswith("sqlite:///"):
        from doclane.jobs.sqlite import SQLiteJobStore

        return SQLiteJobStore(database_url.removeprefix("sqlite:///"), migrate)
    if database_url.startswith(("postgresql://", "postgres://")):
        try:
            from doclane.jobs.postgres import PostgresJobStore
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise DoclaneError(
                "A postgresql:// database needs the PostgreSQL driver, which is not installed: "
                "pip install 'doclane[postgres]'"
            ) from exc
        return PostgresJobStore(database_url, migrate)
    raise DoclaneError(
        f"Unsupported database URL {database_url!r} "
        "(expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE)"
    )
