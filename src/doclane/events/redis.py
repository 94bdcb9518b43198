"""The Redis Streams event bus: events from any process reach the subscribers of every process.

Every event goes through one stream (``XADD``), so all of a job's events keep their publish
order. The stream keeps at most ``max_events`` entries (each ``XADD`` trims to that) and none
older than ``ttl_seconds`` (an ``XTRIM`` by age rides along with the first publish after each
``ttl_seconds / 4``, at most a second apart): both trimmed approximately, whole nodes at a
time, which costs Redis least. So a publish is one command, one round trip. The job log in the
database is the record, the stream only carries events to the relays.

Each process's relay reads the stream from its end as of :meth:`RedisEventBus.open` and hands
each entry to this process's subscribers (a :class:`MemoryEventBus` fans out), the publishing
process's own included. It remembers the last entry it read, so after a lost connection it
reads on from there: nothing lost, nothing twice. If the entries it had yet to read were
trimmed meanwhile (a long outage) or Redis lost the stream, its subscribers are overflowed so
their clients resume from the job log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from doclane.errors import DoclaneError
from doclane.events.base import Event, EventBus
from doclane.events.memory import MemoryEventBus
from doclane.events.outage import Outage

log = logging.getLogger(__name__)

START = b"0-0"  # before any entry: where a relay starts on an empty stream
FIELD = b"event"
BLOCK_MS = 2000  # one XREAD waits this long for entries (under redis-py's socket timeout)
BATCH = 1000  # entries one XREAD returns at most
CONNECT_TIMEOUT = 2.0
LONGEST_TRIM_WAIT = 1.0  # seconds between trims by age, at most


class RedisEventBus(EventBus):
    def __init__(
        self,
        url: str,
        stream: str = "doclane:events",
        max_events: int = 100_000,
        ttl_seconds: float = 3600.0,
    ) -> None:
        self._url = url
        self._stream = stream
        self._max_events = max_events
        self._ttl_ms = int(ttl_seconds * 1000)
        self._trim_every = min(ttl_seconds / 4, LONGEST_TRIM_WAIT)
        self._next_trim = 0.0  # time.monotonic() of the next trim by age
        self._local = MemoryEventBus()
        self._client: Redis | None = None  # publishing (a pool)
        self._reader: Redis | None = None  # the relay's one blocking connection
        self._last_id = START
        self._added_at_open = 0  # the stream's entries-added counter when it was empty at open

    def _connect(self, retries: int) -> Redis:
        # A publish retries once at once (a pooled connection may have gone stale), the relay
        # not at all: it paces its own reconnects. Neither waits on redis-py's backoff.
        return Redis.from_url(
            self._url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), retries),
        )

    async def open(self) -> None:
        self._client = self._connect(retries=1)
        self._reader = self._connect(retries=0)
        try:
            info = await self._info()
        except RedisError as exc:  # the operator's: say so once, plainly
            await self.close()
            raise DoclaneError(f"Cannot reach the event bus's Redis: {exc}".strip()) from exc
        if info is not None and info["length"]:
            self._last_id = info["last-entry"][0]
        elif info is not None:  # empty, all trimmed: count what is added from now on
            self._added_at_open = info["entries-added"]

    async def close(self) -> None:
        for client in (self._client, self._reader):
            if client is not None:
                await client.aclose()
        self._client = self._reader = None

    async def ping(self) -> None:
        if self._client is None:
            raise RuntimeError("event bus is not open")
        await self._client.ping()

    async def publish(self, event: Event) -> None:
        if self._client is None:
            raise RuntimeError("event bus is not open")
        now = time.monotonic()
        if now < self._next_trim:  # both trims approximate (redis-py's default)
            payload = json.dumps(event)
            await self._client.xadd(self._stream, {FIELD: payload}, maxlen=self._max_events)
            return
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[Event]) -> None:
        """The events' XADDs in one round trip (a pipeline, in order), with the trim by age
        when it is due."""
        if self._client is None:
            raise RuntimeError("event bus is not open")
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self._stream, {FIELD: json.dumps(event)}, maxlen=self._max_events)
            now = time.monotonic()
            if now >= self._next_trim:
                self._next_trim = now + self._trim_every
                pipe.xtrim(self._stream, minid=f"{int(time.time() * 1000) - self._ttl_ms}-0")
            await pipe.execute()

    def subscribe(self, queue_size: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self._local.subscribe(queue_size)

    async def relay(self) -> None:
        if self._reader is None:
            raise RuntimeError("event bus is not open")
        reader = self._reader
        outage = Outage(f"Redis stream {self._stream!r}", log)
        while True:
            try:
                if outage.down and await self._lost_entries():
                    self._local.overflow_all()
                # [(stream, [(entry id, fields)])], as bytes (RESP2)
                found: Any = await reader.xread({self._stream: self._last_id}, BATCH, BLOCK_MS)
            except Exception as exc:  # the relay's edge: never take the process down
                await outage.failed(exc)
                continue
            outage.recovered()
            for _, entries in found:
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    await self._deliver(entry_id, fields)

    async def _deliver(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            event = json.loads(fields[FIELD])
        except (KeyError, ValueError):  # not ours: someone else writes to this stream
            log.warning("skipped stream entry %s: not a doclane event", entry_id.decode())
            return
        await self._local.publish(event)

    async def _info(self) -> dict[str, Any] | None:
        assert self._reader is not None
        try:
            info: dict[str, Any] = await self._reader.xinfo_stream(self._stream)
        except ResponseError:  # no such key
            return None
        return info

    async def _lost_entries(self) -> bool:
        """Back after an outage: were entries this relay had yet to read trimmed meanwhile?
        Trimming takes the oldest entries first, so none were while the last one read is
        still there."""
        assert self._reader is not None
        info = await self._info()
        if info is None:
            return True  # Redis lost the stream (restarted without persistence)
        if self._last_id == START:  # nothing read yet: every entry since open was unread
            return bool(info["entries-added"] - self._added_at_open > info["length"])
        return not await self._reader.xrange(self._stream, self._last_id, self._last_id)
