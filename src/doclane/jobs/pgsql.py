"""The PostgreSQL job store's statements (the store is postgres.py: this is what it sends).

Each write that clients should see changes its job's row and appends its event in one
statement; the comments say why each statement is shaped as it is.
"""

from __future__ import annotations

from doclane.jobs.base import SCHEDULED

WORK_CHANNEL = "doclane_work"  # NOTIFY: a job was queued or handed back

COLUMNS = """job_id, status, progress, file_name, upload_key, kind, prompt, priority,
    extract(epoch FROM run_at)::float8 AS run_at,
    extract(epoch FROM created_at)::float8 AS created_at,
    extract(epoch FROM completed_at)::float8 AS completed_at,
    answer, error, attempts, seq, owner"""
# A job of the owner given, or of anyone when the owner is None.
OWNED = "job_id = %(job_id)s AND (%(owner)s::text IS NULL OR owner = %(owner)s)"
FINISHED = "status IN ('completed', 'failed', 'cancelled')"

EXPIRED = "status = 'processing' AND lease_expires_at < now()"

# A durable commit waits for the disk (~2 ms here, more than the rest of a claim). Claims and
# heartbeats may skip that wait: one lost in a server crash only hands the job back, and its
# worker then gets LeaseLost, as after an expiry; the job's next event (always durable) flushes
# the write-ahead log up to it anyway. Events never skip it: a lost chunk would make the log's
# replay differ from what clients were sent.
NO_FLUSH = "SET LOCAL synchronous_commit = off"

# A job that already holds the idempotency key wins: nothing is written (a concurrent insert
# of the same key waits for that one to commit, then does nothing) and the caller reads it.
NEW_JOB = f"""%(job_id)s,
    CASE WHEN to_timestamp(%(run_at)s) > now() THEN '{SCHEDULED}' ELSE 'pending' END,
    %(file_name)s, %(upload_key)s, %(kind)s, %(prompt)s, %(priority)s,
    to_timestamp(%(run_at)s), %(idempotency_key)s, %(owner)s"""
INSERT_JOB = """INSERT INTO jobs (job_id, status, file_name, upload_key, kind, prompt, priority,
    run_at, idempotency_key, owner)"""
ON_KEY = "ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
CREATE = f"{INSERT_JOB}\nVALUES ({NEW_JOB})\n{ON_KEY}\nRETURNING {COLUMNS}"

# A user's unfinished jobs and those made in the window (by the database's clock), each
# counted up to its limit: index ranges (jobs_owner_active, jobs_owner_created) of at most that
# many rows, however many the user has queued.
IN_WINDOW = "created_at > now() - make_interval(secs => %(window)s)"
ACTIVE = """(SELECT count(*) FROM (SELECT FROM jobs WHERE owner = %(owner)s
    AND status IN ('scheduled', 'pending', 'processing') LIMIT %(max_active)s) AS active)"""
RECENT = f"""(SELECT count(*) FROM (SELECT FROM jobs WHERE owner = %(owner)s AND {IN_WINDOW}
    LIMIT %(max_recent)s) AS recent)"""
USAGE = f"""
SELECT {ACTIVE} AS active, {RECENT} AS recent,
    extract(epoch FROM (SELECT min(created_at) FROM jobs WHERE owner = %(owner)s AND {IN_WINDOW})
        + make_interval(secs => %(window)s) - now())::float8 AS frees_in"""
# A user's creates under a quota take turns: doclane_create_job (migration 0006) holds the
# user's lock to its commit, so the next one's counts see the job it wrote. One statement, so
# one round trip in autocommit mode; it notifies the workers when it inserts.
CREATE_WITHIN_QUOTA = f"""SELECT {COLUMNS} FROM doclane_create_job(%(job_id)s, %(file_name)s,
    %(upload_key)s, %(kind)s, %(prompt)s, %(priority)s::integer, %(run_at)s, %(idempotency_key)s,
    %(owner)s, %(max_active)s::integer, %(max_recent)s::integer, %(window)s)"""


