"""What the tests read from the environment, read here only (src/ reads it in settings.py)."""

from __future__ import annotations

import os

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def in_ci() -> bool:
    """CI sets CI=true: there a missing server fails a test instead of skipping it."""
    return os.environ.get("CI", "").lower() == "true"


def postgres_admin_url() -> str:
    """A PostgreSQL database the tests may connect to and CREATE DATABASE from."""
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def redis_url() -> str:
    """A Redis server the tests may write to (each test uses keys of its own)."""
    return os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
