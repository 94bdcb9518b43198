"""What an operator's tools ask a process: is it ready (``GET /api/ready``), and its metrics
(``GET /metrics``, which needs a key when auth is on). The API serves both; a worker run apart
serves them, with ``GET /api/health``, on a port of its own (:func:`worker_app`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse

from doclane import metrics
from doclane.auth import Access, Keyring, UserDep
from doclane.responses import NotReady, Readiness, ReadyResponse, errors
from doclane.services import Services, ServicesDep

router = APIRouter()

PING_SECONDS = 2.0  # a dependency slower than this is not ready


async def _check(ping: Callable[[], Awaitable[None]]) -> str:
    try:
        with anyio.fail_after(PING_SECONDS):
            await ping()
    except TimeoutError:
        return f"no answer in {PING_SECONDS:g} s"
    except Exception as exc:  # whatever the driver raises: the probe reports it
        return str(exc) or type(exc).__name__
    return "ok"


@router.get(
    "/api/ready",
    response_model=ReadyResponse,
    response_model_exclude_none=True,  # no `model` where no worker runs
    responses={
        **errors(400),
        503: {"model": NotReady, "description": "A dependency is unreachable: `error` names it"},
    },
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Whether this process can do its work now: the database and the event bus answer, and,
    where a worker runs, the model is loaded (or its server reachable). 200 or 503."""
    checks = {
        "database": await _check(services.store.ping),
        "bus": await _check(services.bus.ping),
    }
    if services.worker is not None:
        checks["model"] = await _check(services.worker.provider.ping)
    failing = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    data = Readiness(ready=not failing, **checks)
    body: ReadyResponse | NotReady = (
        NotReady(data=data, error="Not ready: " + "; ".join(failing))
        if failing
        else ReadyResponse(data=data)
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if failing else 200)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {metrics.CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **errors(400, 401, 503),
    },
)
async def prometheus(services: ServicesDep, _: UserDep) -> Response:
    """Prometheus metrics of this process (and the queue, read from the database); with auth
    on, any user's key reads them (Prometheus sends it as a bearer token)."""
    exposition = await metrics.exposition(services.store)
    return Response(exposition, media_type=metrics.CONTENT_TYPE_LATEST)


def worker_app(services: Services) -> FastAPI:
    """The probes of a worker run apart: health, readiness and metrics."""
    app = FastAPI(title="doclane worker", openapi_url=None)
    app.state.services = services
    app.state.access = Access(Keyring.from_settings(services.settings), services.store)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"success": True, "data": {"status": "ok", "worker": True}}

    app.include_router(router)
    return app


class ProbeServer(uvicorn.Server):
    """uvicorn for the worker's probes, leaving SIGTERM and Ctrl-C to the worker."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
