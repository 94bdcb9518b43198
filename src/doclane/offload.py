"""The one place blocking work leaves the event loop: plain calls and producers in threads.

Plain calls share one pool (:func:`run_blocking`); the SQLite store hands calls to its own
thread the same way (:func:`run_in`). A producer (local inference) runs in the loop's default
executor, and is abandoned rather than waited for when its consumer stops."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

import anyio

T = TypeVar("T")

# As many as anyio lets run at once by default; started as needed, then reused.
_THREADS = ThreadPoolExecutor(40, thread_name_prefix="doclane-blocking")

ShouldStop = Callable[[], bool]
# A blocking producer: calls emit(item) for each item; polls should_stop() to end early.
Producer = Callable[[Callable[[T], None], ShouldStop], None]


async def run_blocking(fn: Callable[..., T], *args: object) -> T:
    """Run a blocking call in a worker thread; the event loop keeps serving meanwhile."""
    return await run_in(_THREADS, fn, *args)


async def run_in(executor: Executor, fn: Callable[..., T], *args: object) -> T:
    """Run a blocking call in one of ``executor``'s threads, in the caller's context (its
    log fields). A cancelled caller still waits for the call to end, as with
    ``anyio.to_thread.run_sync``, so a write is never done unbeknown to it; but at a third of
    the event loop's time a call (measured: 10-15 against 28-30 us), whose capacity limiter and
    per-call cancel scopes an upload's two calls paid for without using."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    future = asyncio.get_running_loop().run_in_executor(executor, call)
    with anyio.CancelScope(shield=True):
        result = await future
    return result


async def iterate_blocking(produce: Producer[T]) -> AsyncIterator[T]:
    """Run a blocking producer in a worker thread and yield what it emits, as it emits it.

    ``should_stop()`` turns True as soon as the consumer stops iterating (closed early or
    cancelled). The thread is not waited for then: a native call may have to finish its
    current step first (llama.cpp evaluating a prompt cannot be interrupted), and the job's
    worker slot must not wait seconds for it. An exception raised by the producer is re-raised
    here while the consumer iterates.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, T | None, BaseException | None]] = asyncio.Queue()
    stop = threading.Event()

    def send(message: tuple[bool, T | None, BaseException | None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, message)

    def emit(item: T) -> None:
        send((False, item, None))

    def run() -> None:
        error: BaseException | None = None
        try:
            produce(emit, stop.is_set)
        except BaseException as exc:
            error = exc
        send((True, None, error))

    loop.run_in_executor(None, run)
    try:
        while True:
            done, item, error = await queue.get()
            if error is not None:
                raise error
            if done:
                return
            yield item  # type: ignore[misc]  # an item is a T whenever done is False
    finally:
        stop.set()
