"""REST routes: upload a document with a prompt, read a job, check health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from doclane.errors import JobNotFound
from doclane.intake import submit
from doclane.services import ServicesDep
from doclane.uploads import check_content_length, receive_form

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


@router.post("/upload", openapi_extra=_UPLOAD_BODY)
async def upload(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Queue a document and a prompt; the answer streams over `WS /ws`."""
    settings = services.settings
    check_content_length(request.headers.get("content-length"), settings.max_upload_bytes)
    form = await receive_form(
        request.headers.get("content-type", ""),
        request.stream(),
        settings.uploads_dir,
        settings.max_upload_bytes,
    )
    job = await submit(form, settings, services.store)
    if services.worker is not None:
        services.worker.wake()
    return {
        "success": True,
        "data": {
            "job_id": job.job_id,
            "status": job.status.value,
            "progress": job.progress,
            "message": "File uploaded successfully",
        },
    }


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    """A job's status, progress and answer (the answer so far while it is processing)."""
    job = await services.store.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    return {"success": True, "data": job.public()}


@router.delete("/jobs/{job_id}")
@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    """Cancel a pending or running job (a running one stops within a second). Idempotent."""
    job, event = await services.store.cancel(job_id)
    if event is not None:
        await services.bus.publish(event)
    return {"success": True, "data": job.public()}


@router.get("/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    return {
        "success": True,
        "data": {"status": "ok", "worker": services.worker is not None},
    }
