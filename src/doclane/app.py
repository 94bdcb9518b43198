"""The ASGI application: ``create_app(settings)`` wires every resource in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from doclane import __version__, api, page, probes, websocket
from doclane.auth import Access, Keyring
from doclane.errors import DoclaneError
from doclane.guards import Guard
from doclane.limits import SocketSlots
from doclane.metrics import MetricsMiddleware
from doclane.responses import ErrorBody
from doclane.services import open_services
from doclane.settings import Settings

log = logging.getLogger(__name__)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=message).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


async def _doclane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DoclaneError)
    return _error(exc.status_code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
    )
    return _error(422, f"Invalid request: {details}")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "Internal server error")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    keyring = Keyring.from_settings(settings)  # a bad key is an error before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, run_worker=settings.run_worker) as services:
            app.state.services = services
            app.state.access = Access(keyring, services.store)
            app.state.sockets = SocketSlots(
                settings.ws_connections_per_user, settings.ws_max_connections
            )
            yield

    app = FastAPI(
        title="doclane",
        version=__version__,
        summary="Chat with your documents: upload, queue, extract, stream the answer.",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(Guard, settings=settings)  # outside CORS: refused before it
    app.add_exception_handler(DoclaneError, _doclane_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(MetricsMiddleware)
    app.include_router(api.router)
    app.include_router(probes.router)
    app.include_router(websocket.router)
    app.include_router(page.router)
    return app
