"""The worker loop: claim due jobs, hold their leases, run them.

A worker runs ``worker_concurrency`` slots. Each slot claims the next due job, runs it while a
heartbeat renews its lease, and goes back for more; an idle slot sleeps until it is woken (a job
was created in this process), the next scheduled job falls due, or the poll interval passes.
A worker that dies simply stops renewing its leases: its jobs are claimed again when they
expire, or at once by the next worker on the same host that sees the dead process id.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import anyio

from doclane.errors import DoclaneError, LeaseLost
from doclane.events import EventBus
from doclane.jobs import Job, JobStore
from doclane.providers import Provider
from doclane.runner import JobRun, run_job
from doclane.settings import Settings

log = logging.getLogger(__name__)

EXHAUSTED_ERROR = "The job was interrupted too many times (its worker stopped each time)"
# How often a running job's lease is renewed, which is also how soon a cancel is noticed.
HEARTBEAT_SECONDS = 0.5


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    def __init__(
        self, settings: Settings, store: JobStore, bus: EventBus, provider: Provider
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.provider = provider
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = anyio.Event()
        self._cpu = anyio.Lock()  # OCR and local inference take turns (see run_job)

    def wake(self) -> None:
        """A job may be due now: stop idling."""
        self._wake.set()
        self._wake = anyio.Event()

    async def run(self) -> None:
        await self._reclaim_orphans()
        try:
            await self.provider.start()
        except DoclaneError as exc:  # jobs will fail with this message; keep serving the rest
            log.error("LLM provider unavailable: %s", exc.message)
        async with anyio.create_task_group() as tg:
            for _ in range(self.settings.worker_concurrency):
                tg.start_soon(self._slot)

    async def _reclaim_orphans(self) -> None:
        """Free at once the jobs of dead workers of this host (e.g. after a crash and restart)."""
        for job_id, worker_id in await self.store.leases():
            host, _, rest = worker_id.partition(":")
            pid_text = rest.partition(":")[0]
            if host != self.host or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid == os.getpid() or not _process_alive(pid):
                log.info("re-queueing job %s of dead worker %s", job_id, worker_id)
                await self.store.expire_lease(job_id, worker_id)

    async def _slot(self) -> None:
        while True:
            try:
                await self._next()
            except Exception:  # e.g. the database is unreachable: keep the slot alive
                log.exception("worker slot error; retrying shortly")
                await anyio.sleep(self.settings.poll_interval_seconds)

    async def _next(self) -> None:
        exhausted = await self.store.fail_exhausted(self.settings.max_attempts, EXHAUSTED_ERROR)
        for event in exhausted:
            await self.bus.publish(event)
        job = await self.store.claim(self.id, self.settings.lease_seconds)
        if job is None:
            await self._idle()
        else:
            await self._run(job)

    async def _idle(self) -> None:
        timeout = self.settings.poll_interval_seconds
        next_run_at = await self.store.next_run_at()
        if next_run_at is not None:
            timeout = min(timeout, max(0.0, next_run_at - time.time()))
        with anyio.move_on_after(timeout):
            await self._wake.wait()

    async def _run(self, job: Job) -> None:
        log.info("job %s: attempt %d", job.job_id, job.attempts)
        run = JobRun(job, self.id, self.store, self.bus, self.settings.job_timeout_seconds)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, run, tg.cancel_scope)
                await run_job(run, self.provider, self.settings, self._cpu)
                tg.cancel_scope.cancel()
        except* LeaseLost:
            log.info("job %s: stopped (cancelled, or its lease was lost)", job.job_id)
        except* anyio.get_cancelled_exc_class():
            # Shutting down: hand the job back uncounted so the next start runs it at once.
            run.stopped.set()
            with anyio.CancelScope(shield=True):
                await self.store.release(job.job_id, self.id)
            raise

    async def _heartbeat(self, run: JobRun, scope: anyio.CancelScope) -> None:
        """Renew the lease, and notice within a beat when the job was cancelled or lost."""
        beat = min(HEARTBEAT_SECONDS, self.settings.lease_seconds / 3)
        while True:
            await anyio.sleep(beat)
            try:
                await self.store.heartbeat(run.job.job_id, self.id, self.settings.lease_seconds)
            except LeaseLost:
                run.stopped.set()  # blocking work polls this between pages and tokens
                scope.cancel()
                return
