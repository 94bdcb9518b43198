"""The in-process event bus (embedded mode): the reference implementation of EventBus."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from doclane.events.base import Event, EventBus, SubscriberOverflow

_OVERFLOW: Event = {"type": "__overflow__"}


class MemoryEventBus(EventBus):
    def __init__(self) -> None:
        self._subscribers: dict[MemoryObjectSendStream[Event], int] = {}

    async def publish(self, event: Event) -> None:
        for stream, limit in list(self._subscribers.items()):
            if stream.statistics().current_buffer_used >= limit:
                # Too far behind: tell it once, then stop feeding it.
                del self._subscribers[stream]
                stream.send_nowait(_OVERFLOW)
                stream.close()
            else:
                stream.send_nowait(event)

    @asynccontextmanager
    async def subscribe(self, queue_size: int) -> AsyncIterator[AsyncIterator[Event]]:
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._subscribers[send] = queue_size

        async def events() -> AsyncIterator[Event]:
            async for event in receive:
                if event is _OVERFLOW:
                    raise SubscriberOverflow
                yield event

        try:
            yield events()
        finally:
            self._subscribers.pop(send, None)
            send.close()
            receive.close()
