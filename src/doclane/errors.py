"""doclane's exceptions, and who each one is for.

    DoclaneError                 base; carries an HTTP status and a message safe to show a user
    ├── InvalidRequest (422)     the user sent something we cannot accept (bad field, bad file)
    │   ├── EmptyFile (400)
    │   ├── UnsupportedFileType (415)
    │   └── UploadTooLarge (413)
    ├── JobNotFound (404)
    ├── StorageFull (507)        the operator's problem: the data directory cannot take the file
    └── ProcessingError          a job failed while running; its message reaches `job_failed`
        ├── DocumentError        the document itself is unreadable: retrying will not help
        └── TransientError       worth retrying later (rate limit, timeout, a busy service)
    LeaseLost                    (not a DoclaneError) the worker lost the job: stop quietly

The API maps every DoclaneError to ``{"success": false, "error": message}`` in one handler.
"""

from __future__ import annotations


class DoclaneError(Exception):
    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
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


class LeaseLost(Exception):
    """The job's lease expired or was taken over; the current run must stop without writing."""
