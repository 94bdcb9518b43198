"""The PostgreSQL event bus, for a PostgreSQL deployment without Redis: ``NOTIFY`` carries
events from any process to the subscribers of every process.

An event is notified on the ``doclane_events`` channel as its JSON when that fits under
PostgreSQL's payload limit (8,000 bytes). A larger one (an ``ai_chunk``'s ``partial`` grows
with the answer) is notified as a reference, ``{"job_id", "seq"}``, and each relay reads the
event back from the job log, which rebuilds ``partial``. Notices reach listeners in commit
order, and a job's events are published one after another, so each job's events keep their
publish order.

With the PostgreSQL job store, the store itself notifies each event in the transaction that
logs it (JobStore.notify_events): no round trip of its own, delivered only once the event is
committed, never separated from its write. The journal then has nothing left to publish
(:meth:`PostgresEventBus.published_by_store`).

Each process's relay LISTENs on a connection of its own, opened by :meth:`open` so that nothing
published after it is missed. So a process that opens this bus must run its relay: notices
nobody reads hold back PostgreSQL's notification queue for every session.

PostgreSQL keeps no notices for a listener that was away: when the connection is lost, the
relay listens again and overflows this process's subscribers, whose clients then resume from
the job log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, suppress

import psycopg

from doclane.errors import DoclaneError
from doclane.events.base import Event, EventBus
from doclane.events.memory import MemoryEventBus
from doclane.events.outage import Outage
from doclane.jobs import JobStore
from doclane.jobs.pgpool import Pool
from doclane.jobs.postgres import PostgresJobStore

log = logging.getLogger(__name__)

CHANNEL = "doclane_events"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses 8,000 and more
SEQ_ROOM = 21  # bytes: the longest seq and the closing brace
POOL_SIZE = 2  # publishing connections: a NOTIFY is short


def notice_head(event: Event) -> str:
    """A logged event's notice up to its seq: the payload is this, the seq, then ``}``. The
    event's JSON when it fits in a notice, else a reference to it in the log."""
    head = json.dumps({k: v for k, v in event.items() if k != "seq"})[:-1] + ', "seq": '
    if len(head.encode()) + SEQ_ROOM > MAX_PAYLOAD:
        head = json.dumps({"job_id": event["job_id"]})[:-1] + ', "seq": '
    return head


class PostgresEventBus(EventBus):
    def __init__(self, url: str, store: JobStore) -> None:
        self._url = url
        self._store = store  # to read back the events notified by reference
        self._local = MemoryEventBus()
        self._pool: Pool | None = None
        self._listener: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        if isinstance(store, PostgresJobStore):  # it notifies what it logs, as it commits
            store.notify_events(CHANNEL, notice_head)

    def published_by_store(self) -> bool:
        return isinstance(self._store, PostgresJobStore) and self._store.notifies_events

    async def open(self) -> None:
        self._pool = Pool(self._url, POOL_SIZE)
        try:
            self._listener = await self._listen()
        except psycopg.OperationalError as exc:  # the operator's: say so once, plainly
            raise DoclaneError(f"Cannot listen for job events: {exc}".strip()) from exc

    async def _listen(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        await self._drop_listener()

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def ping(self) -> None:
        if self._pool is None or self._listener is None:
            raise RuntimeError("not listening for job events (reconnecting)")
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def publish(self, event: Event) -> None:
        if self._pool is None:
            raise RuntimeError("event bus is not open")
        payload = json.dumps(event)
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = json.dumps({"job_id": event["job_id"], "seq": event["seq"]})
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def subscribe(self, queue_size: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self._local.subscribe(queue_size)

    async def relay(self) -> None:
        outage = Outage(f"PostgreSQL channel {CHANNEL!r}", log)
        while True:
            try:
                if self._listener is None:
                    self._listener = await self._listen()
                    self._local.overflow_all()  # what was notified meanwhile is gone
                    outage.recovered()
                async for notice in self._listener.notifies():
                    await self._deliver(notice.payload)
            except Exception as exc:  # the relay's edge: never take the process down
                with suppress(psycopg.Error):  # it is broken already
                    await self._drop_listener()
                await outage.failed(exc)

    async def _deliver(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:  # not ours: someone else notifies on this channel
            log.warning("skipped a notice on %s: not a doclane event", CHANNEL)
            return
        if isinstance(event, dict) and event.keys() == {"job_id", "seq"}:
            # Too large to notify: read it back from the log (a failed read is an outage).
            job_id, seq = event["job_id"], event["seq"]
            logged = await self._store.events_after(job_id, seq - 1)
            if not logged or logged[0]["seq"] != seq:
                log.warning("event %s of job %s is not in its log", seq, job_id)
                self._local.overflow_all()  # its subscribers would miss it unawares
                return
            event = logged[0]
        await self._local.publish(event)
