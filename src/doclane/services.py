"""The long-lived resources of a process, set up by one opener that every command shares.

``doclane serve`` runs the API with a worker inside, ``doclane serve --no-worker`` the API
alone, and ``doclane worker`` a worker alone: each opens the same store, bus and journal here,
so an API replica and a worker on another host agree on everything but what they run.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, cast

import anyio
from fastapi import Depends
from starlette.requests import HTTPConnection

from doclane import retention, sandbox
from doclane.documents.warmup import warm_up
from doclane.events import EventBus, open_bus
from doclane.jobs import JobStore, open_store
from doclane.journal import Journal
from doclane.offload import run_blocking
from doclane.providers import open_provider
from doclane.settings import Settings
from doclane.storage import Storage, open_storage
from doclane.worker import Worker


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: JobStore
    storage: Storage  # the uploads, by key
    bus: EventBus  # for the WebSocket's subscriptions; events are published by the journal
    journal: Journal
    worker: Worker | None  # None when this process only serves the API


@asynccontextmanager
async def open_services(settings: Settings, *, run_worker: bool) -> AsyncIterator[Services]:
    """Open the store, the bus and (with ``run_worker``) the model; run what this process runs
    until the block exits, then hand running jobs back and close everything."""
    storage = open_storage(settings.resolved_storage_url)  # a relative default: from this cwd
    store = open_store(settings.resolved_database_url, settings.migrate_on_start)
    await store.open()
    bus = open_bus(settings, store)
    provider = open_provider(settings) if run_worker else None
    try:
        await bus.open()
        journal = Journal(store, bus)
        worker = Worker(settings, journal, provider, storage) if provider is not None else None
        async with anyio.create_task_group() as tg:
            # Readers are forked from a server that imports them first: start it now, not on
            # the first upload or job, and a warm spare reader with it.
            tg.start_soon(run_blocking, sandbox.start, warm_up)
            # Other processes' events, for this one's sockets; a worker runs it too, as an
            # unread LISTEN would hold back PostgreSQL's notification queue for everyone.
            tg.start_soon(bus.relay)
            if settings.retention_days is not None:  # safe in every process at once
                tg.start_soon(retention.keep_for, settings.retention_days, store, storage)
            if worker is not None:
                tg.start_soon(worker.run)
            # What start-up made (modules, the migrations' SQLAlchemy, the app) lives as long as
            # the services: out of the collector's sight until they close, a full collection no
            # longer scans it, which paused the loop ~50 ms (a scheduled job claimed that late:
            # gc callbacks in benchmarks/lateness.py's run).
            gc.collect()
            gc.freeze()
            try:
                yield Services(settings, store, storage, bus, journal, worker)
            finally:
                gc.unfreeze()
            tg.cancel_scope.cancel()
    finally:
        if provider is not None:
            await provider.close()
        await bus.close()
        await store.close()


async def get_services(connection: HTTPConnection) -> Services:  # async: no worker thread
    return cast(Services, connection.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]
