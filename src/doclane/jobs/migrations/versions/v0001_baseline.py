"""Baseline: the schema doclane created itself before migrations, or adopt that schema.

A database an older doclane made has no ``alembic_version`` and so runs this revision too:
its statements are the ones that doclane ran (``IF NOT EXISTS`` throughout), so an existing
database is brought to this schema in place (SQLite v1 to v2) and stamped, never recreated.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.engine import Connection

from doclane.errors import DoclaneError

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite: step N takes a file from PRAGMA user_version N-1 to N (0: new, or from before
# versions were kept, with the same tables as v1).
SQLITE_STEPS: tuple[tuple[str, ...], ...] = (
    (  # v1: the jobs table (the queue) and the event log
        """CREATE TABLE IF NOT EXISTS jobs (
            seq_no INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: FIFO within a priority
            job_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,  -- the public statuses, and 'scheduled' (see base.py)
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
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, priority DESC, seq_no)",
        """CREATE TABLE IF NOT EXISTS events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payload TEXT NOT NULL,  -- the event as sent, without seq and ai_chunk's partial
            PRIMARY KEY (job_id, seq)
        ) WITHOUT ROWID""",
    ),
    (  # v2: jobs not due yet wait as 'scheduled', so a claim never walks past them
        "DROP INDEX IF EXISTS jobs_due",
        # Every pending job becomes scheduled; the next claim promotes those already due.
        "UPDATE jobs SET status = 'scheduled' WHERE status = 'pending'",
        # One index per state a claim looks at, holding only the rows in that state.
        "CREATE INDEX jobs_pending ON jobs (priority DESC, seq_no) WHERE status = 'pending'",
        "CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled'",
        "CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing'",
    ),
)

POSTGRESQL = """
CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq_no bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order: FIFO
    job_id text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN
        ('scheduled', 'pending', 'processing', 'completed', 'failed', 'cancelled')),
    progress integer NOT NULL DEFAULT 0,
    file_name text NOT NULL,
    file_path text NOT NULL,
    kind text NOT NULL,
    prompt text NOT NULL,
    priority integer NOT NULL,
    run_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    answer text NOT NULL DEFAULT '',
    error text,
    attempts integer NOT NULL DEFAULT 0,
    seq integer NOT NULL DEFAULT 0,
    worker_id text,
    lease_expires_at timestamptz
);
-- One index per state a claim looks at, holding only the rows in that state (see base.py):
-- due jobs in claim order; scheduled ones by due time; running ones by lease expiry.
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (priority DESC, seq_no)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE TABLE IF NOT EXISTS events (
    job_id text NOT NULL,
    seq integer NOT NULL,
    payload text NOT NULL,  -- the event as sent, without seq and ai_chunk's partial
    PRIMARY KEY (job_id, seq)
);
"""
POSTGRESQL_VERSION = 1  # what schema_version said


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite(conn)
    else:
        _postgresql(conn)


def _newer(found: str) -> DoclaneError:
    return DoclaneError(f"The job database has {found}, newer than this doclane: upgrade doclane")


def _sqlite(conn: Connection) -> None:
    version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
    if version > len(SQLITE_STEPS):
        raise _newer(f"job schema v{version}")
    for step in SQLITE_STEPS[version:]:
        for statement in step:
            conn.exec_driver_sql(statement)
    conn.exec_driver_sql(f"PRAGMA user_version = {len(SQLITE_STEPS)}")


def _postgresql(conn: Connection) -> None:
    conn.exec_driver_sql(POSTGRESQL)
    version = conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar_one()
    if version is None:
        conn.exec_driver_sql(f"INSERT INTO schema_version VALUES ({POSTGRESQL_VERSION})")
    elif version > POSTGRESQL_VERSION:
        raise _newer(f"job schema v{version}")
