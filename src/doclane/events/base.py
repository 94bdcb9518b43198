"""The event bus: job events from workers to every WebSocket client.

An event is the JSON object a client receives (``{"type": "ai_chunk", "job_id": …, "seq": …}``).
Publishing never blocks: a subscriber that cannot keep up is marked overflowed and dropped, so a
slow client never stalls the workers or the other clients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from doclane.jobs.base import Event

__all__ = ["Event", "EventBus", "SubscriberOverflow"]


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it should reconnect."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, event: Event) -> None: ...

    @abstractmethod
    def subscribe(self, queue_size: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Receive every event published from now on, in order.

        The iterator raises :class:`SubscriberOverflow` once more than ``queue_size`` events
        wait unread.
        """
