from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from doclane.app import create_app
from doclane.settings import Settings
from tests.server import ServerProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_answer_tokens=24, run_worker=False)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real ASGI app in-process, lifespan included; no worker, so jobs stay queued."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://doclane") as client:
            yield client


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real `doclane serve` processes; every one is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        max_file_bytes: int | None = None,
    ) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", env, max_file_bytes)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
