"""The ASGI application: ``create_app(settings)`` wires every resource in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from doclane import api, page, websocket
from doclane.errors import DoclaneError
from doclane.events import open_bus
from doclane.jobs import open_store
from doclane.providers import open_provider
from doclane.services import Services
from doclane.settings import Settings
from doclane.worker import Worker

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


async def _doclane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DoclaneError)
    return _error(exc.status_code, exc.message)


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings.resolved_database_url)
        await store.open()
        bus = open_bus()
        provider = open_provider(settings)
        worker = Worker(settings, store, bus, provider) if settings.run_worker else None
        app.state.services = Services(settings, store, bus, worker)
        try:
            async with anyio.create_task_group() as tg:
                if worker is not None:
                    tg.start_soon(worker.run)
                yield
                tg.cancel_scope.cancel()
        finally:
            await provider.close()
            await store.close()

    app = FastAPI(
        title="doclane",
        summary="Chat with your documents: upload, queue, extract, stream the answer.",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_exception_handler(DoclaneError, _doclane_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(api.router)
    app.include_router(websocket.router)
    app.include_router(page.router)
    return app
