"""The one owner of job events: each is written to the job's row and log, then published.

The log in the database is the truth: ``GET /api/jobs/{id}`` and a resuming client read it. The
bus only delivers to the clients connected now, so publishing is best-effort: a bus that fails
costs those clients a live event (they heal by resuming), never a job its progress. A write
and its publishing are not separated by a cancellation (a worker stopping, a client hanging
up): what was written is also sent. A bus the store publishes through itself (PostgreSQL's
NOTIFY, sent in the write's transaction) gets each event from the store, not from here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from doclane.errors import LeaseLost
from doclane.events import Event, EventBus
from doclane.jobs import Change, Job, JobStore

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, store: JobStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def record(self, job_id: str, worker_id: str, change: Change, event: Event) -> Event:
        """A running job's change and its event, as the worker holding its lease makes them;
        raises LeaseLost (and records nothing) when it no longer does."""
        with anyio.CancelScope(shield=True):  # a stopping worker still publishes what it wrote
            logged = await self.store.emit(job_id, worker_id, change, event)
            await self._publish(logged)
        return logged

    async def record_many(
        self, job_id: str, worker_id: str, writes: Sequence[tuple[Change, Event]]
    ) -> list[Event]:
        """:meth:`record` of several changes in order, in one transaction where the store can;
        each event is published once all are written. Raises LeaseLost when the lease was lost
        (after publishing what was written before it)."""
        with anyio.CancelScope(shield=True):
            logged = await self.store.emit_many(job_id, worker_id, writes)
            await self._publish_many(logged)
        if len(logged) < len(writes):
            raise LeaseLost(job_id)
        return logged

    async def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """Cancel a pending or running job of ``owner`` (see JobStore.cancel)."""
        with anyio.CancelScope(shield=True):  # a client that hangs up does not cut it in two
            job, event = await self.store.cancel(job_id, owner)
            if event is not None:
                await self._publish(event)
        return job

    async def fail_exhausted(self, max_attempts: int, error: str) -> None:
        """Fail the jobs whose workers died on their last allowed attempt."""
        for event in await self.store.fail_exhausted(max_attempts, error):
            await self._publish(event)

    async def _publish(self, event: Event) -> None:
        await self._publish_many([event])

    async def _publish_many(self, events: Sequence[Event]) -> None:
        if not events or self.bus.published_by_store():  # the write's transaction did
            return
        try:
            await self.bus.publish_many(events)
        except Exception:  # the log has them; connected clients will resume from there
            log.warning(
                "events %s of job %s not published",
                ", ".join(str(event.get("seq")) for event in events),
                events[0].get("job_id"),
                exc_info=True,
            )
