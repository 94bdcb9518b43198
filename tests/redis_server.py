"""The Redis server the distributed-mode tests use: missing, a test skips, or fails under CI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.env import in_ci, redis_url


@contextmanager
def redis_or_skip(*keys: str) -> Iterator[str]:
    """The test Redis server's URL once it answers a PING; ``keys`` are deleted at the end."""
    import redis

    url = redis_url()
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
            client.ping()
    except redis.RedisError as exc:
        if in_ci():
            pytest.fail(f"Redis missing at {url}: {exc} (CI=true: these tests must run)")
        pytest.skip(f"Redis missing at {url}: {exc}")
    try:
        yield url
    finally:
        if keys:
            with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
                client.delete(*keys)
