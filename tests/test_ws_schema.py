"""docs/asyncapi.yaml is the WebSocket protocol: every message a real server sends matches it.

The server is driven through every kind of message it sends (a completed job, a failed one, a
cancelled one, a replay, error replies, a pong), and each message received on the socket,
whatever its job, is validated against the schema of its ``type``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import ClientConnection, connect

from tests.documents import make_report_pdf
from tests.hostile import long_line_csv
from tests.server import ServerProcess
from tests.wsclient import FINAL_TYPES, upload

SPEC = Path(__file__).parents[1] / "docs" / "asyncapi.yaml"
URI = "urn:doclane:asyncapi"
SERVER_TYPES = {"job_update", "ai_chunk", "job_completed", "job_failed", "error", "pong"}
CLIENT_TYPES = {"subscribe", "ping", "auth"}


def _follow_ref(document: dict[str, Any], node: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The node a chain of local ``$ref`` leads to, with its pointer."""
    pointer = ""
    while "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), pointer
        node = document
        for part in pointer[2:].split("/"):
            node = node[part]
    return pointer, node


@cache
def validators(action: str) -> dict[str, Draft7Validator]:
    """The payload validator of each message type of the operations with ``action``
    (``send``: server to client; ``receive``: client to server)."""
    document = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(document, default_specification=DRAFT7)
    )
    found: dict[str, Draft7Validator] = {}
    for operation in document["operations"].values():
        if operation["action"] != action:
            continue
        for ref in operation["messages"]:
            _, message = _follow_ref(document, ref)
            pointer, payload = _follow_ref(document, message["payload"])
            Draft7Validator.check_schema(payload)
            type_ = payload["properties"]["type"]["const"]
            assert type_ == message["name"]
            found[type_] = Draft7Validator({"$ref": URI + pointer}, registry=registry)
    return found


def schema_errors(message: dict[str, Any], action: str = "send") -> list[str]:
    validator = validators(action).get(str(message.get("type")))
    if validator is None:
        return [f"no schema for type {message.get('type')!r}"]
    return [error.message for error in validator.iter_errors(message)]


def test_the_schema_names_every_message_and_rejects_wrong_ones() -> None:
    assert set(validators("send")) == SERVER_TYPES
    assert set(validators("receive")) == CLIENT_TYPES
    document = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    for name, message in document["components"]["messages"].items():
        action = "receive" if name in CLIENT_TYPES else "send"
        for example in message["examples"]:
            assert schema_errors(example["payload"], action) == [], name

    update = {"type": "job_update", "job_id": "j", "progress": 45, "seq": 1, "stage": "x"}
    update["status"] = "processing"
    chunk = {"type": "ai_chunk", "job_id": "j", "chunk": " b", "partial": "a b", "seq": 2}
    chunk["status"] = "processing"
    done = {"type": "job_completed", "job_id": "j", "ai_response": "a b", "seq": 3}
    done |= {"status": "completed", "progress": 100}
    failed = {"type": "job_failed", "job_id": "j", "error": "x", "seq": 3, "status": "failed"}
    for right in (update, chunk, done, failed):
        assert schema_errors(right) == [], right
    wrong: list[dict[str, Any]] = [
        {k: v for k, v in chunk.items() if k != "partial"},  # the seed needs partial
        {k: v for k, v in chunk.items() if k != "seq"},
        {**chunk, "seq": 0},
        {**chunk, "seq": "2"},
        {**chunk, "extra": True},  # a field the document does not name
        {**update, "progress": "45"},
        {**update, "progress": 101},
        {**update, "status": "completed"},
        {**done, "progress": 99},
        {**failed, "status": "completed"},
        {**failed, "error": ""},
        {"type": "pong", "seq": 1},
        {"type": "chunk", "job_id": "j"},
    ]
    for message in wrong:
        assert schema_errors(message), message
    assert schema_errors({"type": "subscribe", "job_id": "j", "after_seq": "9"}, "receive")


class CheckedSocket:
    """A client that validates every message the server sends it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        assert schema_errors(message, "receive") == [], message
        await self.ws.send(json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.ws.recv())
        assert schema_errors(message) == [], message
        self.received.append(message)
        return message

    async def until_final(self, job_ids: set[str]) -> list[dict[str, Any]]:
        """The events of these jobs, until each has had its final one."""
        events, open_jobs = [], set(job_ids)
        with anyio.fail_after(120):
            while open_jobs:
                message = await self.recv()
                if message.get("job_id") in job_ids:
                    events.append(message)
                    if message["type"] in FINAL_TYPES:
                        open_jobs.discard(message["job_id"])
        return events


@pytest.mark.slow
@pytest.mark.anyio
async def test_every_message_a_real_server_sends_matches_the_schema(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    pdf = make_report_pdf(tmp_path / "r.pdf")
    later = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    async with connect(server.ws) as raw, httpx.AsyncClient(base_url=server.http) as http:
        ws = CheckedSocket(raw)
        await ws.send({"type": "ping"})
        with anyio.fail_after(10):
            assert (await ws.recv())["type"] == "pong"
        for frame in ["not json", '{"type": "nope"}', '{"type": "subscribe"}']:
            await raw.send(frame)
            with anyio.fail_after(10):
                assert (await ws.recv())["type"] == "error"
        await ws.send({"type": "subscribe", "job_id": "nope", "after_seq": 0})
        with anyio.fail_after(10):
            assert await ws.recv() == {"type": "error", "job_id": "nope", "error": "Job not found"}

        scheduled = (await upload(server.http, pdf, "Later.", scheduled_at=later))["data"]
        assert (await http.delete(f"/api/jobs/{scheduled['job_id']}")).status_code == 200
        bad = (await upload(server.http, long_line_csv(tmp_path / "long.csv"), "Sum b."))["data"]
        good = (await upload(server.http, pdf, "What was revenue?"))["data"]
        live = await ws.until_final({scheduled["job_id"], bad["job_id"], good["job_id"]})
        finals = {e["job_id"]: e for e in live if e["type"] in FINAL_TYPES}
        assert finals[scheduled["job_id"]]["status"] == "cancelled"
        assert finals[bad["job_id"]]["status"] == "failed"
        assert finals[good["job_id"]]["type"] == "job_completed"

    # A replay is rebuilt from the stored log (a new connection: none of it was sent there).
    async with connect(server.ws) as raw:
        late = CheckedSocket(raw)
        await late.send({"type": "subscribe", "job_id": good["job_id"], "after_seq": 0})
        replayed = await late.until_final({good["job_id"]})
    assert replayed == [e for e in live if e["job_id"] == good["job_id"]]
    assert {m["type"] for m in ws.received + late.received} == SERVER_TYPES
