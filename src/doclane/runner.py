"""One attempt at one job: read the document, build the context, stream the answer.

Every event goes through the journal: first written to the job's row and log (progress, answer
so far, seq), then published, so what a client has seen is always on disk: ``GET
/api/jobs/{id}`` and a resuming client never lose anything the stream showed. A re-run after a
crash continues the answer the previous run persisted instead of starting over, so ``partial``
only ever grows.

A run's events are written by a writer beside it (:meth:`JobRun.write_events`), in order, all
those waiting at once in one transaction: the job goes on while its progress is written, and a
burst of events (a job answering at once) costs one commit, not one each. The final event is
waited for; a write that failed (LeaseLost: cancelled, or the lease lost) is raised at the
job's next event, and whatever it sent meanwhile is dropped, never written nor published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import anyio

from doclane import messages, metrics, sandbox
from doclane.context import (
    SECTION_PROMPT,
    Budget,
    Section,
    Shape,
    answer_shape,
    build_messages,
    pages_read,
    stop_at,
    summary_sections,
)
from doclane.documents import NOUNS, Document, Figures, Page, read_document
from doclane.errors import (
    DoclaneError,
    LeaseLost,
    ProcessingError,
    ReaderCrashed,
    StoreUnavailable,
    TransientError,
)
from doclane.events import Event
from doclane.grounding import Grounding, figures_lead, ground
from doclane.jobs import Change, DocumentKind, Job, JobStatus
from doclane.journal import Journal
from doclane.numberguard import UNVERIFIED, NumberGuard, Support
from doclane.offload import run_blocking
from doclane.providers import Provider
from doclane.settings import Settings
from doclane.storage import Storage

log = logging.getLogger(__name__)

# Progress bands: extraction fills 1-30, the model reading the prompt 35, tokens 40-99.
EXTRACT_START, EXTRACT_END = 1, 30
PROMPT_READ = 35
TOKENS_START, TOKENS_END = 40, 99
CHARS_PER_TOKEN = 3  # to estimate how much of the token budget a resumed answer used
READER_DEATHS = 2  # runs whose reader process died, after which a job is poison
MAX_UNWRITTEN = 64  # events a run may have waiting for its writer before it waits too


class JobRun:
    """One attempt at a job: its events (each persisted before it is sent) and its stop flag."""

    def __init__(
        self, job: Job, worker_id: str, journal: Journal, storage: Storage, time_limit: float
    ) -> None:
        self.job = job
        self.storage = storage  # where the job's upload is
        self.worker_id = worker_id
        self.journal = journal
        self.progress = job.progress
        self.stage = ""  # of the last job_update this run sent
        self.answer = job.answer  # what a previous attempt already streamed
        self.started = time.monotonic()
        self.deadline = self.started + time_limit
        self.stopped = threading.Event()  # set when the run must end (cancelled, lease lost)
        self.outcome = "stopped"  # how the run ended, for the metrics: see complete() etc.
        # The final write is on its way: it checks the lease itself (LeaseLost if another
        # worker took the job), and a heartbeat's LeaseLost may be that write having landed.
        self.finishing = False
        self._chunked = False
        self._unwritten: list[tuple[Change, Event]] = []  # for write_events, in order
        self._writing = 0  # events of the batch being written
        self._work = anyio.Event()  # set: events wait for the writer
        self._wrote = anyio.Event()  # set: a batch was written (or failed)
        self._failed: Exception | None = None  # a write's error the job has not heard of yet

    def should_stop(self) -> bool:
        """Polled by blocking work between pages and tokens."""
        return self.stopped.is_set() or time.monotonic() > self.deadline

    async def _emit(self, change: Change, event: Event, wait: bool = False) -> None:
        """Hand the event to the writer; with ``wait``, return once it is written and sent."""
        self._raise_failure()
        self._unwritten.append((change, event))
        self._work.set()
        if wait or len(self._unwritten) >= MAX_UNWRITTEN:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every event so far is written and published; raise a write's error."""
        while self._unwritten or self._writing:
            self._wrote = anyio.Event()
            await self._wrote.wait()
            self._raise_failure()
        self._raise_failure()

    def _raise_failure(self) -> None:
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    async def write_events(self) -> None:
        """Write the run's events through the journal, in order, as many at a time as wait:
        the worker runs this beside the job. After a failed write, what the job sent before it
        heard of the failure is dropped (see the module docstring)."""
        while True:
            while not self._unwritten:
                self._work = anyio.Event()
                await self._work.wait()
            batch, self._unwritten = self._unwritten, []
            self._writing = len(batch)
            try:
                if self._failed is None:
                    await self.journal.record_many(self.job.job_id, self.worker_id, batch)
            except Exception as exc:  # LeaseLost, StoreUnavailable, …: the job's to handle
                self._failed = exc
            finally:
                self._writing = 0
                self._wrote.set()

    async def report(self, progress: int, stage: str, step: int = 1) -> None:
        """A job_update, if progress rose: in the stage of the last one, by ``step`` points."""
        if progress <= self.progress or (stage == self.stage and progress < self.progress + step):
            return
        self.progress, self.stage = progress, stage
        await self._emit(
            Change(progress=progress), messages.job_update(self.job.job_id, progress, stage)
        )

    async def add_chunk(self, chunk: str) -> None:
        self.answer += chunk
        await self._emit(
            Change(answer=self.answer), messages.ai_chunk(self.job.job_id, chunk, self.answer)
        )
        if not self._chunked:
            self._chunked = True
            metrics.FIRST_CHUNK_SECONDS.observe(time.monotonic() - self.started)

    async def complete(self) -> None:
        await self._finish(
            Change(progress=100, answer=self.answer, status=JobStatus.COMPLETED),
            messages.job_completed(self.job.job_id, self.answer),
            "completed",
        )

    async def fail(self, error: str) -> None:
        await self._finish(
            Change(status=JobStatus.FAILED, error=error),
            messages.failed_event(self.job.job_id, error),
            "failed",
        )

    async def retry(self, error: str, delay: float) -> None:
        stage = f"{error}; retrying in {delay:.0f} s"
        await self._finish(
            Change(status=JobStatus.PENDING, retry_in=delay),
            messages.job_update(self.job.job_id, self.progress, stage, status="pending"),
            "retried",
        )

    async def _finish(self, change: Change, event: Event, outcome: str) -> None:
        """The run's last write: once it is written the job is no longer this worker's, so a
        heartbeat then finds the lease gone (see ``finishing``)."""
        self.finishing = True
        await self._emit(change, event, wait=True)
        self.outcome = outcome


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
                document, figures = await _read(run, settings, provider.supports_vision)
            await run.report(PROMPT_READ, "Reading the question")
            plan = await _open(run, document, figures, provider, settings)
            async with cpu if provider.uses_local_cpu else nullcontext():
                await _answer(run, plan, provider, settings)
        await run.complete()
    except (LeaseLost, StoreUnavailable):  # no verdict: the job runs again when it can
        raise
    except TimeoutError:
        await run.fail(f"The job took longer than its limit of {settings.job_timeout_seconds:g} s")
    except ReaderCrashed as exc:
        if job.attempts >= min(READER_DEATHS, settings.max_attempts):
            log.warning(
                "job %s: reader died on %d runs; failed as poison", job.job_id, job.attempts
            )
            await run.fail(f"{exc.message}. It did so twice, so the job is not run again.")
        else:
            await run.retry(exc.message, settings.retry_base_seconds)
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


