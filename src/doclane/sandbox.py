"""The one door for parsing untrusted files: a child process that a bomb can only kill itself.

PDFium, calamine, tesseract and DuckDB are native code. A crafted file of a few KB can make
them ask for hundreds of GiB, spin for minutes or crash, and in the server's own process that
takes every user down with it. So every call that parses an upload runs in a *reader process*:

- its address space is capped (RLIMIT_AS) and so is its CPU time (RLIMIT_CPU): past them it
  gets a MemoryError, an allocation failure or a signal, and dies alone;
- the caller watches two clocks, the whole read and each step (a page, a query), and kills the
  process past either; cancelling the caller kills it at once;
- it leads its own process group, so a kill also ends the helpers it started (a long PDF's
  page readers), and it dies with its parent.

Reader processes are forked from multiprocessing's fork server, which imports the readers once:
a read starts in milliseconds and shares nothing with the server but the file's path. Once
:func:`start` has run, two *spare* readers are kept started ahead of need and warmed up (their
first DuckDB query and PDF paid before a job asks), so a read skips both costs; a read that
finds no spare ready starts its own. The task goes to the reader through one pipe; what it
reports back (progress, then a result or a DoclaneError) through another, which the event loop
waits on, never blocking it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import math
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import anyio

from doclane.errors import DoclaneError, DocumentError, ReaderCrashed, TransientError
from doclane.offload import run_blocking

log = logging.getLogger(__name__)

T = TypeVar("T")

# Imported once by the fork server, so that each reader process starts with them loaded. The
# main module is among them, or else every reader would run it again (e.g. `doclane`'s script,
# which imports the whole web stack: 0.5 s).
PRELOAD = [
    "__main__",
    "doclane.documents",
    "doclane.documents.tablequery",
    "doclane.documents.warmup",
]
MiB = 1024 * 1024
KILL_WAIT_SECONDS = 5.0  # for a killed reader's exit status
# Spare readers kept warm: an upload's check and its job's read come back to back.
SPARES = 2
WARM_UP_SECONDS = 30.0  # a spare not warm by then is ended
REFILL_AFTER_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1
_M_ARENA_MAX = -8

OnProgress = Callable[[int, int, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    memory_mb: int
    timeout_seconds: float  # the whole read
    step_seconds: float  # the longest wait between two progress reports (one page, one query)


@functools.cache
def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    # A main module run with `python -m name` is run again in every child as well (only its
    # body then: its imports are preloaded with it). A package's __main__ (`-m doclane`) is
    # never run again, and must not be preloaded: it would start the app.
    main = getattr(sys.modules["__main__"].__spec__, "name", None) or "__main__"
    extra = [] if main == "__main__" or main.endswith(".__main__") else [main]
    context.set_forkserver_preload(PRELOAD + extra)
    return context


def start(warm_up: Callable[[], object] | None = None) -> None:
    """Start the fork server now (it imports the readers: ~0.5 s) rather than on the first
    upload, and from then on keep spare readers ready, which run ``warm_up`` before they wait.
    Blocking: call it in a thread."""
    _context()
    multiprocessing.forkserver.ensure_running()
    _spares.keep(warm_up)


def ready_spares() -> int:
    """How many warm spare readers wait for a read now."""
    return _spares.ready()


def stop() -> None:
    """Stop keeping spare readers, and end those waiting."""
    _spares.keep(None)


@dataclass(frozen=True, slots=True)
class _Reader:
    process: Any  # multiprocessing's forkserver Process
    tasks: Connection  # to the reader: the one task it runs
    messages: Connection  # from the reader: progress, then the outcome

    def close(self) -> None:
        self.tasks.close()
        self.messages.close()


def _start_reader(warm_up: Callable[[], object] | None) -> _Reader:
    """A new reader process, waiting for its task. Blocking (a round trip to the fork server)."""
    context = _context()
    messages, message_sender = context.Pipe(duplex=False)
    task_receiver, tasks = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(task_receiver, message_sender, warm_up))
    try:
        process.start()
    except BaseException:
        messages.close()
        tasks.close()
        raise
    finally:  # the child has its own copies
        message_sender.close()
        task_receiver.close()
    return _Reader(process, tasks, messages)


class _Spares:
    """Readers started and warmed up ahead of need, up to SPARES. A read takes one and, once it
    has read, has it replaced in a thread of its own, away from any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[_Reader] = []
        self._starting = 0
        self._warm_up: Callable[[], object] | None = None  # None: keep none

    def keep(self, warm_up: Callable[[], object] | None) -> None:
        with self._lock:
            if warm_up is self._warm_up:
                return
            self._warm_up = warm_up
            stale, self._ready = self._ready, []
        for reader in stale:
            _end(reader)
        self.refill()

    def ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def take(self) -> _Reader | None:
        """A warm spare, if one is ready. The caller calls :meth:`refill` once it has read."""
        with self._lock:
            reader = self._ready.pop() if self._ready else None
        if reader is not None and not reader.process.is_alive():  # e.g. its fork server died
            _end(reader)
            reader = None
        return reader

    def refill(self, after: float = 0.0) -> None:
        """Start spares in the background, ``after`` seconds from now, up to SPARES."""
        with self._lock:
            wanted = 0 if self._warm_up is None else SPARES - len(self._ready) - self._starting
            self._starting += max(wanted, 0)
        for _ in range(wanted):
            timer = threading.Timer(after, self._start)
            timer.name, timer.daemon = "doclane-spare-reader", True
            timer.start()

    def _start(self) -> None:
        with self._lock:
            warm_up = self._warm_up
            if warm_up is None:  # stopped meanwhile
                self._starting -= 1
                return
        reader = None
        try:
            reader = _start_reader(warm_up)
            if not reader.messages.poll(WARM_UP_SECONDS) or reader.messages.recv() != ("ready",):
                raise EOFError("it did not warm up in time")
        except (OSError, EOFError) as exc:  # reads start their own, and refill after
            log.warning("could not start a spare reader: %r", exc)
            if reader is not None:
                _end(reader)
            reader = None
        with self._lock:
            self._starting -= 1
            if reader is not None and warm_up is self._warm_up:
                self._ready.append(reader)
                return
        if reader is not None:  # started for a warm-up no longer wanted: try again
            _end(reader)
            self.refill()


