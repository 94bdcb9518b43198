"""``WS /ws``: every connected client receives its user's job events, and may resume a job's
stream.

With keys (doclane/auth.py) a socket shows one on its handshake (``Authorization: Bearer``, or
``?token=``) or in its first message, ``{"type": "auth", "token": "…"}``, within 5 s; without
one it is closed with 1008 before any job event. It then receives only its user's jobs' events
(each job's owner is looked up once per process), and a ``subscribe`` to another user's job is
answered as for a job that does not exist. Without keys, every socket gets every job's events.
Sockets are limited per process and per user (doclane/limits.py).

A client that sends nothing gets the seed behaviour: live events of all its jobs. A client may
also send ``{"type": "subscribe", "job_id": "…", "after_seq": n}`` and receives that job's
logged events with ``seq > n`` (what it missed), followed by the live ones, with no gap and no
duplicate; in order too, unless live events of that job reached the client before its
subscribe did. ``{"type": "ping"}`` is answered with ``{"type": "pong"}``. Anything else gets
an ``{"type": "error", "error": "…"}`` reply, which an unaware client ignores.

Each connection runs three tasks: a receiver (client messages), a forwarder (bus events) and a
sender. Both sources feed one bounded outbox, so a replay is sent in order with the live events
around it; the sender never sends a job's seq twice (it remembers what it sent in little
memory: see :class:`Sent`). A client that falls further behind than the outbox holds is closed
(it may reconnect), so no client ever stalls the workers or the other clients.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from doclane.auth import Access, AccessDep, User
from doclane.errors import Unauthorized
from doclane.events import Event, SubscriberOverflow, event_text
from doclane.events.memory import Channel
from doclane.limits import SocketLimit, SocketSlotsDep
from doclane.services import Services, ServicesDep

router = APIRouter()

CLOSE_POLICY_VIOLATION = 1008  # no key, a wrong key, too many connections of a user
CLOSE_TRY_AGAIN_LATER = 1013  # too slow, or this process has too many connections
FINAL_TYPES = frozenset({"job_completed", "job_failed"})  # nothing of the job follows them


@dataclass(frozen=True, slots=True)
class Replay:
    job_id: str
    after_seq: int


Outgoing = Event | Replay


class Overflow(Exception):
    """The client fell too far behind."""


def _put(outbox: Channel[Outgoing], size: int, item: Outgoing) -> None:
    if len(outbox) >= size:
        raise Overflow
    outbox.put(item)


def parse_request(text: str | None) -> Outgoing | None:
    """A client message: a Replay request, the event to answer with, or None (nothing)."""
    try:
        message: Any = json.loads(text or "")
    except ValueError:
        return {"type": "error", "error": "Messages must be JSON objects"}
    if not isinstance(message, dict):
        return {"type": "error", "error": "Messages must be JSON objects"}
    if message.get("type") == "ping":
        return {"type": "pong"}
    if message.get("type") == "auth":  # the socket is authenticated already
        return None
    if message.get("type") == "subscribe":
        job_id, after_seq = message.get("job_id"), message.get("after_seq", 0)
        if isinstance(job_id, str) and type(after_seq) is int:
            return Replay(job_id, after_seq)
        return {
            "type": "error",
            "error": "subscribe needs a string job_id and an integer after_seq",
        }
    return {"type": "error", "error": "Unknown message type; expected subscribe or ping"}


@router.websocket("/ws")
async def events(
    websocket: WebSocket, services: ServicesDep, access: AccessDep, slots: SocketSlotsDep
) -> None:
    await websocket.accept()
    try:
        with slots.connection():
            # Subscribed before the client authenticates: what is published meanwhile waits.
            async with services.bus.subscribe(services.settings.ws_send_queue_size) as live:
                user = access.handshake_user(websocket)
                if user is None:
                    user = await access.first_message_user(websocket)
                with slots.of_user(user):
                    await _serve(websocket, services, access, user, live)
    except* Unauthorized as refused:
        await _close(websocket, CLOSE_POLICY_VIOLATION, _first(refused).message)
    except* SocketLimit as limited:
        await _close(websocket, _first(limited).code, _first(limited).reason)
    except* (Overflow, SubscriberOverflow):
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "Too slow: reconnect")
    except* (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away mid-send


async def _serve(
    websocket: WebSocket,
    services: Services,
    access: Access,
    user: User,
    live: AsyncIterator[Event],
) -> None:
    """Run the receiver, the forwarder and the sender until the client goes away."""
    size = services.settings.ws_send_queue_size
    outbox: Channel[Outgoing] = Channel()
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if (request := parse_request(message.get("text"))) is not None:
                    _put(outbox, size, request)
            tg.cancel_scope.cancel()

        async def forward() -> None:
            async for event in live:
                if await _owned_by(event, user, access):
                    _put(outbox, size, event)

        tg.start_soon(receive)
        tg.start_soon(forward)
        await _send(websocket, services, user, outbox)
        tg.cancel_scope.cancel()


E = TypeVar("E", bound=Exception)


def _first(group: BaseExceptionGroup[E]) -> E:
    """The first exception of an ``except*`` group (one is enough to answer the client)."""
    first = group.exceptions[0]
    return first if not isinstance(first, BaseExceptionGroup) else _first(first)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with suppress(RuntimeError, OSError):  # the client may be gone already
        await websocket.close(code, reason)


async def _owned_by(event: Event, user: User, access: Access) -> bool:
    """Whether the user may see the event: every event with auth off, else its own jobs'."""
    if not user.scoped:
        return True
    job_id = event.get("job_id")
    return isinstance(job_id, str) and await access.owners.of(job_id) == user.name


