"""Any OpenAI-compatible chat completions server: OpenAI, vLLM, Ollama, LM Studio, llama.cpp.

Answers stream over server-sent events. A rate limit (429) that says when to come back
(``Retry-After``, in seconds or as an HTTP date) is waited out here, at most RETRY_AFTER_TIMES
times and for at most MAX_RETRY_AFTER seconds each. Past that, and for a 429 without it, a
server error (5xx), a time-out or an unreachable server, the request fails with a
TransientError, which the worker retries with backoff; any other refusal fails the job. The
server's own words are for the log only: a TransientError's message names just the status (its
body is in the error's notes), and the runner shows the user a fixed message for the others.
Closing the stream closes the HTTP response, which tells the server to stop generating.

With ``vision`` (a model that reads images), the pictures given with a question go in the last
user message as ``image_url`` content parts after its text (the image's OCR text, or the line
that answers), as the chat completions API takes them.

The remote model's tokenizer is unknown here: its context window is a setting, and tokens are
estimated on the safe side (base.estimate_tokens).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx

from doclane.errors import DoclaneError, ProcessingError, TransientError
from doclane.providers.base import Message, Provider

CONNECT_SECONDS = 10.0
RETRY_AFTER_TIMES = 3  # 429s with a Retry-After waited out in one request, at most
MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is left to the worker's own retry


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        context_tokens: int = 8192,
        vision: bool = False,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_SECONDS),
            transport=transport,
        )
        self._model = model
        self.context_tokens = context_tokens
        self.supports_vision = vision

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        # Any answer but a server error will do: the server is up (a key problem shows in jobs).
        response = await self._client.get("/models", timeout=CONNECT_SECONDS)
        if response.status_code >= 500:
            raise RuntimeError(f"{self.name} server answered {response.status_code}")

    async def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        prefix: str = "",
        images: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        sent: list[dict[str, Any]] = list(messages)
        if images and self.supports_vision:
            sent = _with_images(sent, images)
        if prefix:  # servers that support it (llama.cpp, vLLM) continue a final assistant turn
            sent.append({"role": "assistant", "content": prefix})
        request = {
            "model": self._model,
            "messages": sent,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
        try:
            for waits in range(RETRY_AFTER_TIMES + 1):
                async with self._client.stream(
                    "POST", "/chat/completions", json=request
                ) as response:
                    if response.status_code == 200:
                        async for line in response.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            data = line.removeprefix("data:").strip()
                            if data == "[DONE]":
                                return
                            piece = _content(json.loads(data))
                            if piece:
                                yield piece
                        return
                    body = await response.aread()
                    wait = _retry_after(response) if response.status_code == 429 else None
                    if wait is None or wait > MAX_RETRY_AFTER or waits == RETRY_AFTER_TIMES:
                        raise _refusal(response.status_code, body)
                await anyio.sleep(wait)  # the response closed: the service asked for a pause
        except httpx.TimeoutException as exc:
            raise TransientError("The LLM service timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError("The LLM service could not be reached") from exc
        except json.JSONDecodeError as exc:
            raise ProcessingError("The LLM service sent a malformed stream") from exc


def _with_images(messages: list[dict[str, Any]], images: Sequence[str]) -> list[dict[str, Any]]:
    """The messages with ``images`` as ``image_url`` parts after the last user message's text."""
    out = list(messages)
    last = max(i for i, m in enumerate(out) if m["role"] == "user")
    parts: list[dict[str, Any]] = [{"type": "text", "text": out[last]["content"]}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    out[last] = {**out[last], "content": parts}
    return out


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds ``Retry-After`` asks to wait (given in seconds or as an HTTP date), or None
    when it is missing or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is in GMT
        return None
    return max(0.0, when.timestamp() - time.time())


def _content(chunk: Any) -> str | None:
    if isinstance(chunk, dict) and "error" in chunk:
        raise ProcessingError(f"The LLM service failed: {_message(chunk)}")
    try:
        piece = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None  # e.g. a final usage-only chunk
    return piece if isinstance(piece, str) else None


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error or body)[:300]


def _refusal(status: int, raw: bytes) -> DoclaneError:
    try:
        detail = _message(json.loads(raw))
    except ValueError:
        detail = raw.decode("utf-8", "replace")[:300]
    if status == 429 or status >= 500:
        error = TransientError(f"The LLM service is unavailable ({status})")
        error.add_note(f"The service said: {detail}")
        return error
    return ProcessingError(f"The LLM service refused the request ({status}): {detail}")
