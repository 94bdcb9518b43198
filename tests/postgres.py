"""Fresh PostgreSQL databases on a real server, one per test (or benchmark run), dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.env import in_ci, postgres_admin_url


class ServerMissing(Exception):
    """No PostgreSQL server (or no driver) to test against."""


def _admin() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ServerMissing("psycopg is not installed: pip install 'doclane[postgres]'") from exc
    url = postgres_admin_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServerMissing(f"PostgreSQL server missing at {url}: {exc}".strip()) from exc


@contextmanager
def fresh_database(prefix: str = "doclane_test") -> Iterator[str]:
    """The URL of a new, empty database; dropped (connections and all) when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(postgres_admin_url())._replace(path=f"/{name}"))
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_or_skip() -> Iterator[str]:
    """:func:`fresh_database` for a test: no server skips it, but fails it under CI=true."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database())
        except ServerMissing as exc:
            if in_ci():
                pytest.fail(f"{exc} (CI=true: the PostgreSQL tests must run)", pytrace=False)
            pytest.skip(str(exc))
        yield url
