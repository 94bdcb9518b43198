"""``doclane ask FILE "question"``: ask a server about a document and stream its answer.

The client does what any front end does: it opens ``WS /ws``, uploads the file with the
question (``POST /api/upload``), subscribes to the job's events from the first one (so none is
missed however fast the job runs) and shows them as they arrive: a progress bar while the
document is read, then the answer chunk by chunk (plain text when stdout is not a terminal,
or every event as one JSON line with ``--json``). A dropped connection is resumed, events seen
twice are shown once. Without ``--server`` the real app runs in this process, on a free local
port, for the duration of the command.

With auth on, ``--key`` (default: the ``DOCLANE_API_KEY`` environment variable) is sent as
``Authorization: Bearer`` on every request and as the socket's first message, ``{"type":
"auth"}``: never in a URL, which ends up in logs.

Exit codes: 0 the job completed; 1 it failed, was cancelled elsewhere, ran past ``--timeout``
(it is then cancelled) or the server could not be reached; 2 a usage error or an upload the
server refused (a 4xx, with its message); 130 Ctrl-C, which cancels the job on the server first.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import anyio
import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from doclane.settings import ClientSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FINAL_TYPES = frozenset({"job_completed", "job_failed"})
HTTP_TIMEOUT = 60.0  # one request: the upload of a large file, a cancel
CANCEL_TIMEOUT = 10.0
LOOKUPS, LOOKUP_DELAY = 4, 0.5  # finding the job of an upload cut short: see _job_of_cut_upload
RECONNECTS = 10  # a dropped WebSocket is reopened this many times, RECONNECT_DELAY apart
RECONNECT_DELAY = 1.0
START_TIMEOUT = 120.0  # the embedded server loads the model before it answers
STOP_TIMEOUT = 10.0
KEY_VARIABLE = "DOCLANE_API_KEY"  # --key's default (the server's keys are DOCLANE_API_KEYS)


def _key_from_environment() -> str | None:
    key = ClientSettings().api_key
    return (key.get_secret_value() or None) if key else None


Event = dict[str, Any]


class Failure(Exception):
    """The command cannot go on: its message is for the user, its code for the shell."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a PDF, CSV, spreadsheet or image")
    parser.add_argument("question", nargs="?", default="", help="what to ask (default: a summary)")
    parser.add_argument(
        "--server",
        metavar="URL",
        help="a running doclane, e.g. http://127.0.0.1:8000 (default: one started in this "
        "process for the command, with the usual settings)",
    )
    parser.add_argument(
        "--key",
        metavar="KEY",
        default=_key_from_environment(),
        help=f"the API key, when the server has auth on (default: ${KEY_VARIABLE}); sent as "
        "a Bearer header and as the socket's first message, never in a URL",
    )
    parser.add_argument("--priority", type=int, help="higher runs first (default 0)")
    parser.add_argument(
        "--at",
        metavar="TIME",
        type=_iso_time,
        help="run at this ISO 8601 time, e.g. 2030-01-02T09:00:00Z (no time zone means UTC)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print each event of the job as one JSON line"
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help="give up (and cancel the job) when it has not ended after this long",
    )


