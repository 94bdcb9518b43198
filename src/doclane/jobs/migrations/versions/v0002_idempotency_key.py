"""An upload's ``Idempotency-Key``, kept with its job: a retried upload finds the first job.

The key is unique among all jobs for now (a partial index: jobs without a key cost nothing).
When jobs get an owner, a later revision makes the index ``(owner, idempotency_key)``, so that
each user's keys are their own; the store's lookup and insert name the same columns.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The same statements on SQLite and PostgreSQL.
STATEMENTS = (
    "ALTER TABLE jobs ADD COLUMN idempotency_key text",
    """CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
)


def upgrade() -> None:
    conn = op.get_bind()
    for statement in STATEMENTS:
        conn.exec_driver_sql(statement)