async def _read(run: JobRun, settings: Settings, vision: bool) -> tuple[Document, Figures]:
    """The document (with ``vision``, an image's picture too), and a table's computed figures
    (or the note that none could be), from a reader process (doclane.sandbox):
    a bomb in the file costs this job, never the worker."""

    async def progress(done: int, total: int, stage: str) -> None:
        await run.report(
            EXTRACT_START + (EXTRACT_END - EXTRACT_START) * done // max(total, 1), stage
        )

    job = run.job
    started = time.monotonic()
    async with run.storage.local_path(job.upload_key) as path:  # only while it is read
        document, figures = await sandbox.read(
            NOUNS[job.kind],
            settings.reader_limits,
            progress,
            read_document,
            path,
            job.kind,
            job.prompt,
            settings.document_limits,
            vision,
        )
    if document.page_count:
        metrics.PAGES_READ.inc(document.page_count)
        metrics.OCR_PAGES.inc(document.ocr_pages)
        metrics.READ_SECONDS.inc(time.monotonic() - started)
    return document, figures


@dataclass(frozen=True, slots=True)
class _Plan:
    """How an answer goes: what it opened with, what the model reads, how much it may say."""

    question: tuple[Document, str, Figures]  # what the model reads: document, prompt, figures
    opening: str  # what doclane itself sent first: the figures, or the lead's quote
    shape: Shape
    keep: Callable[[str], bool] | None  # a short answer after the opening: kept only if sound
    source: Grounding | None  # a weaker match, shown after the model's answer
    sections: list[Section]  # a long document's summary, part by part


