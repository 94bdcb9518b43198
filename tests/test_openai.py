"""The `openai` provider against a real OpenAI-compatible server (llama.cpp's), through a real
doclane server; failures it must retry or report, at the HTTP boundary."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from doclane.errors import ProcessingError, TransientError
from doclane.providers.openai import OpenAIProvider
from tests.documents import make_report_pdf
from tests.server import ServerProcess, free_port
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    """llama.cpp's HTTP server in a child process, stopped after the module's tests."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.llama_server", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("llama.cpp server did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


class FlakyFront:
    """An HTTP front to the real server that answers the first ``failures`` requests with a
    429, as a busy hosted API does, then passes requests through."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = upstream
        self.failures = failures
        self.requests = 0
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, port=self.port, log_level="warning", lifespan="off")
        )

    async def chat(self, request: Request) -> Response:
        self.requests += 1
        if self.requests <= self.failures:
            return JSONResponse({"error": {"message": "Rate limit reached"}}, status_code=429)
        body = await request.body()

        async def relay() -> AsyncIterator[bytes]:
            async with (
                httpx.AsyncClient(timeout=60) as client,
                client.stream("POST", f"{self.upstream}/chat/completions", content=body) as up,
            ):
                async for chunk in up.aiter_raw():
                    yield chunk

        return StreamingResponse(relay(), media_type="text/event-stream")

    def __enter__(self) -> str:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("front did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def openai_env(url: str) -> dict[str, str]:
    return {
        "DOCLANE_LLM_PROVIDER": "openai",
        "DOCLANE_OPENAI_BASE_URL": url,
        "DOCLANE_OPENAI_MODEL": "smollm2",
        "DOCLANE_RETRY_BASE_SECONDS": "0.2",
    }


async def test_answers_stream_from_an_openai_compatible_server(
    start_server: Callable[..., ServerProcess], tmp_path: Path, llama_url: str
) -> None:
    server = start_server(openai_env(llama_url))
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, pdf, "What was the revenue in 2024?"))["data"]["job_id"]
        events = of_job(await follow(ws, {job_id}), job_id)
    check_stream(events)
    assert sum(e["type"] == "ai_chunk" for e in events) > 2  # streamed, not in one piece


async def test_rate_limits_are_retried(
    start_server: Callable[..., ServerProcess], tmp_path: Path, llama_url: str
) -> None:
    with FlakyFront(llama_url, failures=2) as front_url:
        server = start_server(openai_env(front_url))
        pdf = make_report_pdf(tmp_path / "r.pdf")
        async with connect(server.ws) as ws:
            job_id = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
            events = of_job(await follow(ws, {job_id}), job_id)
    retries = [e for e in events if e.get("status") == "pending"]
    assert len(retries) == 2 and "(429)" in retries[0]["stage"]
    assert events[-1]["type"] == "job_completed"


def mock_provider(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAIProvider:
    # The HTTP boundary, answered by a scripted transport.
    return OpenAIProvider("http://llm.test/v1", "secret", "m", 5, httpx.MockTransport(handler))


async def collect(provider: OpenAIProvider) -> str:
    return "".join(
        [piece async for piece in provider.stream([{"role": "user", "content": "q"}], 9)]
    )


async def test_refusals_and_outages_are_told_apart() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer secret"
        return httpx.Response(400, json={"error": {"message": "model 'm' not found"}})

    with pytest.raises(ProcessingError, match=r"refused the request \(400\): model 'm' not found"):
        await collect(mock_provider(refuse))
    with pytest.raises(TransientError, match=r"\(503\)"):
        await collect(mock_provider(lambda _: httpx.Response(503, text="overloaded")))

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransientError, match="could not be reached"):
        await collect(mock_provider(unreachable))

    def stream(_: httpx.Request) -> httpx.Response:
        lines = [
            {"choices": [{"delta": {"role": "assistant"}}]},
            {"choices": [{"delta": {"content": "Four"}}]},
            {"choices": [{"delta": {"content": " point two."}}]},
            {"choices": [], "usage": {"total_tokens": 3}},
        ]
        body = "".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    assert await collect(mock_provider(stream)) == "Four point two."


async def test_cancel_closes_the_provider_stream(
    start_server: Callable[..., ServerProcess], tmp_path: Path, llama_url: str
) -> None:
    server = start_server({**openai_env(llama_url), "DOCLANE_MAX_ANSWER_TOKENS": "300"})
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as ws, httpx.AsyncClient(base_url=server.http) as http:
        job_id = (await upload(server.http, pdf, "Write a long essay."))["data"]["job_id"]
        with anyio.fail_after(60):
            while json.loads(await ws.recv())["type"] != "ai_chunk":
                pass
        started = time.monotonic()
        assert (await http.delete(f"/api/jobs/{job_id}")).status_code == 200
        with anyio.fail_after(10):
            while (event := json.loads(await ws.recv()))["type"] != "job_failed":
                pass
        assert time.monotonic() - started < 1.0 and event["status"] == "cancelled"
        # The worker is free at once: the next job streams from the same server.
        other = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        check_stream(of_job(await follow(ws, {other}), other))
