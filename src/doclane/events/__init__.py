"""Job events: the bus interface and the backend chosen by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from doclane.errors import DoclaneError
from doclane.events.base import Event, EventBus, Published, SubscriberOverflow, event_text
from doclane.events.memory import MemoryEventBus
from doclane.jobs import JobStore

if TYPE_CHECKING:
    from doclane.settings import Settings

__all__ = [
    "Event",
    "EventBus",
    "MemoryEventBus",
    "Published",
    "SubscriberOverflow",
    "event_text",
    "open_bus",
]


def open_bus(settings: Settings, store: JobStore) -> EventBus:
    """Redis when a Redis URL is set; else NOTIFY when the jobs are on PostgreSQL; else this
    process only. A backend's driver is imported only when used."""
    if settings.redis_url:
        try:
            from doclane.events.redis import RedisEventBus
        except ImportError as exc:
            if not (exc.name or "").startswith("redis"):
                raise
            raise DoclaneError(
                "DOCLANE_REDIS_URL needs the Redis driver, which is not installed: "
                "pip install 'doclane[redis]'"
            ) from exc
        return RedisEventBus(
            settings.redis_url,
            settings.redis_stream,
            settings.redis_stream_max_events,
            settings.redis_stream_ttl_seconds,
        )
    url = settings.resolved_database_url
    if url.startswith(("postgresql://", "postgres://")):  # the store's, so its driver is there
        from doclane.events.postgres import PostgresEventBus

        return PostgresEventBus(url, store)
    return MemoryEventBus()
