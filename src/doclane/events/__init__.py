"""Job events: the bus interface and the backend chosen by settings."""

from doclane.events.base import Event, EventBus, SubscriberOverflow
from doclane.events.memory import MemoryEventBus

__all__ = ["Event", "EventBus", "MemoryEventBus", "SubscriberOverflow", "open_bus"]


def open_bus() -> EventBus:
    return MemoryEventBus()
