"""A document whose reader process dies gets one more run, then fails as poison: it can neither
take the worker down nor loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from doclane.jobs import JobStatus, NewJob
from doclane.jobs.model import DocumentKind
from tests.documents import in_storage
from tests.fakes import ScriptedProvider, Step
from tests.hostile import far_corner_xlsx
from tests.test_worker import running_worker

pytestmark = pytest.mark.anyio


async def test_a_reader_that_dies_twice_fails_the_job_for_good(tmp_path: Path) -> None:
    # Queued as a table without the CSV an upload would have made: the job converts it, and
    # the reader aborts on the sheet's far corner (~512 GiB asked of a 1 GiB limit) each time.
    xlsx = far_corner_xlsx(tmp_path / "corner.xlsx")
    provider = ScriptedProvider(Step())
    async with running_worker(tmp_path, provider, max_attempts=5) as h:
        job_id = "poison"
        await h.store.create(
            NewJob(
                job_id,
                "c.xlsx",
                in_storage(xlsx, tmp_path, job_id),
                DocumentKind.CSV,
                "Total?",
                0,
                time.time(),
            )
        )
        events = await h.until_final(job_id)
        job = await h.store.get(job_id)
        # The worker is unharmed: the next job completes.
        events_next = await h.until_final(await h.submit())
    retries = [e for e in events if e.get("status") == "pending"]
    assert len(retries) == 1 and "its reader stopped" in retries[0]["stage"]
    assert events[-1]["type"] == "job_failed"
    assert events[-1]["error"].startswith("The table could not be read: its reader stopped")
    assert events[-1]["error"].endswith("It did so twice, so the job is not run again.")
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 2
    assert provider.prefixes == [""]  # the model was asked once: by the next job
    assert events_next[-1]["type"] == "job_completed"