def _iso_time(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return text  # the server reads it; no time zone means UTC there


def main(args: argparse.Namespace) -> int:
    try:
        file = args.file.open("rb")
    except OSError as exc:
        print(f"doclane: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    with file:
        try:
            return anyio.run(_ask, args, file)
        except KeyboardInterrupt:  # a Ctrl-C before the signal handler was in place
            return EXIT_INTERRUPTED


@dataclass
class _Job:
    key: str  # the upload's Idempotency-Key: finds the job when Ctrl-C cut the upload short
    id: str | None = None
    interrupted: bool = False


async def _ask(args: argparse.Namespace, file: IO[bytes]) -> int:
    view = _view(args.json)
    failure = None
    try:
        code = await _session(args, file, view)
    except (Failure, BaseExceptionGroup) as exc:
        failure = _the_failure(exc)
        if failure is None:
            raise
        code = failure.code
    view.close()
    if failure is not None:
        print(f"doclane: {failure.message}", file=sys.stderr)
    return code


def _the_failure(exc: BaseException) -> Failure | None:
    """A Failure, perhaps wrapped by the task groups it went through."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, Failure) else None


async def _session(args: argparse.Namespace, file: IO[bytes], view: View) -> int:
    job = _Job(uuid.uuid4().hex)
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async with (
            _server(args.server) as base_url,
            httpx.AsyncClient(
                base_url=base_url,
                timeout=HTTP_TIMEOUT,
                trust_env=bool(args.server),
                headers={"Authorization": f"Bearer {args.key}"} if args.key else None,
            ) as http,
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_interrupt_on, signals, tg.cancel_scope, job)
                with anyio.move_on_after(args.timeout) as deadline:
                    final = await _exchange(args, file, http, view, job)
                tg.cancel_scope.cancel()
            if job.interrupted or deadline.cancelled_caught:
                view.close()
                cancelled = await _cancel(http, job)
                if job.interrupted:
                    print(f"doclane: interrupted{cancelled}", file=sys.stderr)
                    return EXIT_INTERRUPTED
                raise Failure(f"no answer within {args.timeout:g} s{cancelled}")
    view.close()
    if final["type"] == "job_completed":
        return EXIT_OK
    print(f"doclane: {final.get('error') or 'the job failed'}", file=sys.stderr)
    return EXIT_FAILED


async def _interrupt_on(signals: AsyncIterator[int], scope: anyio.CancelScope, job: _Job) -> None:
    async for _ in signals:
        job.interrupted = True
        scope.cancel()
        return


async def _exchange(
    args: argparse.Namespace,
    file: IO[bytes],
    http: httpx.AsyncClient,
    view: View,
    job: _Job,
) -> Event:
    """Connect, upload, follow the job to its final event (returned), raising Failure when the
    server refuses or cannot be reached."""
    events = _Events(_ws_url(str(http.base_url)), True if args.server else None, args.key)
    try:
        first = await events.open()
    except (OSError, WebSocketException) as exc:
        raise Failure(f"cannot connect to {events.url}: {exc}") from None
    try:
        view.start("Scheduled" if args.at else "Uploading")
        job.id = await _upload(args, file, http, job.key)
        view.waiting(f"Scheduled for {args.at}" if args.at else "Waiting for a worker")
        return await _follow(first, events, job.id, view)
    finally:
        with anyio.CancelScope(shield=True):
            await first.close()


@dataclass(frozen=True)
class _Events:
    """Where the job's events come from, and how a connection shows the key."""

    url: str
    proxy: Literal[True] | None  # the environment's proxy, for a remote server
    key: str | None

    async def open(self) -> ClientConnection:
        ws = await connect(self.url, proxy=self.proxy)
        if self.key:  # first, before anything else: the server closes it (1008) otherwise
            await ws.send(json.dumps({"type": "auth", "token": self.key}))
        return ws


def _ws_url(base_url: str) -> str:
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"


async def _upload(
    args: argparse.Namespace, file: IO[bytes], http: httpx.AsyncClient, key: str
) -> str:
    fields = {"prompt": args.question}
    if args.priority is not None:
        fields["priority"] = str(args.priority)
    if args.at is not None:
        fields["scheduled_at"] = args.at
    try:
        response = await http.post(
            "/api/upload",
            files={"file": (args.file.name, file)},
            data=fields,
            headers={"Idempotency-Key": key},
        )
    except httpx.HTTPError as exc:
        raise Failure(f"cannot upload to {http.base_url}: {exc}") from None
    body = _body(response)
    if response.is_success:
        return str(body["data"]["job_id"])
    error = str(body.get("error") or f"{response.status_code} {response.reason_phrase}")
    if response.status_code == httpx.codes.UNAUTHORIZED:
        error += f" (give the key with --key or {KEY_VARIABLE})"
    raise Failure(error, EXIT_USAGE if response.is_client_error else EXIT_FAILED)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


async def _follow(first: ClientConnection, events: _Events, job_id: str, view: View) -> Event:
    """The job's events, each once, until its final one; a dropped connection is reopened and
    the job's events replayed from the start (those already seen are skipped)."""
    seen: set[int] = set()
    ws = first
    for attempt in range(RECONNECTS + 1):
        if attempt:
            await anyio.sleep(RECONNECT_DELAY)
            try:
                ws = await events.open()
            except (OSError, WebSocketException):
                continue
        try:
            await ws.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode()
                event = json.loads(text)
                if not isinstance(event, dict) or event.get("job_id") != job_id:
                    continue  # other jobs' events, pongs
                seq = event.get("seq")
                if isinstance(seq, int):
                    if seq in seen:
                        continue
                    seen.add(seq)
                view.show(event, text)
                if event.get("type") in FINAL_TYPES:
                    return event
        except ConnectionClosed:
            pass
        finally:
            if ws is not first:
                with anyio.CancelScope(shield=True):
                    await ws.close()
    raise Failure(f"lost the connection to {events.url} (job {job_id} goes on)")


async def _cancel(http: httpx.AsyncClient, job: _Job) -> str:
    """Cancel the job on the server; what became of it, for the user."""
    with anyio.move_on_after(CANCEL_TIMEOUT, shield=True):
        try:
            if job.id is None:
                job.id = await _job_of_cut_upload(http, job.key)
                if job.id is None:
                    return ""
            response = await http.post(f"/api/jobs/{job.id}/cancel")
        except httpx.HTTPError as exc:
            return f"; job {job.id} could not be cancelled: {exc}"
        if response.is_success:
            return f"; job {job.id} cancelled"
        return f"; job {job.id} not cancelled: {_body(response).get('error', response.text)}"
    return f"; job {job.id} could not be cancelled in time"


async def _job_of_cut_upload(http: httpx.AsyncClient, key: str) -> str | None:
    """The job an upload cut short made anyway, if any: the server may still be checking the
    whole body it received. A post with the upload's key and no body gets that job's id, or a
    400 (and no job) when there is none yet; asked a few times to let the check end."""
    for attempt in range(LOOKUPS):
        if attempt:
            await anyio.sleep(LOOKUP_DELAY)
        found = await http.post("/api/upload", headers={"Idempotency-Key": key})
        if found.is_success:
            return str(_body(found)["data"]["job_id"])
    return None


class View(Protocol):
    def start(self, stage: str) -> None: ...
    def waiting(self, stage: str) -> None: ...
    def show(self, event: Event, raw: str) -> None: ...
    def close(self) -> None: ...


def _view(as_json: bool) -> View:
    if as_json:
        return JsonView(sys.stdout)
    if sys.stdout.isatty():
        return AnswerView(sys.stdout, _progress(Console(file=sys.stdout)))
    return AnswerView(sys.stdout, None)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
    )


class JsonView:
    """Each event of the job as received, one per line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def start(self, stage: str) -> None:
        pass

    def waiting(self, stage: str) -> None:
        pass

    def show(self, event: Event, raw: str) -> None:
        self.out.write(raw + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class AnswerView:
    """The answer as it streams; before it, a progress bar when there is one (a terminal)."""

    def __init__(self, out: IO[str], progress: Progress | None) -> None:
        self.out = out
        self.progress = progress
        self.task = progress.add_task("", total=100) if progress else None
        self.answer = ""  # what has been printed

    def start(self, stage: str) -> None:
        if self.progress is not None:
            self.progress.start()
            self.waiting(stage)

    def waiting(self, stage: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=stage)

    def show(self, event: Event, raw: str) -> None:
        kind = event.get("type")
        if kind == "job_update":
            if self.progress is not None and self.task is not None and not self.answer:
                stage = event.get("stage") or "Working"
                self.progress.update(self.task, completed=event["progress"], description=stage)
        elif kind == "ai_chunk":
            self._stop_progress()
            chunk, partial = event["chunk"], event["partial"]
            if partial == self.answer + chunk:
                self._write(chunk)
            else:  # not in order: print only what extends the answer so far
                self._catch_up(partial)
        elif kind in FINAL_TYPES:
            self._stop_progress()
            if kind == "job_completed":
                self._catch_up(event["ai_response"])

    def _catch_up(self, text: str) -> None:
        if text.startswith(self.answer):
            self._write(text[len(self.answer) :])

    def _write(self, text: str) -> None:
        self.answer += text
        self.out.write(text)
        self.out.flush()

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def close(self) -> None:
        """End the answer's line (once), whether the job ended or the command is cut short."""
        self._stop_progress()
        if self.answer and not self.answer.endswith("\n"):
            self._write("\n")


class _Embedded(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # Ctrl-C is the command's: it cancels the job, then stops this server


@asynccontextmanager
async def _server(url: str | None) -> AsyncIterator[str]:
    """The server's base URL: the one given, or the real app served in this process."""
    if url is not None:
        if not url.startswith(("http://", "https://")):
            raise Failure(f"--server needs an http:// or https:// URL, not {url!r}", EXIT_USAGE)
        yield url.rstrip("/")
        return
    from doclane.app import create_app  # the whole server, loaded only when it runs here
    from doclane.settings import Settings

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(Settings()),
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _Embedded(config)
    stopped = anyio.Event()

    async def serve() -> None:
        try:
            await server.serve([sock])
        except SystemExit:  # uvicorn's word for a start-up that failed (the reason is logged)
            pass
        finally:
            stopped.set()

    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            with anyio.move_on_after(START_TIMEOUT):
                while not server.started and not stopped.is_set():  # noqa: ASYNC110 (a flag)
                    await anyio.sleep(0.05)
            if not server.started:
                server.should_exit = True
                with anyio.move_on_after(STOP_TIMEOUT, shield=True):
                    await stopped.wait()
                raise Failure("the embedded server did not start (see above)")
            try:
                yield f"http://127.0.0.1:{port}"
            finally:  # a graceful stop (running jobs handed back) before the task group ends
                server.should_exit = True
                with anyio.move_on_after(STOP_TIMEOUT, shield=True):
                    await stopped.wait()
