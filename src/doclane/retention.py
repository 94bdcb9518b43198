"""Deleting jobs: one on request (``DELETE /api/jobs/{id}``), and every finished job once it
is ``DOCLANE_RETENTION_DAYS`` old.

Deleting a job removes its row, its event log and its files (the upload and what was derived
from it). The row goes first, in one statement that also checks the job is finished and whose
it is; then the files. A process killed between the two leaves that job's files behind, with
nothing pointing at them (``<storage>/<shard>/<job_id>.*``).

Every process that opens the services (API replicas and workers) sweeps, each every
:func:`sweep_interval`: sweeps that run at once share the work, as each job is deleted, and its
files removed, by the one statement that deleted it.
"""

from __future__ import annotations

import logging
import time

import anyio

from doclane.errors import InvalidRequest, JobNotFound
from doclane.jobs import Job, JobStore
from doclane.journal import Journal
from doclane.storage import Storage

BATCH = 500
DAY_SECONDS = 86_400.0

log = logging.getLogger(__name__)


async def delete_or_cancel(
    journal: Journal, storage: Storage, job_id: str, owner: str | None
) -> Job:
    """Cancel a pending or running job of ``owner``; delete a finished one. Returns the job as
    it was last (cancelled, or as it was when deleted)."""
    job = await journal.store.get(job_id, owner)
    if job is None:
        raise JobNotFound(job_id)
    if not job.status.is_final:
        try:
            return await journal.cancel(job_id, owner)
        except InvalidRequest as exc:  # it finished meanwhile: delete it
            if exc.status_code != 409:
                raise
    deleted = await journal.store.delete(job_id, owner)
    if deleted is None:  # deleted by another request meanwhile
        raise JobNotFound(job_id)
    await storage.delete_job(job_id)
    log.info("job %s deleted", job_id)
    return deleted


def sweep_interval(days: float) -> float:
    """How often to look for expired jobs: a tenth of the retention, between 1 s and 5 min."""
    return min(300.0, max(1.0, days * DAY_SECONDS / 10))


async def sweep(store: JobStore, storage: Storage, days: float) -> int:
    """Delete every job that ended more than ``days`` ago; returns how many."""
    deleted = 0
    while True:
        ids = await store.delete_finished_before(time.time() - days * DAY_SECONDS, BATCH)
        for job_id in ids:
            await storage.delete_job(job_id)
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


async def keep_for(days: float, store: JobStore, storage: Storage) -> None:
    """Sweep until cancelled; a failed sweep (the database away) is tried again next time."""
    while True:
        try:
            if deleted := await sweep(store, storage, days):
                log.info("retention: %d finished job(s) older than %g days deleted", deleted, days)
        except Exception:
            log.warning("retention sweep failed; trying again later", exc_info=True)
        await anyio.sleep(sweep_interval(days))
