"""The SQLite store's own concerns: data directories from older versions, and claim plans."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from doclane.errors import DoclaneError
from doclane.jobs import JobStatus, migrations, open_store
from doclane.jobs.sqlite import CLAIM, PROMOTE

pytestmark = pytest.mark.anyio

# The tables as doclane wrote them up to user_version 2, kept here as history (the test must
# build yesterday's database, not one made from today's migrations).
JOBS_TABLE = """CREATE TABLE IF NOT EXISTS jobs (
    seq_no INTEGER PRIMARY KEY AUTOINCREMENT,
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
"""
EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""

# The schema up to user_version 1.
V1_SCHEMA = f"""{JOBS_TABLE}
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, priority DESC, seq_no);
{EVENTS_TABLE}
PRAGMA user_version = 1;
"""

# The schema at user_version 2, the last before migrations.
V2_SCHEMA = f"""{JOBS_TABLE}
{EVENTS_TABLE}
CREATE INDEX jobs_pending ON jobs (priority DESC, seq_no) WHERE status = 'pending';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
PRAGMA user_version = 2;
"""

DONE_EVENT = {
    "type": "job_completed",
    "job_id": "done",
    "ai_response": "hi",
    "status": "completed",
    "progress": 100,
    "seq": 1,  # v1 logs kept the seq in the payload too
}


# file_path as doclane wrote it (<uploads dir>/<job_id>, absolute or relative to where it
# started), and one it did not write, with the key each becomes.
PATHS = {
    "due": "/srv/doclane/data/uploads/due",
    "later": "data/uploads/later",
    "running": "uploads/running",
    "done": "/nowhere",
}
KEYS = {"due": "due", "later": "later", "running": "running", "done": "/nowhere"}


def old_file(path: Path, now: float, version: int) -> None:
    """A data directory's database as doclane left it at schema v1 or v2."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA if version == 1 else V2_SCHEMA)
    scheduled = "pending" if version == 1 else "scheduled"  # v2 kept those not due apart
    rows = [  # job_id, status, run_at, worker_id, lease_expires_at, completed_at, seq
        ("due", "pending", now - 10, None, None, None, 0),
        ("later", scheduled, now + 3600, None, None, None, 0),
        ("running", "processing", now - 20, "w1", now + 60, None, 0),
        ("done", "completed", now - 30, None, None, now - 5, 1),
    ]
    for job_id, status, run_at, worker_id, lease, completed_at, seq in rows:
        conn.execute(
            """INSERT INTO jobs (job_id, status, file_name, file_path, kind, prompt, priority,
                   run_at, created_at, worker_id, lease_expires_at, completed_at, seq)
               VALUES (?, ?, 'a.pdf', ?, 'pdf', 'q', 0, ?, ?, ?, ?, ?, ?)""",
            (job_id, status, PATHS[job_id], run_at, now - 40, worker_id, lease, completed_at, seq),
        )
    conn.execute(
        "INSERT INTO events VALUES ('done', 1, ?)",
        (json.dumps(DONE_EVENT),),
    )
    conn.commit()
    conn.close()


def shape(path: Path) -> dict[str, object]:
    """What a file's schema is made of: each table's columns, each index's definition."""
    with sqlite3.connect(path) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        return {
            **{table: conn.execute(f"PRAGMA table_info({table})").fetchall() for table in tables},
            **{
                name: sql
                for name, sql in conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type='index'"
                )
            },
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
        }


def fresh_shape(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "fresh.db"
    migrations.upgrade(f"sqlite:///{path}")
    return shape(path)


@pytest.mark.parametrize("version", [1, 2])
async def test_a_file_from_before_migrations_is_upgraded_in_place(
    tmp_path: Path, version: int
) -> None:
    """Files an older doclane made (user_version 1 or 2, no alembic_version) keep their jobs
    and end with exactly the schema of a new file."""
    path = tmp_path / "doclane.db"
    now = time.time()
    old_file(path, now, version)
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        assert migrations.is_at_head(f"sqlite:///{path}")
        assert shape(path) == fresh_shape(tmp_path)
        for job_id, key in KEYS.items():
            job = await store.get(job_id)
            assert job is not None and job.upload_key == key
        later = await store.get("later")
        assert later is not None and later.status is JobStatus.PENDING
        due_at = await store.next_run_at()
        assert due_at is not None and due_at <= time.time()  # "due" is due
        job = await store.claim("w2", 60)
        assert job is not None and job.job_id == "due" and job.attempts == 1
        assert await store.claim("w2", 60) is None  # "later" is not due, "running" is leased
        assert await store.next_run_at() == pytest.approx(now + 3600)
        assert sorted(await store.leases()) == [("due", "w2"), ("running", "w1")]
        assert await store.events_after("done", 0) == [DONE_EVENT]
    finally:
        await store.close()


async def test_a_file_from_a_newer_doclane_is_refused(tmp_path: Path) -> None:
    older = tmp_path / "older.db"  # a newer doclane from before migrations
    with sqlite3.connect(older) as conn:
        conn.execute("PRAGMA user_version = 99")
    newer = tmp_path / "newer.db"
    migrations.upgrade(f"sqlite:///{newer}")
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    for path in (older, newer):
        store = open_store(f"sqlite:///{path}")
        with pytest.raises(DoclaneError, match="upgrade doclane"):
            await store.open()


async def test_claims_read_only_the_due_end_of_the_queue(tmp_path: Path) -> None:
    """The claim reads the due jobs' index in claim order (no sort of them, no table scan) and
    the expired leases by their index; promotion searches scheduled jobs by run_at. None of
    them reads the jobs scheduled for later."""
    path = tmp_path / "doclane.db"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    await store.close()
    params = {"worker_id": "w", "lease_until": 1.0, "now": 0.0, "max_attempts": 3}
    with sqlite3.connect(path) as conn:
        claim = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {CLAIM}", params)]
        promote = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {PROMOTE}", params)]
    assert "SCAN jobs USING INDEX jobs_pending" in claim
    assert "SEARCH jobs USING INDEX jobs_leases (lease_expires_at<?)" in claim
    assert "SCAN jobs" not in claim, claim  # a table scan
    assert promote == ["SEARCH jobs USING INDEX jobs_scheduled (run_at<?)"]