def notifying(create: str) -> str:
    """One statement, one round trip: the new job and the notice that wakes the listening
    workers (delivered as it commits, when the job is there to claim); a key's job found there
    first (or a quota reached) inserts nothing and notifies nobody."""
    return f"WITH job AS ({create.strip()})\nSELECT *, pg_notify('{WORK_CHANNEL}', '') FROM job"


CREATE_NOTIFY = notifying(CREATE)
BY_KEY = f"SELECT {COLUMNS} FROM jobs WHERE owner = %(owner)s AND idempotency_key = %(key)s"

DELETE = f"""
WITH job AS (DELETE FROM jobs WHERE {OWNED} AND {FINISHED} RETURNING {COLUMNS}),
logged AS (DELETE FROM events WHERE job_id IN (SELECT job_id FROM job))
SELECT * FROM job"""

# Rows another process is deleting are skipped, so sweeps running together share the work.
DELETE_FINISHED = f"""
WITH job AS (
    DELETE FROM jobs WHERE seq_no = ANY(ARRAY(
        SELECT seq_no FROM jobs WHERE {FINISHED} AND completed_at < to_timestamp(%(before)s)
        LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
    RETURNING job_id),
logged AS (DELETE FROM events WHERE job_id IN (SELECT job_id FROM job))
SELECT job_id FROM job"""

# Before the claim, in its transaction: the claim's statement must see the promoted rows. The
# inner SELECT names the rows and the outer UPDATE finds them by primary key: written as a join,
# the planner may scan the whole table when it overestimates how many jobs fell due (it does:
# run_at <= now() matches most finished jobs too). A burst larger than a batch takes a few.
PROMOTE_BATCH = 1000
PROMOTE = f"""
UPDATE jobs SET status = 'pending'
WHERE seq_no = ANY(ARRAY(
    SELECT seq_no FROM jobs WHERE status = '{SCHEDULED}' AND run_at <= now()
    ORDER BY run_at LIMIT {PROMOTE_BATCH} FOR UPDATE SKIP LOCKED))"""

# The first due job, or the first running job whose lease expired (its worker died): one probe
# of each state's index, so the claim reads O(log n) rows whatever waits for later. Rows other
# claims hold are skipped, never waited for. No run_at test on pending rows (they are due by
# construction): with it, a table without statistics yet (new, or just filled) was planned as
# "read every due job, then sort them" instead of "the first row of jobs_pending".
CLAIM = f"""
WITH due AS (
    SELECT seq_no, priority FROM jobs WHERE status = 'pending'
    ORDER BY priority DESC, seq_no LIMIT 1 FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT seq_no, priority FROM jobs WHERE {EXPIRED} AND attempts < %(max_attempts)s
    ORDER BY priority DESC, seq_no LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET status = 'processing', worker_id = %(worker_id)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s), attempts = attempts + 1
WHERE seq_no = (
    SELECT seq_no FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS candidates
    ORDER BY priority DESC, seq_no LIMIT 1)
RETURNING {COLUMNS}"""

EXHAUSTED = f"{EXPIRED} AND attempts >= %(max_attempts)s"

FAIL_EXHAUSTED = f"""
UPDATE jobs SET status = 'failed', error = %(error)s, completed_at = now(), seq = seq + 1,
    worker_id = NULL, lease_expires_at = NULL
WHERE seq_no = ANY(ARRAY(SELECT seq_no FROM jobs WHERE {EXHAUSTED} FOR UPDATE SKIP LOCKED))
RETURNING job_id, seq"""

HEARTBEAT = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
WHERE job_id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'"""

