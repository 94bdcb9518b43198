"""``WS /ws``: every connected client receives every job event, and may resume a job's stream.

A client that sends nothing gets the seed behaviour: live events of every job. A client may
also send ``{"type": "subscribe", "job_id": "…", "after_seq": n}`` and receives that job's
logged events with ``seq > n`` (what it missed), followed by the live ones, with no gap and no
duplicate; in order too, unless live events of that job reached the client before its
subscribe did. ``{"type": "ping"}`` is answered with ``{"type": "pong"}``. Anything else gets
an ``{"type": "error", "error": "…"}`` reply, which an unaware client ignores.

Each connection runs three tasks: a receiver (client messages), a forwarder (bus events) and a
sender. Both sources feed one bounded outbox, so a replay is sent in order with the live events
around it; the sender never sends a job's seq twice. A client that
falls further behind than the outbox holds is closed (it may reconnect), so no client ever
stalls the workers or the other clients.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from doclane.events import Event, SubscriberOverflow
from doclane.services import Services, ServicesDep

router = APIRouter()

CLOSE_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class Replay:
    job_id: str
    after_seq: int


Outgoing = Event | Replay


class Overflow(Exception):
    """The client fell too far behind."""


def _put(outbox: MemoryObjectSendStream[Outgoing], item: Outgoing) -> None:
    try:
        outbox.send_nowait(item)
    except anyio.WouldBlock:
        raise Overflow from None


def parse_request(text: str | None) -> Outgoing:
    """A client message: a Replay request, or the event to answer with."""
    try:
        message: Any = json.loads(text or "")
    except ValueError:
        return {"type": "error", "error": "Messages must be JSON objects"}
    if not isinstance(message, dict):
        return {"type": "error", "error": "Messages must be JSON objects"}
    if message.get("type") == "ping":
        return {"type": "pong"}
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
async def events(websocket: WebSocket, services: ServicesDep) -> None:
    await websocket.accept()
    size = services.settings.ws_send_queue_size
    send_outbox, outbox = anyio.create_memory_object_stream[Outgoing](size)
    try:
        async with (
            services.bus.subscribe(size) as live,
            send_outbox,
            outbox,
            anyio.create_task_group() as tg,
        ):

            async def receive() -> None:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    _put(send_outbox, parse_request(message.get("text")))
                tg.cancel_scope.cancel()

            async def forward() -> None:
                async for event in live:
                    _put(send_outbox, event)

            tg.start_soon(receive)
            tg.start_soon(forward)
            await _send(websocket, services, outbox)
            tg.cancel_scope.cancel()
    except* (Overflow, SubscriberOverflow):
        with suppress(RuntimeError, OSError):  # the client may be gone already
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "Too slow: reconnect")
    except* (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away mid-send


async def _send(
    websocket: WebSocket, services: Services, outbox: MemoryObjectReceiveStream[Outgoing]
) -> None:
    # The seqs this client got, per job: a replay never repeats one, and never skips one, even
    # when live events of the job reached the client before its subscribe did.
    sent: dict[str, set[int]] = {}

    async def deliver(event: Event) -> None:
        job_id, seq = event.get("job_id"), event.get("seq")
        if isinstance(job_id, str) and isinstance(seq, int):
            seqs = sent.setdefault(job_id, set())
            if seq in seqs:
                return
            seqs.add(seq)
        await websocket.send_json(event)

    async for item in outbox:
        if isinstance(item, Replay):
            if await services.store.get(item.job_id) is None:
                await deliver({"type": "error", "job_id": item.job_id, "error": "Job not found"})
                continue
            for event in await services.store.events_after(item.job_id, item.after_seq):
                await deliver(event)
        else:
            await deliver(item)
