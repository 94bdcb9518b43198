"""One attempt at one job: extract the document, build the context, stream the answer.

Every event is first written to the job row (progress, answer so far, seq) and only then
published, so what a client has seen is always on disk: ``GET /api/jobs/{id}`` and a reconnect
never lose anything the stream showed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import anyio.from_thread

from doclane.context import build_messages
from doclane.documents import Document, extract
from doclane.errors import DoclaneError, LeaseLost, ProcessingError
from doclane.events import Event, EventBus
from doclane.jobs import Job, JobStatus, JobStore
from doclane.offload import run_blocking
from doclane.providers import Provider
from doclane.settings import Settings

log = logging.getLogger(__name__)

# Progress bands: extraction fills 1-30, the model reading the prompt 35, tokens 40-99.
EXTRACT_START, EXTRACT_END = 1, 30
PROMPT_READ = 35
TOKENS_START, TOKENS_END = 40, 99


def job_event(job: Job, type_: str, **fields: object) -> Event:
    return {"type": type_, "job_id": job.job_id, "seq": job.seq, **fields}


def failed_event(job: Job) -> Event:
    return job_event(job, "job_failed", error=job.error or "Job failed", status=job.status.value)


class JobRun:
    """Publishes one running job's events, each persisted before it is sent."""

    def __init__(self, job: Job, worker_id: str, store: JobStore, bus: EventBus) -> None:
        self.job = job
        self.worker_id = worker_id
        self.store = store
        self.bus = bus
        self.progress = job.progress
        self.answer = ""

    async def _emit(self, type_: str, **fields: object) -> None:
        seq = await self.store.record(self.job.job_id, self.worker_id, self.progress, self.answer)
        await self.bus.publish(
            {"type": type_, "job_id": self.job.job_id, "seq": seq, "status": "processing", **fields}
        )

    async def report(self, progress: int, stage: str) -> None:
        if progress <= self.progress:
            return
        self.progress = progress
        await self._emit("job_update", progress=progress, stage=stage)

    async def add_chunk(self, chunk: str) -> None:
        self.answer += chunk
        await self._emit("ai_chunk", chunk=chunk, partial=self.answer)

    async def complete(self) -> None:
        job = await self.store.finish(
            self.job.job_id, self.worker_id, JobStatus.COMPLETED, self.answer, None
        )
        await self.bus.publish(
            job_event(
                job, "job_completed", ai_response=job.answer, status=job.status.value, progress=100
            )
        )

    async def fail(self, error: str) -> None:
        job = await self.store.finish(
            self.job.job_id, self.worker_id, JobStatus.FAILED, self.answer, error
        )
        await self.bus.publish(failed_event(job))


async def run_job(run: JobRun, provider: Provider, settings: Settings) -> None:
    """Process the job to completion or failure; LeaseLost propagates (someone else owns it)."""
    try:
        await run.report(EXTRACT_START, "Reading the document")
        document = await _extract(run)
        await run.report(PROMPT_READ, "Reading the question")
        await _answer(run, document, provider, settings)
        await run.complete()
    except LeaseLost:
        raise
    except DoclaneError as exc:
        log.info("job %s failed: %s", run.job.job_id, exc.message)
        await run.fail(exc.message)
    except Exception:
        log.exception("job %s crashed", run.job.job_id)
        await run.fail("Internal error while processing the document")


async def _extract(run: JobRun) -> Document:
    def progress(done: int, total: int, stage: str) -> None:
        value = EXTRACT_START + (EXTRACT_END - EXTRACT_START) * done // max(total, 1)
        if value > run.progress:
            anyio.from_thread.run(run.report, value, stage)

    job = run.job
    return await run_blocking(extract, Path(job.file_path), job.kind, progress, lambda: False)


async def _answer(run: JobRun, document: Document, provider: Provider, settings: Settings) -> None:
    messages = build_messages(document, run.job.prompt, settings.context_budget_tokens)
    interval = settings.chunk_interval_ms / 1000
    pending = ""
    pieces = 0
    last_flush = time.monotonic()
    stream = provider.stream(messages, settings.max_answer_tokens)
    try:
        async for piece in stream:
            pending += piece
            pieces += 1
            if time.monotonic() - last_flush >= interval:
                await run.add_chunk(pending)
                pending, last_flush = "", time.monotonic()
                span = TOKENS_END - TOKENS_START
                await run.report(
                    TOKENS_START + span * pieces // settings.max_answer_tokens, "Writing the answer"
                )
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    if pending:
        await run.add_chunk(pending)
    if not run.answer.strip():
        raise ProcessingError("The model returned an empty answer")
