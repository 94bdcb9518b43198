"""The job events clients receive over ``WS /ws``, built in one place.

The seed contract's fields come first; ``seq`` (added by the job store when it logs the event),
``status``, ``stage`` and ``progress`` on final events are extras an unaware client ignores.
"""

from __future__ import annotations

from doclane.jobs.base import CANCELLED_ERROR, Event


def job_update(job_id: str, progress: int, stage: str, status: str = "processing") -> Event:
    return {
        "type": "job_update",
        "job_id": job_id,
        "progress": progress,
        "status": status,
        "stage": stage,
    }


def ai_chunk(job_id: str, chunk: str, partial: str) -> Event:
    return {
        "type": "ai_chunk",
        "job_id": job_id,
        "chunk": chunk,
        "partial": partial,
        "status": "processing",
    }


def job_completed(job_id: str, answer: str) -> Event:
    return {
        "type": "job_completed",
        "job_id": job_id,
        "ai_response": answer,
        "status": "completed",
        "progress": 100,
    }


def failed_event(job_id: str, error: str) -> Event:
    return {"type": "job_failed", "job_id": job_id, "error": error, "status": "failed"}


def cancelled_event(job_id: str) -> Event:
    return {"type": "job_failed", "job_id": job_id, "error": CANCELLED_ERROR, "status": "cancelled"}