async def _open(
    run: JobRun, document: Document, figures: Figures, provider: Provider, settings: Settings
) -> _Plan:
    """Grounded first: what doclane knows exactly opens the answer, before the model runs (and
    before it waits for the CPU): a table's computed figures, else the line of the document
    that answers the question, quoted with its page. A re-run's answer already has it.

    A table question nothing could be computed for opens with the note that says so and names
    its columns; the model then answers from the table's profile, through the number guard."""
    prompt = run.job.prompt
    sections = await run_blocking(
        summary_sections, document, prompt, settings.context_budget_tokens, provider.count_tokens
    )
    table = figures.exact or figures.note
    found = None if table or sections else await run_blocking(ground, document, prompt)
    lead = found if found is not None and found.leads else None
    if figures.exact:
        lead = figures_lead(figures.exact, prompt)
        opening = figures.exact
        reads = Document(document.kind, "")  # the figures alone: no profile to restate
    elif figures.note:
        opening, reads = figures.note, document
    elif lead is not None:
        opening = lead.quote(document.kind)
        reads = Document(document.kind, "", [Page(lead.page, lead.text)], document.image)
    else:
        opening, reads = "", document
    if opening and not run.answer:
        await run.add_chunk(opening)
    shape = answer_shape(prompt, lead is not None, settings.max_answer_tokens)
    # After the opening, a short answer is held until the model has said it, and left out
    # unless it is sound: no figure the model was not given, and the same thing the opening
    # says. The facts are already on the user's screen.
    keep = lead.agrees if lead is not None and shape.sentences is not None else None
    source = found if found is not None and lead is None else None
    return _Plan((reads, prompt, figures), opening, shape, keep, source, sections)


async def _answer(run: JobRun, plan: _Plan, provider: Provider, settings: Settings) -> None:
    """Phrased second: the model reads the opening alone (or, without one, the document's
    passages) and writes what ``plan.shape`` allows, through the number guard (_stream)."""
    if plan.sections:
        await _summarise(run, plan.sections, provider, settings)
        return
    opening = plan.opening
    own = run.answer.removeprefix(opening) if run.answer.startswith(opening) else run.answer
    # A blank line between the opening and the model's words, sent with its first chunk.
    lead_in = "\n\n" if opening and not own.strip() and not run.answer.endswith("\n") else ""
    band = (TOKENS_START, TOKENS_END)
    prefix = own.lstrip("\n")
    await _stream(
        run, provider, settings, plan.question, prefix, band, plan.shape, lead_in, plan.keep
    )
    if not run.answer.strip():
        raise ProcessingError("The model returned an empty answer")
    source = plan.source
    if source is not None and source.text not in run.answer:
        await run.add_chunk(f"\n\n{source.quote(plan.question[0].kind)}")


