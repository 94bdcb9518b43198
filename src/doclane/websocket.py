"""``WS /ws``: every connected client receives every job event.

Each connection is a receiver and a sender side by side: the receiver notices the client
leaving (and ignores what it sends, for now); the sender forwards bus events. The bus never
waits for a client: one that falls too far behind is closed and may reconnect.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from doclane.events import SubscriberOverflow
from doclane.services import ServicesDep

router = APIRouter()

CLOSE_TRY_AGAIN_LATER = 1013


@router.websocket("/ws")
async def events(websocket: WebSocket, services: ServicesDep) -> None:
    await websocket.accept()
    async with (
        services.bus.subscribe(services.settings.ws_send_queue_size) as stream,
        anyio.create_task_group() as tg,
    ):

        async def receive() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # client messages are not used yet
            tg.cancel_scope.cancel()

        tg.start_soon(receive)
        try:
            async for event in stream:
                await websocket.send_json(event)
        except SubscriberOverflow:
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "Too slow: reconnect")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        tg.cancel_scope.cancel()