_spares = _Spares()
# multiprocessing joins every child process at exit, and a spare waits for its task forever.
atexit.register(stop)


def _end(reader: _Reader) -> None:
    """Kill a reader that has no task, and reap it. Blocking."""
    _kill(reader.process)
    reader.close()
    reader.process.join(KILL_WAIT_SECONDS)


async def read(
    what: str,
    limits: ReaderLimits,
    on_progress: OnProgress | None,
    fn: Callable[..., T],
    *args: object,
) -> T:
    """``fn(report, *args)`` in a reader process: its result, or the DoclaneError it raised.

    ``fn`` must be importable by name (a module-level function). ``what`` names the document in
    error messages ("the PDF"). A limit hit raises DocumentError with a message for the user; a
    crash raises ReaderCrashed. ``on_progress`` receives what ``fn`` reports with
    ``report(done, total, stage)``; each report also proves the reader is not stuck.
    """
    reader = await _reader_for(what, (fn, args, limits.memory_mb * MiB, limits.timeout_seconds))
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        while True:
            message = await _next_message(reader.messages, what, limits, deadline)
            if message[0] != "progress":
                break
            if on_progress is not None:
                await on_progress(*message[1:])
    finally:
        _kill(reader.process)  # the fork server, its parent, reaps it
        reader.close()
        # Not at once: the job's read follows an upload's check, and warm-ups beside it would
        # slow it down.
        _spares.refill(after=REFILL_AFTER_SECONDS)
    exit_code = None
    if message[0] not in ("result", "error", "memory"):  # how it died tells what happened
        await run_blocking(reader.process.join, KILL_WAIT_SECONDS)
        exit_code = reader.process.exitcode
    result: T = _outcome(what, limits, message, exit_code)
    return result


async def _reader_for(what: str, task: tuple[Any, ...]) -> _Reader:
    """A reader that has been given ``task``: a spare if one is ready, else a new one."""
    reader = _spares.take()
    if reader is not None:
        try:
            reader.tasks.send(task)  # small (a path, a question): the reader waits for it
            return reader
        except OSError:  # it died since: start another
            await run_blocking(_end, reader)
    try:
        reader = await run_blocking(_start_reader, None)
    except (OSError, EOFError) as exc:  # e.g. the fork server was killed: the next start heals
        log.warning("could not start a reader for %s: %r", what, exc)
        raise TransientError("No document reader could be started; try again shortly", 503) from exc
    with contextlib.suppress(OSError):  # if it died already, its exit code tells the caller
        reader.tasks.send(task)
    return reader