class Sent:
    """The seqs of each job this connection sent, so that a replay never repeats one and never
    skips one, even when live events of the job reached the client before its subscribe did.

    Kept small: per job, the runs of consecutive seqs sent (one run, unless a replay is still
    filling a gap under live events). A job whose final event was sent is kept only among the
    last ``KEEP_FINISHED`` such jobs; a replay of one forgotten since sends what it asks for.
    """

    KEEP_FINISHED = 64

    def __init__(self) -> None:
        self._runs: dict[str, list[list[int]]] = {}  # job_id -> sorted, disjoint [first, last]
        self._finished: OrderedDict[str, None] = OrderedDict()

    def add(self, job_id: str, seq: int, final: bool) -> bool:
        """Record that ``seq`` is being sent; False if it was sent already."""
        runs = self._runs.setdefault(job_id, [])
        at = bisect.bisect_right(runs, seq, key=lambda run: run[0])  # runs[at - 1][0] <= seq
        before = runs[at - 1] if at else None
        if before is not None and seq <= before[1]:
            return False
        if before is not None and before[1] == seq - 1:
            before[1] = seq
        else:
            before = [seq, seq]
            runs.insert(at, before)
            at += 1
        if at < len(runs) and runs[at][0] == seq + 1:  # the gap is filled: merge the runs
            before[1] = runs.pop(at)[1]
        if final:
            self._finished[job_id] = None
            if len(self._finished) > self.KEEP_FINISHED:
                forgotten, _ = self._finished.popitem(last=False)
                del self._runs[forgotten]
        return True


async def _send(
    websocket: WebSocket,
    services: Services,
    user: User,
    outbox: Channel[Outgoing],
) -> None:
    sent = Sent()

    async def deliver(event: Event) -> None:
        job_id, seq = event.get("job_id"), event.get("seq")
        if isinstance(job_id, str) and isinstance(seq, int):
            final = event.get("type") in FINAL_TYPES
            if not sent.add(job_id, seq, final):
                return
        await websocket.send_text(event_text(event))  # a live event's JSON is made once

    while True:
        item = await outbox.get()
        if isinstance(item, Replay):
            if await services.store.get(item.job_id, user.scope) is None:
                await deliver({"type": "error", "job_id": item.job_id, "error": "Job not found"})
                continue
            for event in await services.store.events_after(item.job_id, item.after_seq):
                await deliver(event)
        else:
            await deliver(item)
