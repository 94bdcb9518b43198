"""A user's job history, newest first, a page at a time (``GET /api/jobs``).

A page is read in insertion order (``seq_no``, descending) from one index range per stored
status, merged: ``(owner, status, seq_no)`` for a user's jobs, ``(status, seq_no)`` for every
job (auth off). A page costs O(log n + limit) index entries with or without a status filter,
however many jobs the user or the table holds. Neither index holds a column a running job's
writes change (progress, answer, seq).

On SQLite the status is indexed as ``lower(status)`` (the same value: statuses are lower case),
which only the history queries name: given a plain ``(status, seq_no)`` index, SQLite (which
keeps no statistics) took it for the claim's ``status = 'pending'`` over the claim's own
partial index, and sorted every pending job. PostgreSQL plans by statistics and keeps the
plain columns, which let a page be an index-only scan.

Revision ID: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The last statement of each raises the marker older doclanes read, so that one refuses this
# schema (see 0003).
STATEMENTS = {
    "sqlite": (
        "CREATE INDEX jobs_history ON jobs (lower(status), seq_no)",
        "CREATE INDEX jobs_owner_history ON jobs (owner, lower(status), seq_no)",
        "PRAGMA user_version = 5",
    ),
    "postgresql": (
        "CREATE INDEX jobs_history ON jobs (status, seq_no)",
        "CREATE INDEX jobs_owner_history ON jobs (owner, status, seq_no)",
        "UPDATE schema_version SET version = 4",
    ),
}


def upgrade() -> None:
    conn = op.get_bind()
    for statement in STATEMENTS[conn.dialect.name]:
        conn.exec_driver_sql(statement)
