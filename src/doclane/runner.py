"""One attempt at one job: extract the document, build the context, stream the answer.

Every event is first written to the job's row and log (progress, answer so far, seq) and only
then published, so what a client has seen is always on disk: ``GET /api/jobs/{id}`` and a
resuming client never lose anything the stream showed. A re-run after a crash continues the
answer the previous run persisted instead of starting over, so ``partial`` only ever grows.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import anyio
import anyio.from_thread

from doclane import messages
from doclane.context import SECTION_PROMPT, Section, best_quote, build_messages, summary_sections
from doclane.documents import Document, Limits, extract
from doclane.documents.tablequery import compute
from doclane.errors import DoclaneError, LeaseLost, ProcessingError, TransientError
from doclane.events import Event, EventBus
from doclane.jobs import Change, DocumentKind, Job, JobStatus, JobStore
from doclane.offload import run_blocking
from doclane.providers import Provider
from doclane.settings import Settings

log = logging.getLogger(__name__)

# Progress bands: extraction fills 1-30, the model reading the prompt 35, tokens 40-99.
EXTRACT_START, EXTRACT_END = 1, 30
PROMPT_READ = 35
TOKENS_START, TOKENS_END = 40, 99
CHARS_PER_TOKEN = 3  # to estimate how much of the token budget a resumed answer used


class JobRun:
    """One attempt at a job: its events (each persisted before it is sent) and its stop flag."""

    def __init__(
        self, job: Job, worker_id: str, store: JobStore, bus: EventBus, time_limit: float
    ) -> None:
        self.job = job
        self.worker_id = worker_id
        self.store = store
        self.bus = bus
        self.progress = job.progress
        self.answer = job.answer  # what a previous attempt already streamed
        self.deadline = time.monotonic() + time_limit
        self.stopped = threading.Event()  # set when the run must end (cancelled, lease lost)

    def should_stop(self) -> bool:
        """Polled by blocking work between pages and tokens."""
        return self.stopped.is_set() or time.monotonic() > self.deadline

    async def _emit(self, change: Change, event: Event) -> None:
        logged = await self.store.emit(self.job.job_id, self.worker_id, change, event)
        await self.bus.publish(logged)

    async def report(self, progress: int, stage: str) -> None:
        if progress <= self.progress:
            return
        self.progress = progress
        await self._emit(
            Change(progress=progress), messages.job_update(self.job.job_id, progress, stage)
        )

    async def add_chunk(self, chunk: str) -> None:
        self.answer += chunk
        await self._emit(
            Change(answer=self.answer), messages.ai_chunk(self.job.job_id, chunk, self.answer)
        )

    async def complete(self) -> None:
        await self._emit(
            Change(progress=100, answer=self.answer, status=JobStatus.COMPLETED),
            messages.job_completed(self.job.job_id, self.answer),
        )

    async def fail(self, error: str) -> None:
        await self._emit(
            Change(status=JobStatus.FAILED, error=error),
            messages.failed_event(self.job.job_id, error),
        )

    async def retry(self, error: str, delay: float) -> None:
        stage = f"{error}; retrying in {delay:.0f} s"
        await self._emit(
            Change(status=JobStatus.PENDING, run_at=time.time() + delay),
            messages.job_update(self.job.job_id, self.progress, stage, status="pending"),
        )


async def run_job(run: JobRun, provider: Provider, settings: Settings, cpu: anyio.Lock) -> None:
    """Take the job to an end: completed, failed, or queued for a retry.

    ``cpu`` is held by the worker's CPU-heavy stages (OCR, local inference), so that on a small
    machine they take turns instead of fighting over the same cores. LeaseLost propagates: the
    job was cancelled or another worker owns it now.
    """
    job = run.job
    try:
        with anyio.fail_after(max(0.0, run.deadline - time.monotonic())):
            await run.report(EXTRACT_START, "Reading the document")
            # OCR (PDFs, images) takes its turn on the CPU; DuckDB's table scans are light.
            async with cpu if job.kind is not DocumentKind.CSV else nullcontext():
                document = await _extract(run, settings.document_limits)
            await run.report(PROMPT_READ, "Reading the question")
            figures = await _compute(run)
            if figures and not run.answer:  # a re-run's answer already starts with them
                await run.add_chunk(figures + "\n\n")
            async with cpu if provider.uses_local_cpu else nullcontext():
                await _answer(run, document, figures, provider, settings)
        await run.complete()
    except LeaseLost:
        raise
    except TimeoutError:
        await run.fail(f"The job took longer than its limit of {settings.job_timeout_seconds:g} s")
    except TransientError as exc:
        if job.attempts >= settings.max_attempts:
            await run.fail(f"{exc.message} (gave up after {job.attempts} attempts)")
        else:
            delay = settings.retry_base_seconds * 2 ** (job.attempts - 1)
            log.info("job %s: %s; retry in %.0f s", job.job_id, exc.message, delay)
            await run.retry(exc.message, delay)
    except DoclaneError as exc:
        log.info("job %s failed: %s", job.job_id, exc.message)
        await run.fail(exc.message)
    except Exception:
        log.exception("job %s crashed", job.job_id)
        await run.fail("Internal error while processing the document")


async def _extract(run: JobRun, limits: Limits) -> Document:
    def progress(done: int, total: int, stage: str) -> None:
        value = EXTRACT_START + (EXTRACT_END - EXTRACT_START) * done // max(total, 1)
        if value > run.progress:
            anyio.from_thread.run(run.report, value, stage)

    job = run.job
    return await run_blocking(
        extract, Path(job.file_path), job.kind, progress, run.should_stop, limits
    )


async def _compute(run: JobRun) -> str:
    """Exact figures the question asks for, computed over the whole table ("" if none)."""
    if run.job.kind is not DocumentKind.CSV:
        return ""
    computed = await run_blocking(compute, Path(run.job.file_path), run.job.prompt)
    return computed.markdown() if computed else ""


async def _answer(
    run: JobRun, document: Document, figures: str, provider: Provider, settings: Settings
) -> None:
    budget = settings.context_budget_tokens
    sections = summary_sections(document, run.job.prompt, budget)
    if sections:
        await _summarise(run, sections, provider, settings)
    else:
        messages_ = build_messages(document, run.job.prompt, budget, figures)
        band = (TOKENS_START, TOKENS_END)
        await _stream(run, provider, settings, messages_, run.answer, band)
    if not run.answer.strip():
        raise ProcessingError("The model returned an empty answer")
    quote = None if sections else best_quote(document, run.job.prompt)
    if quote is not None and quote.text not in run.answer:
        await run.add_chunk(f"\n\n> Source, p. {quote.page}: {quote.text}")


async def _summarise(
    run: JobRun, sections: list[Section], provider: Provider, settings: Settings
) -> None:
    """A long document's summary, section by section ("map"), each under its page range, so
    the whole document is covered and the first lines arrive as fast as for a short one.

    A re-run skips the sections the answer already has and continues the one it stopped in.
    """
    span = (TOKENS_END - TOKENS_START) / len(sections)
    for index, section in enumerate(sections):
        following = sections[index + 1].heading if index + 1 < len(sections) else None
        if following is not None and following in run.answer:
            continue  # finished by an earlier run
        if section.heading in run.answer:
            prefix = run.answer.split(section.heading, 1)[1]
        else:
            await run.add_chunk(("\n\n" if run.answer else "") + section.heading)
            prefix = ""
        band = (TOKENS_START + int(span * index), TOKENS_START + int(span * (index + 1)))
        messages_ = build_messages(section.document, SECTION_PROMPT, settings.context_budget_tokens)
        await _stream(run, provider, settings, messages_, prefix, band, len(sections))


async def _stream(
    run: JobRun,
    provider: Provider,
    settings: Settings,
    messages_: list[dict[str, str]],
    prefix: str,
    band: tuple[int, int],
    parts: int = 1,
) -> None:
    """Append the model's continuation of ``prefix`` to the answer, in coalesced chunks."""
    interval = settings.chunk_interval_ms / 1000
    max_tokens = settings.max_answer_tokens // parts
    generated = len(prefix) // CHARS_PER_TOKEN
    remaining = max(0, max_tokens - generated)
    if not remaining:
        return
    pending = ""
    last_flush = time.monotonic()
    stream = provider.stream(messages_, remaining, prefix=prefix)
    try:
        async for piece in stream:
            pending += piece
            generated += 1
            if time.monotonic() - last_flush >= interval:
                await run.add_chunk(pending)
                pending, last_flush = "", time.monotonic()
                low, high = band
                await run.report(
                    low + (high - low) * min(generated, max_tokens) // max_tokens,
                    "Writing the answer",
                )
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    if pending:
        await run.add_chunk(pending)
