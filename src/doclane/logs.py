"""Logging for every doclane command: one line per record, JSON when stderr is not a terminal
(for a log shipper), readable when it is.

The code logs through the standard library (``logging.getLogger(__name__)``, and uvicorn and
Alembic do too); structlog only formats. A job's lines carry its ``job_id`` without each call
naming it: the worker binds it in a context variable for the run (:func:`job_context`), which
every task and thread of the run inherits. A ``token=`` query value (a WebSocket key in a URL)
is masked on every line, whoever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from structlog.typing import EventDict, WrappedLogger

_TOKEN = re.compile(r"(?i)([?&]token=)[^&\s\"']+")


def _mask_tokens(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    message = event.get("event")
    if isinstance(message, str) and "token=" in message.lower():
        event["event"] = _TOKEN.sub(r"\1[redacted]", message)
    return event


def configure(level: int = logging.INFO, as_json: bool | None = None) -> None:
    """Route every logger to stderr through structlog's formatter (call once, at start)."""
    if as_json is None:
        as_json = not sys.stderr.isatty()
    before: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_tokens,
    ]
    render: list[structlog.typing.Processor] = (
        [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if as_json
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=before,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # to the root's handler
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # Alembic tells its dialect choices on every start; keep only the upgrades it runs.
    logging.getLogger("alembic.runtime.migration").addFilter(_only_upgrades)


def _only_upgrades(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(("Context impl", "Will assume"))


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every line logged in this block (and in tasks and threads it starts) names the job."""
    with structlog.contextvars.bound_contextvars(job_id=job_id):
        yield
