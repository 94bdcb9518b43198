"""The `openai` provider against a real OpenAI-compatible server (llama.cpp's), through a real
doclane server; failures it must retry or report, at the HTTP boundary."""

from __future__ import annotations

import base64
import email.utils
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from PIL import Image, ImageDraw, ImageFont
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from doclane.documents.image import PICTURE_BYTES, PICTURE_SIDE, picture
from doclane.errors import ProcessingError, TransientError
from doclane.providers.openai import MAX_RETRY_AFTER, RETRY_AFTER_TIMES, OpenAIProvider
from tests.documents import make_report_pdf
from tests.server import ServerProcess, free_port
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


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


class ChatServer:
    """A real HTTP server on a free port, in a thread, whose ``chat`` answers
    ``POST /v1/chat/completions``; ``with`` it to get its base URL."""

    def __init__(self) -> None:
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, port=self.port, log_level="warning", lifespan="off")
        )

    async def chat(self, request: Request) -> Response:
        raise NotImplementedError

    def __enter__(self) -> str:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class FlakyFront(ChatServer):
    """An HTTP front to the real server that answers the first ``failures`` requests with a
    429, as a busy hosted API does, then passes requests through."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = upstream
        self.failures = failures
        self.requests = 0
        super().__init__()

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
        # A request with no one line to lead with: the model's answer is the whole answer.
        job_id = (await upload(server.http, pdf, "Describe this report in detail."))["data"][
            "job_id"
        ]
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


class StandIn(ChatServer):
    """A real HTTP server standing in for an OpenAI-compatible API: it answers each request with
    the next of ``replies`` (a status and headers; 200 streams ``ANSWER``), and keeps what each
    request sent and when."""

    ANSWER = "The invoice number is 4711."

    def __init__(self, *replies: tuple[int, dict[str, str]]) -> None:
        self.replies = list(replies)
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        super().__init__()

    async def chat(self, request: Request) -> Response:
        self.bodies.append(json.loads(await request.body()))
        self.times.append(time.monotonic())
        status, headers = self.replies.pop(0) if self.replies else (200, {})
        if status != 200:
            error = {"error": {"message": "Rate limit reached"}}
            return JSONResponse(error, status_code=status, headers=headers)
        pieces = self.ANSWER.replace(" ", "\0 ").split("\0")  # "The", " invoice", …
        body = "".join(
            f"data: {json.dumps({'choices': [{'delta': {'content': p}}]})}\n\n" for p in pieces
        )
        return Response(body + "data: [DONE]\n\n", media_type="text/event-stream")


def invoice_png(path: Path, size: tuple[int, int]) -> Path:
    """A photographed-style invoice, larger than a vision request may carry."""
    image = Image.new("RGB", size, (250, 248, 240))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size[0] // 25)
    draw.text((size[0] // 10, size[1] // 4), "INVOICE", fill="black", font=font)
    draw.text((size[0] // 10, size[1] // 2), "Invoice number: 4711", fill="black", font=font)
    image.save(path)
    return path


async def test_an_image_goes_to_a_vision_model_with_its_ocr_text(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """With DOCLANE_OPENAI_VISION, the request about an image carries the picture as an
    image_url part (a JPEG data URL, scaled down to the cap) after the text with its OCR line;
    without it, the same request is text alone."""
    image = invoice_png(tmp_path / "invoice.png", (4000, 3000))
    sent = {}
    for vision in ("true", "false"):
        api = StandIn()
        with api as url:
            env = {**openai_env(url), "DOCLANE_OPENAI_VISION": vision}
            server = start_server(env, data_dir=tmp_path / vision)
            async with connect(server.ws) as ws:
                reply = await upload(server.http, image, "What is the invoice number?")
                job_id = reply["data"]["job_id"]
                events = of_job(await follow(ws, {job_id}), job_id)
        check_stream(events)
        assert "4711" in events[-1]["ai_response"]
        [body] = api.bodies
        sent[vision] = body["messages"][-1]["content"]
    assert isinstance(sent["false"], str) and "4711" in sent["false"]
    text, picture = sent["true"]
    assert text == {"type": "text", "text": sent["false"]}  # the OCR text, as without vision
    assert picture["type"] == "image_url"
    url = picture["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    data = base64.b64decode(url.removeprefix("data:image/jpeg;base64,"))
    assert len(data) <= PICTURE_BYTES
    with Image.open(io.BytesIO(data)) as shown:
        assert shown.format == "JPEG" and shown.size == (PICTURE_SIDE, PICTURE_SIDE * 3 // 4)


def test_a_picture_too_heavy_at_full_size_is_scaled_down_to_the_cap() -> None:
    noise = Image.effect_noise((1500, 1500), 120).convert("RGB")  # JPEG cannot shrink noise
    url = picture(noise, max_bytes=200_000)
    data = base64.b64decode(url.removeprefix("data:image/jpeg;base64,"))
    assert len(data) <= 200_000
    with Image.open(io.BytesIO(data)) as shown:
        assert max(shown.size) < 1500


def rate_limited(retry_after: str) -> tuple[int, dict[str, str]]:
    return 429, {"Retry-After": retry_after}


async def test_retry_after_is_waited_out_in_seconds_or_as_a_date() -> None:
    # Sent a second after this, the date (whole seconds) stands 1-2 s ahead.
    in_three_seconds = email.utils.formatdate(time.time() + 3, usegmt=True)
    api = StandIn(rate_limited("1"), rate_limited(in_three_seconds))
    with api as url:
        provider = OpenAIProvider(url, None, "m", 5)
        try:
            assert await collect(provider) == StandIn.ANSWER
        finally:
            await provider.close()
    first, second, third = api.times
    assert 0.9 <= second - first < 3
    assert 0.9 <= third - second < 3.5


async def test_retry_after_waits_are_bounded() -> None:
    # Longer than MAX_RETRY_AFTER: no wait here, the worker's own retry takes over.
    api = StandIn(rate_limited(str(MAX_RETRY_AFTER + 1)))
    with api as url:
        provider = OpenAIProvider(url, None, "m", 5)
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"\(429\)"):
            await collect(provider)
        assert time.monotonic() - started < 2 and len(api.bodies) == 1
        # Asked to wait again and again: RETRY_AFTER_TIMES waits, then the 429 is an error.
        api.replies = [rate_limited("0")] * (RETRY_AFTER_TIMES + 5)
        with pytest.raises(TransientError, match=r"\(429\)"):
            await collect(provider)
        assert len(api.bodies) == 1 + RETRY_AFTER_TIMES + 1
        await provider.close()
