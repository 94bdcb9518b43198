"""What one user may take of a server: uploads per minute, unfinished jobs, open sockets.

Uploads and jobs are counted in the job store, so the limits hold across API replicas: an
upload is refused with 429 and ``Retry-After`` when its user made ``DOCLANE_UPLOADS_PER_MINUTE``
uploads in the last minute, or has ``DOCLANE_MAX_ACTIVE_JOBS`` queued or running. The job's
insert enforces both, counting in the same transaction (:func:`create_job`), so uploads racing
each other never pass a limit together. Before costly work, a body that is not small or a
reader process opening the file, the limits are looked at first (:func:`check_upload`), so
that a user at a limit is refused before it; a small body is cheaper to read than that look.

WebSocket connections are counted in each process: at most ``DOCLANE_WS_MAX_CONNECTIONS``
(authenticated or not; over it the socket is closed with 1013, try again later) and, with
auth on, ``DOCLANE_WS_CONNECTIONS_PER_USER`` per user (over it, 1008, policy violation).

With auth off, every client is the one implicit user: the upload limits apply to all clients
together, and only the process-wide cap to sockets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from doclane.auth import User
from doclane.errors import TooManyRequests
from doclane.jobs import Job, JobStore, NewJob, Quota, QuotaExceeded, Usage
from doclane.settings import Settings

WINDOW_SECONDS = 60.0
BUSY_RETRY_SECONDS = 10.0  # when a user's queue is full: about how long a job takes


def upload_quota(settings: Settings) -> Quota:
    return Quota(settings.max_active_jobs, settings.uploads_per_minute, WINDOW_SECONDS)


def _refusal(usage: Usage, settings: Settings) -> TooManyRequests:
    """The 429 for a user at a limit: the uploads per minute first, as they say when to retry."""
    if usage.recent >= settings.uploads_per_minute:
        return TooManyRequests(
            f"Too many uploads: the limit is {settings.uploads_per_minute} a minute",
            usage.frees_in,
        )
    return TooManyRequests(
        f"Too many unfinished jobs: the limit is {settings.max_active_jobs} queued or "
        "running at once",
        BUSY_RETRY_SECONDS,
    )


async def check_upload(store: JobStore, settings: Settings, owner: str) -> None:
    """Raise TooManyRequests if ``owner`` may not queue another job now (a look: the insert
    decides)."""
    quota = upload_quota(settings)
    usage = await store.usage(owner, quota)
    if not usage.within(quota):
        raise _refusal(usage, settings)


async def create_job(store: JobStore, settings: Settings, new: NewJob) -> Job:
    """Queue the job if its owner is within the limits, atomically; else TooManyRequests."""
    try:
        return await store.create(new, upload_quota(settings))
    except QuotaExceeded as exc:
        raise _refusal(exc.usage, settings) from None


class SocketLimit(Exception):
    """A socket over a limit; ``code`` is the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class SocketSlots:
    """The open WebSocket connections of this process, in all and per user."""

    CLOSE_POLICY_VIOLATION = 1008
    CLOSE_TRY_AGAIN_LATER = 1013

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open = 0
        self._by_user: Counter[str] = Counter()

    @contextmanager
    def connection(self) -> Iterator[None]:
        """Hold one of the process's slots; raises SocketLimit (1013) when none is free."""
        if self._open >= self.total:
            raise SocketLimit(self.CLOSE_TRY_AGAIN_LATER, "Too many connections: try again later")
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1

    @contextmanager
    def of_user(self, user: User) -> Iterator[None]:
        """Hold one of the user's slots (with auth on); raises SocketLimit (1008)."""
        if not user.scoped:
            yield
            return
        if self._by_user[user.name] >= self.per_user:
            raise SocketLimit(
                self.CLOSE_POLICY_VIOLATION,
                f"Too many connections: the limit is {self.per_user} per user",
            )
        self._by_user[user.name] += 1
        try:
            yield
        finally:
            self._by_user[user.name] -= 1
            if not self._by_user[user.name]:
                del self._by_user[user.name]


async def get_socket_slots(connection: HTTPConnection) -> SocketSlots:  # no thread: see auth.py
    return cast(SocketSlots, connection.app.state.sockets)


SocketSlotsDep = Annotated[SocketSlots, Depends(get_socket_slots)]
