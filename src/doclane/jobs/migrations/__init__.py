"""The job schema as Alembic migrations, the same ones on SQLite and on PostgreSQL.

The stores talk to their databases through their own drivers (sqlite3, psycopg); SQLAlchemy is
only Alembic's connection here, and each revision writes its DDL per dialect. The scripts are
found through this package's path, so an installed wheel migrates without an alembic.ini.

A store's ``open()`` calls :func:`upgrade`, or with ``DOCLANE_MIGRATE_ON_START=false`` only
:func:`require_head`; ``doclane db upgrade`` calls :func:`upgrade`. An upgrade is one
transaction that holds the database's write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock), so processes starting together migrate once and the others find it done.

A database made before Alembic (no ``alembic_version``: SQLite ``PRAGMA user_version`` 0-2,
PostgreSQL's ``schema_version`` table) is adopted by the baseline revision, never recreated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from doclane.errors import DoclaneError

__all__ = ["head", "is_at_head", "require_head", "upgrade"]

SCRIPTS = Path(__file__).parent
# The lock doclane's PostgreSQL store took to create its schema before Alembic: a process of
# an older doclane starting beside a newer one still waits for the upgrade.
PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('doclane.jobs'))"
SQLITE_BUSY_SECONDS = 30.0  # another process migrating the same file holds its write lock


def upgrade(database_url: str) -> None:
    """Bring the job database to the newest schema (creating it if empty). Blocking."""
    with _connection(database_url) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(PG_LOCK)
        _refuse_newer(conn)
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = conn  # env.py migrates in this transaction
        command.upgrade(config, "head")


def head() -> str:
    """The newest revision this doclane knows."""
    revision = _scripts().get_current_head()
    assert revision is not None  # one linear history
    return revision


def is_at_head(database_url: str) -> bool:
    """Whether the database has exactly the schema this doclane expects. Blocking."""
    with _connection(database_url) as conn:
        return _current(conn) == (head(),)


def require_head(database_url: str) -> None:
    """Raise a DoclaneError unless the database is at :func:`head`. Blocking."""
    with _connection(database_url) as conn:
        _refuse_newer(conn)
        current = _current(conn)
    if current != (head(),):
        at = current[0] if current else "none (empty, or made before migrations)"
        raise DoclaneError(
            f"The job database's schema is not up to date (revision {at}, this doclane needs "
            f"{head()}) and DOCLANE_MIGRATE_ON_START is false: run `doclane db upgrade`"
        )


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPTS))


def _current(conn: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(conn).get_current_heads()


def _refuse_newer(conn: Connection) -> None:
    known = {script.revision for script in _scripts().walk_revisions()}
    for revision in _current(conn):
        if revision not in known:
            raise DoclaneError(
                f"The job database has schema revision {revision}, newer than this doclane "
                f"(at {head()}): upgrade doclane"
            )


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy URL of a doclane database URL (same path, psycopg 3 for PostgreSQL)."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url.removeprefix(scheme)
    if database_url.startswith("sqlite:///"):
        return database_url
    raise DoclaneError(f"Unsupported database URL {database_url!r}")


@contextmanager
def _connection(database_url: str) -> Iterator[Connection]:
    """A connection inside one transaction that holds the write lock; committed on success."""
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(
            url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_SECONDS}
        )
        # pysqlite's own transaction handling defers BEGIN and skips it around DDL: say it here.
        event.listen(engine, "connect", _sqlite_autocommit)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    else:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        try:
            conn = engine.connect()
        except OperationalError as exc:  # the operator's: say so once, plainly
            raise DoclaneError(f"Cannot open the job database: {exc.orig}".strip()) from exc
        with conn, conn.begin():
            yield conn
    finally:
        engine.dispose()


def _sqlite_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
