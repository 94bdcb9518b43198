"""Jobs have an owner: the user whose API key uploaded them (see doclane/auth.py).

``owner`` is ``''`` for jobs made with auth off, and for every job made before this revision:
with auth off, the one implicit user sees every job anyway; with keys, such jobs belong to no
user. The ``Idempotency-Key`` index becomes ``(owner, idempotency_key)``, as revision 0002
said it would: each user's keys are their own, and one user's key never finds another's job.

Three more indexes, each of the rows one question reads: a user's unfinished jobs (the limit
on queued and running jobs), a user's jobs by creation time (uploads per minute), and finished
jobs by the time they ended (retention).

Revision ID: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COMMON = (
    "ALTER TABLE jobs ADD COLUMN owner text NOT NULL DEFAULT ''",
    "DROP INDEX jobs_idempotency_key",
    """CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    """CREATE INDEX jobs_owner_active ON jobs (owner)
        WHERE status IN ('scheduled', 'pending', 'processing')""",
    "CREATE INDEX jobs_owner_created ON jobs (owner, created_at)",
    """CREATE INDEX jobs_finished ON jobs (completed_at)
        WHERE status IN ('completed', 'failed', 'cancelled')""",
)
# The markers older doclanes read, raised so that one refuses this schema (see 0003).
MARKERS = {
    "sqlite": "PRAGMA user_version = 4",
    "postgresql": "UPDATE schema_version SET version = 3",
}


def upgrade() -> None:
    conn = op.get_bind()
    for statement in (*COMMON, MARKERS[conn.dialect.name]):
        conn.exec_driver_sql(statement)
