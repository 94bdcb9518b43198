"""The worker loop: claim due jobs, hold their leases, run them.

A worker runs ``worker_concurrency`` slots. Each slot claims the next due job, runs it while a
heartbeat renews its lease, and goes back for more; an idle slot waits in the job store until a
job is queued or handed back (in this process, or in another where the store can tell: see
JobStore.wait_for_work), the next scheduled job falls due, or the poll interval passes.
A worker that dies simply stops renewing its leases: its jobs are claimed again when they
expire, by any worker on any host, until they have had ``max_attempts`` runs: a claim leaves
such a job alone, and a sweep that every worker runs each ``SWEEP_SECONDS`` fails it (once,
however many workers sweep). A worker that is stopped (SIGTERM, Ctrl-C) hands its running jobs
back at once, uncounted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import anyio

from doclane import metrics
from doclane.errors import DoclaneError, LeaseLost, StoreUnavailable
from doclane.jobs import Job
from doclane.journal import Journal
from doclane.logs import job_context
from doclane.providers import Provider
from doclane.runner import JobRun, run_job
from doclane.settings import Settings
from doclane.storage import Storage

log = logging.getLogger(__name__)

EXHAUSTED_ERROR = "The job was interrupted too many times (its worker stopped each time)"
# How often a running job's lease is renewed, which is also how soon a cancel is noticed.
HEARTBEAT_SECONDS = 0.5
# How often a worker fails the jobs whose workers died on their last attempt. A timer, not a
# step before each claim: the sweep almost always finds nothing, and a write transaction per
# claim cost a tenth of an instant job's time.
SWEEP_SECONDS = 1.0


class Worker:
    def __init__(
        self, settings: Settings, journal: Journal, provider: Provider, storage: Storage
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.store = journal.store
        self.journal = journal
        self.provider = provider
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._cpu = anyio.Lock()  # OCR and local inference take turns (see run_job)

    async def run(self) -> None:
        try:
            await self.provider.start()
        except DoclaneError as exc:  # jobs will fail with this message; keep serving the rest
            log.error("LLM provider unavailable: %s", exc.message)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.store.watch)  # other processes' new jobs wake this one
            tg.start_soon(self._sweep)
            for _ in range(self.settings.worker_concurrency):
                tg.start_soon(self._slot)

    async def _slot(self) -> None:
        while True:
            try:
                await self._next()
            except* StoreUnavailable as group:  # known and plain: no traceback
                log.warning("%s; the worker tries again shortly", group.exceptions[0])
            except* Exception:  # keep the slot alive whatever happened
                log.exception("worker slot error; retrying shortly")
            else:
                continue
            await anyio.sleep(self.settings.poll_interval_seconds)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.journal.fail_exhausted(self.settings.max_attempts, EXHAUSTED_ERROR)
            except StoreUnavailable as exc:  # the slots say so too; no traceback
                log.debug("sweep for exhausted jobs skipped: %s", exc)
            except Exception:  # keep sweeping whatever happened
                log.exception("sweep for exhausted jobs failed; retrying shortly")
            await anyio.sleep(SWEEP_SECONDS)

    async def _next(self) -> None:
        settings = self.settings
        job = await self.store.claim(self.id, settings.lease_seconds, settings.max_attempts)
        if job is None:
            await self._idle()
        else:
            await self._run(job)

    async def _idle(self) -> None:
        timeout = self.settings.poll_interval_seconds
        next_run_at = await self.store.next_run_at()
        if next_run_at is not None:
            timeout = min(timeout, max(0.0, next_run_at - time.time()))
        await self.store.wait_for_work(timeout)

    async def _run(self, job: Job) -> None:
        run = JobRun(job, self.id, self.journal, self.storage, self.settings.job_timeout_seconds)
        with job_context(job.job_id):  # every line of the run names the job
            log.info("job %s: attempt %d", job.job_id, job.attempts)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._heartbeat, run, tg.cancel_scope)
                    tg.start_soon(run.write_events)
                    await run_job(run, self.provider, self.settings, self._cpu)
                    tg.cancel_scope.cancel()
            except* LeaseLost:
                log.info("job %s: stopped (cancelled, or its lease was lost)", job.job_id)
            except* anyio.get_cancelled_exc_class():
                # Shutting down: hand the job back uncounted so the next start runs it at once.
                run.stopped.set()
                run.outcome = "handed back"
                with anyio.CancelScope(shield=True):
                    await self.store.release(job.job_id, self.id)
                raise
            finally:
                metrics.JOBS_ENDED.labels(run.outcome).inc()
                metrics.JOB_SECONDS.observe(time.monotonic() - run.started)

    async def _heartbeat(self, run: JobRun, scope: anyio.CancelScope) -> None:
        """Renew the lease, and notice within a beat when the job was cancelled or lost."""
        beat = min(HEARTBEAT_SECONDS, self.settings.lease_seconds / 3)
        while True:
            await anyio.sleep(beat)
            try:
                await self.store.heartbeat(run.job.job_id, self.id, self.settings.lease_seconds)
            except LeaseLost:
                if not run.finishing:  # else the final write says whether the lease held
                    run.stopped.set()  # blocking work polls this between pages and tokens
                    scope.cancel()
                return
