"""Turn a received upload form into a queued job, or a clear 4xx error."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from doclane import sandbox
from doclane.documents import FileType, sniff_head
from doclane.documents import check_upload as check_file
from doclane.documents.spreadsheet import derived_csv
from doclane.errors import DocumentError, InvalidRequest
from doclane.ids import new_job_id
from doclane.jobs import Job, JobStore, NewJob
from doclane.limits import check_upload, create_job
from doclane.offload import run_blocking
from doclane.settings import Settings
from doclane.storage import Storage, upload_key
from doclane.uploads import ReceivedForm

DEFAULT_PROMPT = "Summarise this document."
PRIORITY_LIMIT = 2**31 - 1
MAX_SCHEDULE_AHEAD = timedelta(days=366)
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII


def parse_priority(raw: str | None, highest: int = PRIORITY_LIMIT) -> int:
    """An upload's priority: any integer down to -PRIORITY_LIMIT, up to ``highest``
    (DOCLANE_MAX_PRIORITY), so that no user can jump everyone else's queue."""
    if raw is None or not raw.strip():
        return 0
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise InvalidRequest("priority must be an integer") from None
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise InvalidRequest(f"priority must be between {-PRIORITY_LIMIT} and {PRIORITY_LIMIT}")
    if value > highest:
        raise InvalidRequest(f"priority may be at most {highest}")
    return value


def parse_scheduled_at(raw: str | None, now: float) -> float:
    """Epoch seconds to start at: ISO 8601, no time zone means UTC, the past means now."""
    if raw is None or not raw.strip():
        return now
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidRequest(
            "scheduled_at must be an ISO 8601 date-time, e.g. 2025-01-31T09:30:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when - datetime.fromtimestamp(now, UTC) > MAX_SCHEDULE_AHEAD:
        raise InvalidRequest("scheduled_at may be at most one year ahead")
    return max(now, when.timestamp())


def parse_idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(raw):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters", 400)
    return raw


def parse_prompt(raw: str | None, max_chars: int) -> str:
    prompt = (raw or "").strip()
    if len(prompt) > max_chars:
        raise InvalidRequest(f"prompt is too long: the limit is {max_chars} characters")
    return prompt or DEFAULT_PROMPT


async def submit(
    form: ReceivedForm,
    settings: Settings,
    store: JobStore,
    storage: Storage,
    idempotency_key: str | None = None,
    owner: str = "",
) -> Job:
    """Validate the form and the file, then queue the job within its owner's limits. The file
    is always consumed: stored for the job (with what was derived from it), or deleted on error.

    An upload racing another with the same idempotency key gets that one's job, and its own
    files are deleted: one key, one job, one stored upload."""
    job_id = new_job_id()
    spooled = form.file_path
    saved = False
    try:
        if form.file_name is None:
            raise InvalidRequest("Missing 'file': attach a PDF, CSV or image", 400)
        now = time.time()
        prompt = parse_prompt(form.fields.get("prompt"), settings.max_prompt_chars)
        priority = parse_priority(form.fields.get("priority"), settings.max_priority)
        run_at = parse_scheduled_at(form.fields.get("scheduled_at"), now)
        file_type = sniff_head(form.head)  # kept as the body arrived: no read
        if file_type is not FileType.TEXT_TABLE:  # a native parser must vouch for the file
            await check_upload(store, settings, owner)  # before a reader process starts
            spooled = await form.on_disk(storage.spool_dir)
            await _check(spooled, file_type, settings)
        key = upload_key(job_id, file_type.value)
        saved = True
        if spooled is None:  # a small text table, held in memory: one write, no move
            assert form.held is not None
            await storage.write(key, form.held)
        else:
            await _save(storage, spooled, key, file_type)
            spooled = None
        new = NewJob(
            job_id,
            form.file_name,
            key,
            file_type.kind,
            prompt,
            priority,
            run_at,
            idempotency_key,
            owner,
        )
        job = await create_job(store, settings, new)
        if job.job_id != job_id:
            await storage.delete_job(job_id)
        return job
    except BaseException:
        with anyio.CancelScope(shield=True):  # off the event loop, even when cancelled
            if spooled is not None:
                await run_blocking(remove_upload, spooled)
            if saved:
                await storage.delete_job(job_id)
        raise


async def _check(path: Path, file_type: FileType, settings: Settings) -> None:
    """Open the file in a reader process, under the same limits as a job's reading (the whole
    check counts as one step), so that most bombs are a 422 here rather than a failed job."""
    limits = settings.reader_limits
    try:
        await sandbox.read(
            file_type.noun,
            dataclasses.replace(limits, timeout_seconds=limits.step_seconds),
            None,
            check_file,
            path,
            file_type,
            settings.document_limits,
        )
    except DocumentError as exc:
        raise InvalidRequest(exc.message) from exc


async def _save(storage: Storage, spooled: Path, key: str, file_type: FileType) -> None:
    """Store the upload, and the CSV the check derived from a spreadsheet beside it, where the
    reader looks for it (``derived_csv`` of the upload's local path)."""
    if file_type is FileType.SPREADSHEET:  # its check made the CSV (or refused the file)
        await storage.save(derived_csv(Path(key)).as_posix(), derived_csv(spooled))
    await storage.save(key, spooled)


def remove_upload(path: Path) -> None:
    """Delete a spooled upload and every file derived from it."""
    derived_csv(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
