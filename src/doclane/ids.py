"""Job ids: random version-4 UUIDs, drawn from the OS's random source a batch at a time.

``uuid.uuid4()`` reads 16 bytes with a system call that releases the GIL; on the event loop's
thread, with the upload path's threads runnable, taking the GIL back costs up to a switch
interval (measured: 0.4 ms of the loop's time an upload under load). One read serves
``_BATCH`` ids instead. The bytes are as unguessable (the same source); a forked child drops
its parent's batch (and lock) so that no two processes hand out the same id."""

from __future__ import annotations

import os
import threading
import uuid

_BATCH = 64
_lock = threading.Lock()
_pool = b""


def _forget() -> None:
    """In a forked child: a batch of its own, and a lock no parent's thread can hold."""
    global _lock, _pool
    _lock, _pool = threading.Lock(), b""


os.register_at_fork(after_in_child=_forget)


def new_job_id() -> str:
    """A new random UUID (version 4), as text."""
    global _pool
    with _lock:
        if not _pool:
            _pool = os.urandom(16 * _BATCH)
        raw, _pool = _pool[:16], _pool[16:]
    return str(uuid.UUID(bytes=raw, version=4))