EMIT_STEPS = f"""
WITH job AS (
    UPDATE jobs SET
        progress = GREATEST(progress, COALESCE(%(progress)s, progress)),
        answer = COALESCE(%(answer)s, answer),
        -- a retry that is not due yet waits as scheduled (see base.py)
        status = CASE WHEN %(status)s = 'pending' AND %(retry_in)s::float8 > 0
                      THEN '{SCHEDULED}' ELSE COALESCE(%(status)s, status) END,
        error = COALESCE(%(error)s, error),
        run_at = COALESCE(now() + make_interval(secs => %(retry_in)s::float8), run_at),
        completed_at = CASE WHEN %(final)s THEN now() ELSE completed_at END,
        worker_id = CASE WHEN %(ends_lease)s THEN NULL ELSE worker_id END,
        lease_expires_at = CASE WHEN %(ends_lease)s THEN NULL ELSE lease_expires_at END,
        seq = seq + 1
    WHERE job_id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'
    RETURNING job_id, seq)"""
LOG = "INSERT INTO events (job_id, seq, payload) SELECT job_id, seq, %(payload)s FROM job"
EMIT = f"{EMIT_STEPS}\n{LOG}\nRETURNING seq"
# The event's notice, sent by the statement that logs it (see notify_events): the payload's
# head is made by the bus, the seq is the log's.
NOTICE = "pg_notify(%(channel)s, %(head)s::text || seq || '}')"
EMIT_NOTIFY = f"{EMIT_STEPS},\nlogged AS ({LOG} RETURNING seq)\nSELECT seq, {NOTICE} FROM logged"

RELEASE = """
UPDATE jobs SET status = 'pending', attempts = attempts - 1, worker_id = NULL,
    lease_expires_at = NULL
WHERE job_id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'"""

CANCEL_STEPS = f"""
WITH job AS (
    UPDATE jobs SET status = 'cancelled', error = %(error)s, completed_at = now(),
        seq = seq + 1, worker_id = NULL, lease_expires_at = NULL
    WHERE {OWNED} AND status IN ('{SCHEDULED}', 'pending', 'processing')
    RETURNING {COLUMNS}),
logged AS (INSERT INTO events (job_id, seq, payload) SELECT job_id, seq, %(payload)s FROM job)"""
CANCEL = f"{CANCEL_STEPS}\nSELECT * FROM job"
CANCEL_NOTIFY = f"{CANCEL_STEPS}\nSELECT *, {NOTICE} FROM job"

# Seconds from the database's now until the earliest scheduled job or the next due one (in
# claim order: an index probe) is due.
# Due jobs: every pending row, and the scheduled rows whose time has come (not promoted yet).
DUE = f"""
SELECT count(*) AS due, extract(epoch FROM now() - min(run_at))::float8 AS oldest FROM jobs
WHERE status = 'pending' OR (status = '{SCHEDULED}' AND run_at <= now())"""

NEXT_RUN = f"""
SELECT extract(epoch FROM least(
    (SELECT min(run_at) FROM jobs WHERE status = '{SCHEDULED}'),
    (SELECT run_at FROM jobs WHERE status = 'pending' ORDER BY priority DESC, seq_no LIMIT 1)
) - now())::float8 AS wait"""


def history_query(statuses: tuple[str, ...], owned: bool) -> str:
    """A page of history: the newest rows of each stored status's index range before the
    cursor, merged (see migration 0005); the rows are then read by primary key, for the page
    only (as PROMOTE does, so no estimate makes the planner scan the table)."""
    owner = "owner = %(owner)s AND " if owned else ""
    ranges = " UNION ALL ".join(
        f"""(SELECT seq_no FROM jobs
            WHERE {owner}status = '{status}' AND seq_no < %(before)s
            ORDER BY seq_no DESC LIMIT %(limit)s)"""
        for status in statuses
    )
    return f"""SELECT seq_no, {COLUMNS} FROM jobs WHERE seq_no = ANY(ARRAY(
            SELECT seq_no FROM ({ranges}) AS ranges ORDER BY seq_no DESC LIMIT %(limit)s))
        ORDER BY seq_no DESC"""
