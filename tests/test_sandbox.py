"""Reader processes (doclane.sandbox): results and errors come back, limits hold, and whatever
goes wrong inside one costs only that process."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from doclane import sandbox
from doclane.documents import ReportProgress
from doclane.errors import DocumentError, EmptyFile, ReaderCrashed

pytestmark = pytest.mark.anyio

LIMITS = sandbox.ReaderLimits(memory_mb=512, timeout_seconds=20, step_seconds=5)


@pytest.fixture(autouse=True, params=["new reader", "spare reader"])
def reader(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Every test runs twice: on a reader started for the read, and on a warm spare, started
    ahead (the warm-up notes its pid in a file: the fixture gives the test the spares' pids)."""
    if request.param == "new reader":
        sandbox.stop()
        yield []
        return
    marker = tmp_path / "warm"
    sandbox.start(functools.partial(note_pid, str(marker)))
    wait_for_spares()
    try:
        yield marker.read_text().split()
    finally:
        sandbox.stop()


def wait_for_spares() -> None:
    deadline = time.monotonic() + 30
    while sandbox.ready_spares() < sandbox.SPARES:
        assert time.monotonic() < deadline, "the spare readers did not warm up"
        time.sleep(0.02)


# What the reader processes run: module-level, so a child can import them by name.


def note_pid(path: str) -> None:
    with Path(path).open("a") as pids:
        pids.write(f"{os.getpid()}\n")


def burn_then_note(seconds: float, path: str) -> None:
    spin(lambda *_: None, seconds)
    note_pid(path)


def spin(report: ReportProgress, cpu_seconds: float) -> float:
    """Keep a core busy for ``cpu_seconds`` of this process's CPU time."""
    until = time.process_time() + cpu_seconds
    while time.process_time() < until:
        pass
    return cpu_seconds


def count_to(report: ReportProgress, n: int) -> str:
    for done in range(1, n + 1):
        report(done, n, f"step {done}")
    return f"counted to {n} in process {os.getpid()}"


def refuse(report: ReportProgress, status: int) -> None:
    raise EmptyFile("nothing in it", status)


def hoard(report: ReportProgress, mib: int) -> int:
    return len(bytearray(mib * 1024 * 1024))


def segfault(report: ReportProgress) -> None:
    ctypes.string_at(0)


def stall(report: ReportProgress, seconds: float) -> None:
    time.sleep(seconds)


def keep_busy(report: ReportProgress, pid_file: str) -> None:
    """Start a helper process (in the reader's group), note both pids, then report forever."""
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(pid_file).write_text(f"{os.getpid()} {helper.pid}")
    while True:
        report(0, 1, "busy")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed process whose parent has not reaped it yet is a zombie: dead for our purpose.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def test_result_and_progress_come_back(reader: list[str]) -> None:
    reports: list[tuple[int, int, str]] = []

    async def on_progress(done: int, total: int, stage: str) -> None:
        reports.append((done, total, stage))

    result = await sandbox.read("it", LIMITS, on_progress, count_to, 3)
    assert result.startswith("counted to 3 in process ")
    pid = result.rsplit(" ", 1)[1]
    assert int(pid) != os.getpid()  # it ran elsewhere
    if reader:
        assert pid in reader  # in a spare, warmed up
        second = await sandbox.read("it", LIMITS, None, count_to, 1)
        assert second.rsplit(" ", 1)[1] != pid  # a reader runs one read, then dies
    assert reports == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def test_a_doclane_error_keeps_its_type_message_and_status() -> None:
    with pytest.raises(EmptyFile) as caught:
        await sandbox.read("it", LIMITS, None, refuse, 409)
    assert caught.value.message == "nothing in it" and caught.value.status_code == 409


async def test_memory_past_the_limit_is_a_clear_error() -> None:
    assert await sandbox.read("the table", LIMITS, None, hoard, 64) == 64 * 1024 * 1024
    with pytest.raises(DocumentError, match="The table is too large to read: it needs more "):
        await sandbox.read("the table", LIMITS, None, hoard, 600)


async def test_a_native_crash_costs_only_the_reader() -> None:
    with pytest.raises(ReaderCrashed, match="The PDF could not be read: its reader stopped"):
        await sandbox.read("the PDF", LIMITS, None, segfault)
    assert (await sandbox.read("it", LIMITS, None, count_to, 1)).startswith("counted")


