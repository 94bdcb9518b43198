"""doclane's exceptions, and who each one is for.

    DoclaneError                 base; carries an HTTP status and a message safe to show a user
    ├── InvalidRequest (422)     the user sent something we cannot accept (bad field, bad file)
    │   ├── EmptyFile (400)
    │   ├── UnsupportedFileType (415)
    │   ├── UploadTooLarge (413)
    │   └── UploadTimeout (408)  the body stalled or took too long
    ├── Unauthorized (401)       no API key, or a wrong one (auth on)
    ├── Forbidden (403)          a cross-site Origin
    ├── TooManyRequests (429)    a user's limit; says when to retry
    ├── JobNotFound (404)        also another user's job: its existence is not revealed
    ├── StorageFull (507)        the operator's problem: the data directory cannot take the file
    ├── StoreUnavailable (503)   the job database cannot be reached: try again shortly
    └── ProcessingError          a job failed while running; its message reaches `job_failed`
        ├── DocumentError        the document itself is unreadable: retrying will not help
        ├── ReaderCrashed        the process reading it died: re-run once, then give up
        └── TransientError       worth retrying later (rate limit, timeout, a busy service)
    LeaseLost                    (not a DoclaneError) the worker lost the job: stop quietly

The API maps every DoclaneError to ``{"success": false, "error": message}`` in one handler.
"""

from __future__ import annotations

import math


class DoclaneError(Exception):
    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}  # sent with the error response
        if status_code is not None:
            self.status_code = status_code


class InvalidRequest(DoclaneError):
    status_code = 422


class EmptyFile(InvalidRequest):
    status_code = 400


class UnsupportedFileType(InvalidRequest):
    status_code = 415


class UploadTooLarge(InvalidRequest):
    status_code = 413


class UploadTimeout(InvalidRequest):
    status_code = 408


class Unauthorized(DoclaneError):
    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DoclaneError):
    status_code = 403


class TooManyRequests(DoclaneError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


class JobNotFound(DoclaneError):
    status_code = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id!r} not found")


class StorageFull(DoclaneError):
    status_code = 507


class ProcessingError(DoclaneError):
    pass


class DocumentError(ProcessingError):
    status_code = 422


class TransientError(ProcessingError):
    pass


class ReaderCrashed(ProcessingError):
    """The reader process died without a word (see sandbox.py): a crash, or a native allocation
    failing at the memory limit. Possibly chance (the OOM killer), so a job gets one re-run;
    a second death fails it as poison."""

    status_code = 422


class LeaseLost(Exception):
    """The job's lease expired or was taken over; the current run must stop without writing."""


class StoreUnavailable(DoclaneError):
    """The job database is down or unreachable: nothing was done, and a retry may work. A job
    that meets it stops without a verdict (its lease runs out and it runs again later)."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__("The job database is unreachable; try again shortly")
        self.headers["Retry-After"] = "5"
