"""REST routes: upload a document with a prompt, read a job or a page of them, check health.

What each answers is a model of doclane/responses.py, which the OpenAPI schema is made from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from doclane.auth import AccessDep, UserDep
from doclane.errors import JobNotFound
from doclane.intake import parse_idempotency_key, submit
from doclane.jobs import Job, JobStatus
from doclane.limits import check_upload
from doclane.responses import (
    Health,
    HealthResponse,
    JobList,
    JobListResponse,
    JobResponse,
    JobView,
    Queued,
    QueuedResponse,
    errors,
)
from doclane.retention import delete_or_cancel
from doclane.services import ServicesDep
from doclane.uploads import SMALL_BODY, BodyTimeouts, check_content_length, receive_form

router = APIRouter(prefix="/api")

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A PDF, CSV or image (PNG, JPEG, WebP, …)",
                        },
                        "prompt": {
                            "type": "string",
                            "description": "The question; empty means a summary",
                        },
                        "priority": {
                            "type": "integer",
                            "default": 0,
                            "description": "Higher runs first",
                        },
                        "scheduled_at": {
                            "type": "string",
                            "format": "date-time",
                            "description": "ISO 8601; no time zone means UTC",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/upload",
    openapi_extra=_UPLOAD_BODY,
    responses=errors(
        400,
        401,
        403,
        408,
        413,
        415,
        422,
        429,
        503,
        507,
        e400="No `file` field, an empty file, a body that is not multipart, or a bad "
        "`Idempotency-Key`",
        e422="A damaged or protected PDF, a file over a reader limit, a non-integer "
        "`priority`, a bad `scheduled_at`, a prompt over `DOCLANE_MAX_PROMPT_CHARS`",
        e429="`DOCLANE_UPLOADS_PER_MINUTE` or `DOCLANE_MAX_ACTIVE_JOBS` reached "
        "(with `Retry-After`)",
    ),
)
async def upload(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Any 1-255 printable ASCII characters: a retry with the same key gets "
            "the first upload's job, and no second job is queued"
        ),
    ] = None,
) -> QueuedResponse:
    """Queue a document and a prompt; the answer streams over `WS /ws`."""
    settings = services.settings
    key = parse_idempotency_key(idempotency_key)
    length = check_content_length(request.headers.get("content-length"), settings.max_upload_bytes)
    if key is not None and (job := await services.store.find_by_idempotency_key(key, user.name)):
        return _queued(job)  # a retry: its body is never read (the server discards it)
    if length is None or length > SMALL_BODY:  # 429 before a large body is read
        await check_upload(services.store, settings, user.name)
    form = await receive_form(
        request.headers.get("content-type", ""),
        request.stream(),
        services.storage.spool_dir,
        settings.max_upload_bytes,
        BodyTimeouts(settings.upload_idle_timeout_seconds, settings.upload_deadline_seconds),
    )
    # The store enforces the limits as it queues the job, and wakes idle workers.
    job = await submit(form, settings, services.store, services.storage, key, user.name)
    return _queued(job)


def _queued(job: Job) -> QueuedResponse:
    """The upload's answer: the same for a retry as for the first time."""
    return QueuedResponse(data=Queued(job_id=job.job_id))


@router.get(
    "/jobs",
    responses=errors(400, 401, 422, 503, e400="A `cursor` this server did not give"),
)
async def list_jobs(
    services: ServicesDep,
    user: UserDep,
    status: Annotated[JobStatus | None, Query(description="Only the jobs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page")] = 20,
    cursor: Annotated[
        str | None, Query(description="The `next` of the page before; none for the first")
    ] = None,
) -> JobListResponse:
    """The caller's jobs, newest first, a page at a time (with auth off: every job). Jobs
    uploaded while a client pages never make it see a job twice or miss one."""
    page = await services.store.history(user.scope, status, limit, cursor)
    jobs = [JobView.of(job) for job in page.jobs]
    return JobListResponse(data=JobList(jobs=jobs, next=page.next))


@router.get("/jobs/{job_id}", responses=errors(400, 401, 404, 503))
async def get_job(job_id: str, services: ServicesDep, user: UserDep) -> JobResponse:
    """A job's status, progress and answer (the answer so far while it is processing)."""
    job = await services.store.get(job_id, user.scope)
    if job is None:  # another user's job too: whether it exists is not theirs to know
        raise JobNotFound(job_id)
    return JobResponse.of(job)


@router.delete("/jobs/{job_id}", responses=errors(400, 401, 403, 404, 503))
async def delete_job(job_id: str, services: ServicesDep, user: UserDep) -> JobResponse:
    """Cancel a pending or running job; delete a finished one (its row, events and files).
    Answers with the job: cancelled, or as it was when deleted."""
    job = await delete_or_cancel(services.journal, services.storage, job_id, user.scope)
    return JobResponse.of(job)


@router.post("/jobs/{job_id}/cancel", responses=errors(400, 401, 403, 404, 409, 503))
async def cancel_job(job_id: str, services: ServicesDep, user: UserDep) -> JobResponse:
    """Cancel a pending or running job (a running one stops within a second). Idempotent."""
    job = await services.journal.cancel(job_id, user.scope)
    return JobResponse.of(job)


@router.get("/health", responses=errors(400))
async def health(services: ServicesDep, access: AccessDep) -> HealthResponse:
    """Open to all, keys or not: `auth` says whether the other routes need a key."""
    return HealthResponse(data=Health(worker=services.worker is not None, auth=access.enabled))