async def test_a_spare_readers_warm_up_is_not_counted_in_the_cpu_limit(tmp_path: Path) -> None:
    """The limit is the document's: a spare that spent 1.5 s warming up still gets its 2 s."""
    marker = tmp_path / "burnt"
    sandbox.start(functools.partial(burn_then_note, 1.5, str(marker)))
    await anyio.to_thread.run_sync(wait_for_spares)
    limits = sandbox.ReaderLimits(512, timeout_seconds=2, step_seconds=2)
    assert await sandbox.read("it", limits, None, spin, 1.2) == 1.2
    with pytest.raises(DocumentError, match=r"took too long to read \(the limit is 2 s\)"):
        await sandbox.read("it", limits, None, spin, 3)  # its own CPU still counts


async def test_a_step_that_takes_too_long_is_killed() -> None:
    started = time.monotonic()
    with pytest.raises(DocumentError, match=r"one step .* took more than 1 s"):
        await sandbox.read("the image", sandbox.ReaderLimits(512, 20, 1), None, stall, 60)
    assert time.monotonic() - started < 5


async def test_the_whole_read_has_a_time_limit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(DocumentError, match=r"took too long to read \(the limit is 2 s\)"):
        await sandbox.read("it", sandbox.ReaderLimits(512, 2, 1), None, keep_busy, str(pid_file))
    assert time.monotonic() - started < 6
    reader, helper = map(int, pid_file.read_text().split())
    await _gone(reader, helper)


async def test_cancelling_kills_the_reader_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    with anyio.move_on_after(2):
        await sandbox.read("it", LIMITS, None, keep_busy, str(pid_file))
    reader, helper = map(int, pid_file.read_text().split())
    await _gone(reader, helper)


async def _gone(*pids: int) -> None:
    with anyio.fail_after(5):
        while any(alive(pid) for pid in pids):
            await anyio.sleep(0.05)


def test_an_app_with_a_spare_reader_exits(tmp_path: Path) -> None:
    """multiprocessing joins its children at exit: the spare, waiting for a task, is ended."""
    marker = tmp_path / "app's spare"
    code = (
        "import functools, sys; from doclane import sandbox; from tests import test_sandbox\n"
        "sandbox.start(functools.partial(test_sandbox.note_pid, sys.argv[1]))\n"
        "test_sandbox.wait_for_spares()\n"
    )
    app = subprocess.run([sys.executable, "-c", code, str(marker)], timeout=60, check=True)
    spares = [int(pid) for pid in marker.read_text().split()]
    assert app.returncode == 0 and len(spares) == sandbox.SPARES
    assert not any(alive(pid) for pid in spares)


def test_the_reader_cannot_outlive_a_killed_fork_server() -> None:
    """A reader is told to die with its parent (the fork server, which ends with the app)."""
    code = (
        "import anyio, sys; from doclane import sandbox; from tests import test_sandbox as t\n"
        "async def main():\n"
        "    await sandbox.read('it', t.LIMITS, None, t.keep_busy, sys.argv[1])\n"
        "anyio.run(main)\n"
    )
    pid_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"doclane-orphan-{os.getpid()}"
    pid_file.unlink(missing_ok=True)
    app = subprocess.Popen([sys.executable, "-c", code, str(pid_file)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and app.poll() is None
            time.sleep(0.05)
        reader = int(pid_file.read_text().split()[0])
        os.killpg(app.pid, signal.SIGKILL)  # the app and its fork server, as a crash would
        app.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(reader):
            assert time.monotonic() < deadline, "the reader outlived its fork server"
            time.sleep(0.05)
    finally:
        if pid_file.exists() and pid_file.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[1]), signal.SIGKILL)  # the helper
        pid_file.unlink(missing_ok=True)
        if app.poll() is None:
            app.kill()


async def test_a_killed_fork_server_is_replaced() -> None:
    """The fork server is one process for every reader: if it dies, the next read starts a new
    one (a read that was starting meanwhile gets a 503-style TransientError at worst)."""
    await sandbox.read("it", LIMITS, None, count_to, 1)
    server_pid = multiprocessing.forkserver._forkserver._forkserver_pid
    assert server_pid is not None
    os.kill(server_pid, signal.SIGKILL)
    with anyio.fail_after(30):
        while alive(server_pid):
            await anyio.sleep(0.05)
    assert (await sandbox.read("it", LIMITS, None, count_to, 1)).startswith("counted")
