"""The event bus: job events from workers to every WebSocket client, in every process.

An event is the JSON object a client receives (``{"type": "ai_chunk", "job_id": …, "seq": …}``).

The contract, which every backend passes (tests/test_bus.py):

- Every subscriber in every process sharing the backend receives every event published
  anywhere after its subscription started: each job's events in publish order, each once.
- Publishing never blocks on subscribers: one that cannot keep up (more than its
  ``queue_size`` events wait unread) is overflowed and dropped, so a slow client never stalls
  the workers or the other clients. A subscriber the bus could not keep whole (its backend lost
  events while a process was cut off from it) is overflowed too: it reconnects and resumes from
  the job log, rather than silently miss an event.
- Publishing is best-effort: it may raise while the backend is down (the journal logs it; the
  job log in the database is the truth). :meth:`EventBus.relay` survives outages.

A process calls :meth:`~EventBus.open`, runs :meth:`~EventBus.relay` in its task group, and
calls :meth:`~EventBus.close` at shutdown.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio

from doclane.jobs.base import Event

__all__ = ["Event", "EventBus", "Published", "SubscriberOverflow", "event_text"]


class Published(dict[str, Any]):
    """An event as a process's bus hands it to its subscribers: one object for all of them,
    which keeps its JSON once made, so that a thousand sockets following a job serialise each
    event once, not a thousand times. Nobody changes an event they received."""

    __slots__ = ("_text",)

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = _dumps(self)
        return self._text


def event_text(event: Event) -> str:
    """An event as a WebSocket text message (the JSON Starlette's ``send_json`` would send)."""
    return event.text if isinstance(event, Published) else _dumps(event)


def _dumps(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind (or the bus lost events for it); it should reconnect
    and resume from the job log."""


class EventBus(ABC):
    async def open(self) -> None:  # noqa: B027 - a bus in this process has nothing to open
        """Connect to the backend; events published from now on reach the relay."""

    async def close(self) -> None:  # noqa: B027 - nor to close
        """Release the backend's connections."""

    async def ping(self) -> None:  # noqa: B027 - a bus in this process is always there
        """Raise unless the backend can be reached now (the readiness probe)."""

    async def relay(self) -> None:
        """Deliver events published by other processes to this process's subscribers until
        cancelled, reconnecting after outages; never raises otherwise. A backend that lives in
        this process has nothing to relay."""
        await anyio.sleep_forever()

    def published_by_store(self) -> bool:
        """Whether the job store publishes each event on this bus itself, in the transaction
        that logs it (PostgreSQL's NOTIFY): then the journal has nothing left to publish."""
        return False

    @abstractmethod
    async def publish(self, event: Event) -> None: ...

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Publish events in order; a backend across the network sends them in one go."""
        for event in events:
            await self.publish(event)

    @abstractmethod
    def subscribe(self, queue_size: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Receive every event published from now on, in order.

        The iterator raises :class:`SubscriberOverflow` once more than ``queue_size`` events
        wait unread, or once the bus lost events it owed this subscriber.
        """