async def _summarise(
    run: JobRun, sections: list[Section], provider: Provider, settings: Settings
) -> None:
    """A long document's summary, section by section ("map"), each under its page range, so
    the whole document is covered and the first lines arrive as fast as for a short one.

    A re-run skips the sections the answer already has and continues the one it stopped in.
    """
    span = (TOKENS_END - TOKENS_START) / len(sections)
    shape = Shape(settings.max_answer_tokens // len(sections), None)
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
        question = (section.document, SECTION_PROMPT, Figures())
        await _stream(run, provider, settings, question, prefix, band, shape)


MODEL_FAILED = "The language model could not answer this question"


# Every ai_chunk carries the whole answer so far (``partial``: the seed front end needs it), so
# a chunk per DOCLANE_CHUNK_INTERVAL_MS would cost each socket O(n^2) bytes for an n-token
# answer. A chunk also waits until it adds 1/CHUNK_GROWTH of what was sent (or MAX_CHUNK_WAIT
# passed): the partials then add up to at most CHUNK_GROWTH + 1 answers, so the bytes a
# socket gets per token stay bounded however long the answer (docs/security.md).
CHUNK_GROWTH = 8
MAX_CHUNK_WAIT = 1.0  # seconds: a slow model still shows progress this often
# While the answer streams, its chunks show it moving: a job_update follows a chunk only when
# the progress bar rose this many points, not after every chunk, which doubled the messages
# every socket gets (and the writes of the job's log).
WRITING_STEP = 5


def _chunk_due(pending: str, sent: str, last_flush: float, interval: float) -> bool:
    waited = time.monotonic() - last_flush
    return waited >= interval and (
        len(pending) * CHUNK_GROWTH >= len(sent) or waited >= MAX_CHUNK_WAIT
    )


async def _stream(
    run: JobRun,
    provider: Provider,
    settings: Settings,
    question: tuple[Document, str, Figures],
    prefix: str,
    band: tuple[int, int],
    shape: Shape,
    lead_in: str = "",
    keep: Callable[[str], bool] | None = None,
) -> None:
    """Append the model's continuation of ``prefix`` to the answer, checked by the number
    guard, in coalesced chunks; ``lead_in`` goes before its first chunk, if it writes any.
    With ``keep``, the continuation is sent whole at the end, if it has no unverified figure
    and ``keep`` accepts it, or not at all.

    The guard lets through the figures, dates and pages of what the model was given to read
    (and the question's): a document's text it was not shown, it can only have guessed.

    ``question`` is the document, the prompt and the figures computed for it: they are fitted
    to the model's window around the answer's own tokens (``prefix`` included). The model is
    stopped when it has written what ``shape`` allows. A provider's failure is logged at
    WARNING in its own words; the user gets a fixed message, except for a failure worth
    retrying, whose message names no more than what failed (a time-out, a 429).
    """
    interval = settings.chunk_interval_ms / 1000
    max_tokens = shape.tokens
    generated = len(prefix) // CHARS_PER_TOKEN
    # At most half the window goes to the answer, so a large setting cannot crowd out the rest.
    remaining = min(max(0, max_tokens - generated), provider.context_tokens // 2)
    if not remaining or stop_at(prefix, shape.sentences) is not None:
        return
    document, prompt, figures = question
    budget = Budget(
        provider.count_tokens, provider.context_tokens, remaining, settings.context_budget_tokens
    )
    messages_ = await run_blocking(build_messages, document, prompt, budget, figures, prefix)
    prompt_tokens = await run_blocking(provider.count_tokens, _text_of(messages_))
    guard = NumberGuard(Support([m["content"] for m in messages_], pages_read(messages_)), prefix)
    written = prefix  # the model's own words so far, unchecked: where it must stop
    pending = ""
    last_flush = time.monotonic()
    images = [document.image] if document.image else []  # only a vision provider's reader sets it
    stream = provider.stream(messages_, remaining, prefix=prefix, images=images)
    started, pieces = time.monotonic(), 0
    try:
        async for piece in stream:
            if not written.strip():
                piece = piece.lstrip()  # the answer starts at its first word
            end = stop_at(written + piece, shape.sentences)
            if end is not None:
                piece = piece[: max(0, end - len(written))]
            written += piece
            pending += guard.feed(piece)
            generated += 1
            pieces += 1
            if end is not None:
                break
            if keep is None and pending and _chunk_due(pending, run.answer, last_flush, interval):
                await run.add_chunk(lead_in + pending)
                lead_in, pending, last_flush = "", "", time.monotonic()
                low, high = band
                await run.report(
                    low + (high - low) * min(generated, max_tokens) // max_tokens,
                    "Writing the answer",
                    WRITING_STEP,
                )
    except ProcessingError as exc:
        job = run.job
        said = " ".join([exc.message, *getattr(exc, "__notes__", ())])
        log.warning(
            "job %s (%s %r, %d-character prompt, attempt %d), %s provider: %s",
            job.job_id,
            job.kind.value,
            job.file_name,
            len(job.prompt),
            job.attempts,
            provider.name,
            said,
        )
        if isinstance(exc, TransientError):
            raise
        raise ProcessingError(MODEL_FAILED) from exc
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        metrics.PROMPT_TOKENS.inc(prompt_tokens)
        metrics.GENERATED_TOKENS.inc(pieces)  # a streamed piece is a token, or close to one
        metrics.GENERATION_SECONDS.inc(time.monotonic() - started)
    pending += guard.close()
    if guard.removed:
        log.info(
            "job %s: %d unsupported figure(s) marked unverified: %s",
            run.job.job_id,
            len(guard.removed),
            ", ".join(guard.removed[:10]),
        )
    if keep is not None and (UNVERIFIED in pending or not keep(pending)):
        log.info("job %s: the model's sentence left out: %r", run.job.job_id, pending[:200])
        return
    if pending.strip():
        await run.add_chunk(lead_in + pending)


def _text_of(chat: list[dict[str, str]]) -> str:
    """A request's messages as one text, to count its tokens (the template's few aside)."""
    return "\n".join(message["content"] for message in chat)
