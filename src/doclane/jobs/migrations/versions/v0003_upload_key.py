"""Jobs name their upload by storage key (see doclane/storage.py), never by a file path.

``file_path`` becomes ``upload_key``. A path doclane wrote before is ``<uploads dir>/<job_id>``
(absolute, or relative to where that process started): it becomes the key ``<job_id>``, the
same file below the storage root, whose default is that uploads directory. So old jobs keep
their files as long as the storage root is the directory they are in (move the files with it
when changing DOCLANE_STORAGE_URL). A value that does not end in its job's id was not written
by doclane's intake: it is kept as it is, and such a job fails with "not in storage" if run.

The markers older doclanes read (SQLite ``user_version``, PostgreSQL ``schema_version``) are
raised, so an older doclane started on this database refuses it rather than misreading it.

Revision ID: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = {
    "sqlite": (
        "ALTER TABLE jobs RENAME COLUMN file_path TO upload_key",
        """UPDATE jobs SET upload_key = job_id
           WHERE upload_key = job_id OR substr(upload_key, -length(job_id) - 1) = '/' || job_id""",
        "PRAGMA user_version = 3",
    ),
    "postgresql": (
        "ALTER TABLE jobs RENAME COLUMN file_path TO upload_key",
        """UPDATE jobs SET upload_key = job_id
           WHERE upload_key = job_id OR right(upload_key, length(job_id) + 1) = '/' || job_id""",
        "UPDATE schema_version SET version = 2",
    ),
}


def upgrade() -> None:
    conn = op.get_bind()
    for statement in STATEMENTS[conn.dialect.name]:
        conn.exec_driver_sql(statement)
