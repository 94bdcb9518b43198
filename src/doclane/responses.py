"""What the REST routes answer, as pydantic models: the one source of the JSON they send and of
the OpenAPI schema at ``/docs`` (so neither can drift from the other).

Every answer is the seed contract's envelope: ``{"success": true, "data": …}``, or
``{"success": false, "error": "…"}`` (:class:`ErrorBody`, made in one handler, doclane/app.py).
Field order is the order the seed documents, and the JSON is byte for byte what it was when
the routes built dicts by hand (tests/test_openapi.py checks real answers against the schema).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from doclane.jobs import Job, JobStatus

JOB_ID = "8c1d2f7e9a4b4c3d8e5f6a7b8c9d0e1f"
DATE_TIME: dict[str, Any] = {"format": "date-time"}


class ErrorBody(BaseModel):
    """Every error, whatever its status: a message safe to show a user, never a trace."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"success": False, "error": "Job 'x' not found"}]}
    )

    success: Literal[False] = False
    error: str = Field(description="What went wrong, in words for the user")


class Queued(BaseModel):
    """An upload's answer: the same for a retry with the same ``Idempotency-Key``."""

    job_id: str = Field(description="The new job's id", examples=[JOB_ID])
    status: Literal["pending"] = "pending"
    progress: Literal[0] = 0
    message: Literal["File uploaded successfully"] = "File uploaded successfully"


class JobView(BaseModel):
    """A job as the seed contract shows it, and nothing more."""

    job_id: str = Field(examples=[JOB_ID])
    status: JobStatus = Field(
        description="`pending` (queued or scheduled), `processing`, `completed`, `failed` or "
        "`cancelled`",
        examples=["completed"],
    )
    progress: int = Field(ge=0, le=100, description="Never goes down; 100 when completed")
    file_name: str = Field(description="The uploaded file's name, sanitised", examples=["a.pdf"])
    created_at: str = Field(
        description="When it was uploaded (UTC)",
        examples=["2026-11-26T01:20:09Z"],
        json_schema_extra=DATE_TIME,
    )
    completed_at: str | None = Field(
        description="When it ended (UTC): completed, failed or cancelled; else null",
        examples=["2026-11-26T01:20:12Z"],
        json_schema_extra=DATE_TIME,
    )
    ai_response: str = Field(
        description="The answer; the answer so far while processing",
        examples=["Revenue in 2024 was 4.2 million dollars (p. 2)."],
    )

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls.model_validate(job.public())


class JobList(BaseModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[JobView] = Field(description="Each job as `GET /api/jobs/{job_id}` shows it")
    next: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page",
        examples=["ajEuMTI"],
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    worker: bool = Field(description="Whether this process runs jobs too")
    auth: bool = Field(description="Whether the other routes need an API key")


class Readiness(BaseModel):
    """Each check's result: `ok`, or what went wrong."""

    ready: bool
    database: str = Field(examples=["ok"])
    bus: str = Field(description="The event bus", examples=["ok"])
    model: str | None = Field(
        default=None,
        description="The model or its provider; only where a worker runs",
        examples=["ok"],
    )


class QueuedResponse(BaseModel):
    success: Literal[True] = True
    data: Queued


class JobResponse(BaseModel):
    success: Literal[True] = True
    data: JobView

    @classmethod
    def of(cls, job: Job) -> JobResponse:
        return cls(data=JobView.of(job))


class JobListResponse(BaseModel):
    success: Literal[True] = True
    data: JobList


class HealthResponse(BaseModel):
    success: Literal[True] = True
    data: Health


class ReadyResponse(BaseModel):
    success: Literal[True] = True
    data: Readiness


class NotReady(BaseModel):
    """503 from ``GET /api/ready``: the checks, and an error naming the failing ones."""

    success: Literal[False] = False
    data: Readiness
    error: str = Field(examples=["Not ready: database: connection refused"])


# Why each status may be sent; a route declares those it can send (see :func:`errors`).
ERRORS = {
    400: "A bad request: an unknown `Host` (every route), or as the route says",
    401: "Auth is on and the `Authorization: Bearer` key is missing or wrong "
    "(with `WWW-Authenticate: Bearer`)",
    403: "A cross-site `Origin`",
    404: "No such job, or another user's",
    408: "The body stalled, or took too long",
    409: "The job already ended otherwise",
    413: "The file is over `DOCLANE_MAX_UPLOAD_BYTES`",
    415: "Not a PDF, a text CSV, a spreadsheet or an image (judged by the bytes)",
    422: "A field or a file that cannot be accepted",
    429: "A per-user limit is reached (with `Retry-After`)",
    503: "The job database is unreachable (with `Retry-After`)",
    507: "The server could not store the file (disk full)",
}


def errors(*codes: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer these statuses, each with
    :class:`ErrorBody`; ``why`` (``e400="…"``) says more than :data:`ERRORS` for this route.
    Any other error (a 500) is the same body: declared as ``default``."""
    declared: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": why.get(f"e{code}", ERRORS[code])}
        for code in codes
    }
    declared["default"] = {"model": ErrorBody, "description": "Any other error (500)"}
    return declared
