"""Prometheus metrics of this process, served at ``GET /metrics``.

Each doclane process (an API replica, a worker, or both in one) has its own registry and its own
``/metrics``: a worker run apart serves them on its own port (``doclane worker --port``), so
Prometheus scrapes every process and sums. Counters and histograms are what this process did;
the queue gauges (jobs by status, due jobs, the longest wait) are read from the shared store at
scrape time, so any one process reports the whole queue.

Rates are left to PromQL: pages read per second is
``rate(doclane_pages_read_total[5m]) / rate(doclane_read_seconds_total[5m])``, generation
tokens per second ``rate(doclane_llm_generated_tokens_total[5m]) /
rate(doclane_llm_generation_seconds_total[5m])``.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from doclane.jobs import JobStore

__all__ = ["CONTENT_TYPE_LATEST", "MetricsMiddleware", "exposition"]

REGISTRY = CollectorRegistry()

# --- the queue, read from the store at scrape time ------------------------------------------
JOBS = Gauge("doclane_jobs", "Jobs in the store, by status", ["status"], registry=REGISTRY)
DUE_JOBS = Gauge("doclane_queue_due_jobs", "Due jobs waiting for a worker", registry=REGISTRY)
OLDEST_DUE = Gauge(
    "doclane_queue_oldest_due_seconds",
    "How long the longest-waiting due job has waited",
    registry=REGISTRY,
)

# --- jobs run by this process's workers -------------------------------------------------------
_SECONDS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
JOBS_ENDED = Counter(
    "doclane_job_runs", "Job runs ended here, by outcome", ["outcome"], registry=REGISTRY
)
JOB_SECONDS = Histogram(
    "doclane_job_run_seconds", "A job run, claim to its end", buckets=_SECONDS, registry=REGISTRY
)
FIRST_CHUNK_SECONDS = Histogram(
    "doclane_job_first_chunk_seconds",
    "A job run's claim to its first ai_chunk",
    buckets=_SECONDS,
    registry=REGISTRY,
)
PAGES_READ = Counter(
    "doclane_pages_read", "PDF pages and images read (OCR'd ones included)", registry=REGISTRY
)
OCR_PAGES = Counter("doclane_ocr_pages", "Pages and images read by OCR", registry=REGISTRY)
READ_SECONDS = Counter(
    "doclane_read_seconds", "Time spent reading PDFs and images", registry=REGISTRY
)
PROMPT_TOKENS = Counter(
    "doclane_llm_prompt_tokens", "Tokens of the prompts given to the model", registry=REGISTRY
)
GENERATED_TOKENS = Counter(
    "doclane_llm_generated_tokens", "Tokens the model generated", registry=REGISTRY
)
GENERATION_SECONDS = Counter(
    "doclane_llm_generation_seconds",
    "Time from a prompt sent to the model to its last token",
    registry=REGISTRY,
)

# --- this process's clients -------------------------------------------------------------------
WS_CONNECTIONS = Gauge(
    "doclane_websocket_connections", "Open WebSocket connections", registry=REGISTRY
)
WS_SENT = Counter(
    "doclane_websocket_messages_sent", "Messages sent to WebSocket clients", registry=REGISTRY
)
WS_DROPPED = Counter(
    "doclane_websocket_clients_dropped",
    "WebSocket clients closed for falling behind (they missed live events; resume recovers them)",
    registry=REGISTRY,
)
UPLOADS = Counter(
    "doclane_uploads",
    "Uploads by outcome: accepted, refused (4xx, by status) or failed (5xx)",
    ["outcome", "status"],
    registry=REGISTRY,
)

CLOSE_TRY_AGAIN_LATER = 1013  # the close code of a client dropped for falling behind


async def exposition(store: JobStore) -> bytes:
    """The metrics in Prometheus' text format, the queue gauges read from the store now."""
    stats = await store.stats()
    for status, count in stats.jobs.items():
        JOBS.labels(status.value).set(count)
    DUE_JOBS.set(stats.due)
    OLDEST_DUE.set(stats.oldest_due_seconds)
    return generate_latest(REGISTRY)


class MetricsMiddleware:
    """Counts what crosses the ASGI boundary: uploads by response status, WebSocket connections,
    messages sent and clients dropped, without a line in the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/api/upload":
            await self._upload(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                outcome = "accepted" if status < 400 else "refused" if status < 500 else "failed"
                UPLOADS.labels(outcome, str(status)).inc()
            await send(message)

        await self.app(scope, receive, counted)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def counted(message: Message) -> None:
            nonlocal accepted
            kind = message["type"]
            if kind == "websocket.accept":
                accepted = True
                WS_CONNECTIONS.inc()
            elif kind == "websocket.send":
                WS_SENT.inc()
            elif kind == "websocket.close" and message.get("code") == CLOSE_TRY_AGAIN_LATER:
                WS_DROPPED.inc()
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            if accepted:
                WS_CONNECTIONS.dec()
