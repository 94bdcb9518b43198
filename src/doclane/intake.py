"""Turn a received upload form into a queued job, or a clear 4xx error."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from doclane.documents import inspect_upload
from doclane.errors import DocumentError, InvalidRequest
from doclane.jobs import Job, JobStore, NewJob
from doclane.offload import run_blocking
from doclane.settings import Settings
from doclane.uploads import ReceivedForm

DEFAULT_PROMPT = "Summarise this document."
PRIORITY_LIMIT = 2**31 - 1
MAX_SCHEDULE_AHEAD = timedelta(days=366)


def parse_priority(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 0
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise InvalidRequest("priority must be an integer") from None
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise InvalidRequest(f"priority must be between {-PRIORITY_LIMIT} and {PRIORITY_LIMIT}")
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


def parse_prompt(raw: str | None, max_chars: int) -> str:
    prompt = (raw or "").strip()
    if len(prompt) > max_chars:
        raise InvalidRequest(f"prompt is too long: the limit is {max_chars} characters")
    return prompt or DEFAULT_PROMPT


async def submit(form: ReceivedForm, settings: Settings, store: JobStore) -> Job:
    """Validate the form and the file, then queue the job. The spooled file is always consumed:
    moved into place for the job, or deleted on error."""
    spooled = form.file_path
    try:
        if spooled is None or form.file_name is None:
            raise InvalidRequest("Missing 'file': attach a PDF, CSV or image", 400)
        now = time.time()
        prompt = parse_prompt(form.fields.get("prompt"), settings.max_prompt_chars)
        priority = parse_priority(form.fields.get("priority"))
        run_at = parse_scheduled_at(form.fields.get("scheduled_at"), now)
        try:
            kind = await run_blocking(inspect_upload, spooled, settings.document_limits)
        except DocumentError as exc:
            raise InvalidRequest(exc.message) from exc
        job_id = str(uuid.uuid4())
        stored = settings.uploads_dir / job_id
        spooled.rename(stored)
        spooled = stored
        return await store.create(
            NewJob(job_id, form.file_name, str(stored), kind, prompt, priority, run_at)
        )
    except BaseException:
        if spooled is not None:
            spooled.unlink(missing_ok=True)
        raise