async def _next_message(
    receiver: Connection, what: str, limits: ReaderLimits, deadline: float
) -> tuple[Any, ...]:
    remaining = deadline - time.monotonic()
    with anyio.move_on_after(min(limits.step_seconds, max(remaining, 0.0))):
        await anyio.wait_readable(receiver.fileno())
        # Once readable, a message is being written: receiving it takes no time to speak of,
        # but a large result is read in a thread, away from the event loop, and blocking
        # (uvloop leaves the descriptor non-blocking once it has watched it).
        os.set_blocking(receiver.fileno(), True)
        return await run_blocking(_receive, receiver)
    if remaining <= limits.step_seconds:
        raise _too_long(what, limits)
    raise DocumentError(
        f"{_capital(what)} took too long to read: one step (a page, a table scan) took more "
        f"than {limits.step_seconds:g} s"
    )


def _receive(receiver: Connection) -> tuple[Any, ...]:
    try:
        message: tuple[Any, ...] = receiver.recv()
    except (EOFError, OSError):
        return ("died",)
    return message


def _outcome(
    what: str, limits: ReaderLimits, message: tuple[Any, ...], exit_code: int | None
) -> Any:
    kind = message[0]
    if kind == "result":
        return message[1]
    if kind == "error":
        error_type, text, status = message[1:]
        raise error_type(text, status)
    if kind == "memory":
        raise DocumentError(
            f"{_capital(what)} is too large to read: it needs more than {limits.memory_mb:,} MiB "
            "of memory"
        )
    if exit_code == -signal.SIGXCPU:
        raise _too_long(what, limits)
    if kind == "crash":
        log.warning("reader of %s failed: %s", what, message[1])
        raise DocumentError(f"{_capital(what)} could not be read")
    # Died without a word: native code aborts when an allocation fails past RLIMIT_AS, and
    # crashes on what it cannot parse.
    log.warning("reader of %s died (exit code %s)", what, exit_code)
    raise ReaderCrashed(
        f"{_capital(what)} could not be read: its reader stopped (the file is damaged, or needs "
        f"more than {limits.memory_mb:,} MiB of memory)"
    )


def _too_long(what: str, limits: ReaderLimits) -> DocumentError:
    """Past the whole read's limit: on the wall clock (watched here) or in CPU (RLIMIT_CPU)."""
    return DocumentError(
        f"{_capital(what)} took too long to read (the limit is {limits.timeout_seconds:g} s)"
    )


def _capital(what: str) -> str:
    return what[:1].upper() + what[1:]


def _kill(process: Any) -> None:
    """End the reader and every process it started (it leads its own group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):  # not yet its group's leader
        os.kill(process.pid, signal.SIGKILL)


# --- in the reader process ----------------------------------------------------------------------


def _child(tasks: Connection, messages: Connection, warm_up: Callable[[], object] | None) -> None:
    os.setsid()  # its own process group, so one kill ends it and its helpers
    _die_with_parent()
    _few_malloc_arenas()
    # Native code that aborts prints its own report (a Rust backtrace, say): not for the log.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    if warm_up is not None:  # a spare: warm up, then say so
        with contextlib.suppress(Exception):  # a cold read is slower, not wrong
            warm_up()
        messages.send(("ready",))
    try:
        fn, args, memory_bytes, timeout_seconds = tasks.recv()
    except EOFError:  # a spare that was never needed
        return
    # The limits count from here: the warm-up's time is not the document's.
    cpu_seconds = math.ceil(_cpu_used() + timeout_seconds)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))

    def report(done: int, total: int, stage: str) -> None:
        messages.send(("progress", done, total, stage))

    try:
        result = fn(report, *args)
    except MemoryError:
        message: tuple[Any, ...] = ("memory",)
    except DoclaneError as exc:
        message = ("error", type(exc), exc.message, exc.status_code)
    except BaseException:
        message = ("crash", traceback.format_exc(limit=-3))
    else:
        message = ("result", result)
    try:
        messages.send(message)
    except MemoryError:
        messages.send(("memory",))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _few_malloc_arenas() -> None:
    """glibc reserves 64 MiB of address space for each thread's malloc arena (up to 8 per
    core): DuckDB's threads alone could then spend the memory limit on reservations, and a
    table would fail or not depending on which thread allocated first."""
    if sys.platform == "linux":
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) exits, which it does when
    the server does, even after kill -9."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
