"""PostgreSQL: a user's job is queued within their limits by one function call.

``doclane_create_job`` takes the user's lock, inserts the job if the user is under both limits
(and the idempotency key is new), and notifies the workers: one statement, so an upload costs
one round trip in autocommit mode instead of a pipelined transaction of four (BEGIN, the lock,
the insert, COMMIT), which was a quarter of an API replica's event loop under a burst of
uploads. Each statement of a PL/pgSQL function takes its own snapshot (READ COMMITTED), so the
counts, taken after the lock, see the job the user's previous upload committed.

The insert is a copy of doclane/jobs/pgsql.py's (``INSERT_JOB``, ``NEW_JOB``, ``ACTIVE``,
``RECENT``, ``ON_KEY``) as they stand at this revision: a later change to the jobs table that
the insert must follow replaces the function in its own revision. SQLite has nothing to do.

Revision ID: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CREATE_JOB = """
CREATE FUNCTION doclane_create_job(
    new_job_id text, new_file_name text, new_upload_key text, new_kind text, new_prompt text,
    new_priority integer, new_run_at float8, new_idempotency_key text, new_owner text,
    max_active integer, max_recent integer, window_seconds float8
) RETURNS SETOF jobs LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('doclane.quota'), hashtext(new_owner));
    RETURN QUERY
    INSERT INTO jobs (job_id, status, file_name, upload_key, kind, prompt, priority, run_at,
        idempotency_key, owner)
    SELECT new_job_id,
        CASE WHEN to_timestamp(new_run_at) > now() THEN 'scheduled' ELSE 'pending' END,
        new_file_name, new_upload_key, new_kind, new_prompt, new_priority,
        to_timestamp(new_run_at), new_idempotency_key, new_owner
    WHERE (SELECT count(*) FROM (SELECT FROM jobs WHERE owner = new_owner
            AND status IN ('scheduled', 'pending', 'processing') LIMIT max_active) AS active)
            < max_active
        AND (SELECT count(*) FROM (SELECT FROM jobs WHERE owner = new_owner
            AND created_at > now() - make_interval(secs => window_seconds)
            LIMIT max_recent) AS recent) < max_recent
    ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *;
    IF FOUND THEN
        PERFORM pg_notify('doclane_work', '');
    END IF;
END
$$"""

# The markers older doclanes read, raised so that one refuses this schema (see 0003).
STATEMENTS = {
    "sqlite": ("PRAGMA user_version = 6",),
    "postgresql": (CREATE_JOB, "UPDATE schema_version SET version = 5"),
}


def upgrade() -> None:
    conn = op.get_bind()
    for statement in STATEMENTS[conn.dialect.name]:
        conn.exec_driver_sql(statement)
