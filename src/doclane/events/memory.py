"""The in-process event bus (embedded mode): the reference implementation of EventBus, and the
fan-out the other backends' relays deliver through."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from doclane.events.base import Event, EventBus, Published, SubscriberOverflow

T = TypeVar("T")

_OVERFLOW: Event = {"type": "__overflow__"}


class Channel(Generic[T]):
    """A queue with one reader in this event loop: what a subscriber (or a socket's outbox)
    waits on. Leaner than an anyio memory stream, whose every wait builds the task's info: with
    a thousand sockets following one answer, that bookkeeping was a tenth of a replica's CPU
    (benchmarks/fanout.py). Unbounded: the writer checks ``len()`` against its own limit."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class MemoryEventBus(EventBus):
    def __init__(self) -> None:
        self._subscribers: dict[Channel[Event], int] = {}

    async def publish(self, event: Event) -> None:
        event = Published(event)  # one object, serialised once, for every subscriber
        for channel, limit in list(self._subscribers.items()):
            if len(channel) >= limit:
                self._overflow(channel)  # too far behind
            else:
                channel.put(event)

    def overflow_all(self) -> None:
        """Overflow every subscriber: a relay lost events they were owed (see base.py)."""
        for channel in list(self._subscribers):
            self._overflow(channel)

    def _overflow(self, channel: Channel[Event]) -> None:
        # Tell it once, after what it has already, then stop feeding it.
        del self._subscribers[channel]
        channel.put(_OVERFLOW)

    @asynccontextmanager
    async def subscribe(self, queue_size: int) -> AsyncIterator[AsyncIterator[Event]]:
        channel: Channel[Event] = Channel()
        self._subscribers[channel] = queue_size

        async def events() -> AsyncIterator[Event]:
            while True:
                event = await channel.get()
                if event is _OVERFLOW:
                    raise SubscriberOverflow
                yield event

        try:
            yield events()
        finally:
            self._subscribers.pop(channel, None)
