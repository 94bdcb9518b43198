"""The in-process event bus: fan-out in order, and a slow subscriber never blocks publishing."""

from __future__ import annotations

import json

import anyio
import pytest

from doclane.events import MemoryEventBus, SubscriberOverflow, event_text

pytestmark = pytest.mark.anyio


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = MemoryEventBus()
    async with bus.subscribe(100) as first, bus.subscribe(100) as second:
        for n in range(5):
            await bus.publish({"n": n})
        with anyio.fail_after(2):
            got_first = [(await anext(first))["n"] for _ in range(5)]
            got_second = [(await anext(second))["n"] for _ in range(5)]
    assert got_first == got_second == [0, 1, 2, 3, 4]


async def test_slow_subscriber_is_dropped_not_waited_for() -> None:
    bus = MemoryEventBus()
    async with bus.subscribe(3) as slow, bus.subscribe(100) as fast:
        with anyio.fail_after(2):  # publishing never waits for the slow reader
            for n in range(10):
                await bus.publish({"n": n})
            assert [(await anext(fast))["n"] for _ in range(10)] == list(range(10))
            assert [(await anext(slow))["n"] for _ in range(3)] == [0, 1, 2]
            with pytest.raises(SubscriberOverflow):
                await anext(slow)


async def test_an_event_is_serialised_once_for_every_subscriber() -> None:
    """Each subscriber gets the same object, whose JSON is made once and is what Starlette's
    send_json would send."""
    bus = MemoryEventBus()
    event = {"type": "ai_chunk", "job_id": "j", "chunk": "é", "partial": "é", "seq": 1}
    async with bus.subscribe(10) as first, bus.subscribe(10) as second:
        await bus.publish(event)
        with anyio.fail_after(2):
            one, other = await anext(first), await anext(second)
    assert one is other and one == event
    assert event_text(one) is event_text(other)  # made once
    assert event_text(one) == json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    assert event_text(event) == event_text(one)  # a plain event (a replay) reads the same
