"""Any OpenAI-compatible chat completions server: OpenAI, vLLM, Ollama, LM Studio, llama.cpp.

Answers stream over server-sent events. A rate limit (429), a server error (5xx), a time-out or
an unreachable server is a TransientError, which the worker retries with backoff; any other
refusal fails the job with the server's own message. Closing the stream closes the HTTP
response, which tells the server to stop generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from doclane.errors import DoclaneError, ProcessingError, TransientError
from doclane.providers.base import Message, Provider

CONNECT_SECONDS = 10.0


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_SECONDS),
            transport=transport,
        )
        self._model = model

    async def close(self) -> None:
        await self._client.aclose()

    async def stream(
        self, messages: list[Message], max_tokens: int, prefix: str = ""
    ) -> AsyncIterator[str]:
        if prefix:  # servers that support it (llama.cpp, vLLM) continue a final assistant turn
            messages = [*messages, {"role": "assistant", "content": prefix}]
        request = {
            "model": self._model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
        try:
            async with self._client.stream("POST", "/chat/completions", json=request) as response:
                if response.status_code != 200:
                    raise _refusal(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    piece = _content(json.loads(data))
                    if piece:
                        yield piece
        except httpx.TimeoutException as exc:
            raise TransientError("The LLM service timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError("The LLM service could not be reached") from exc
        except json.JSONDecodeError as exc:
            raise ProcessingError("The LLM service sent a malformed stream") from exc


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
        return TransientError(f"The LLM service is unavailable ({status}): {detail}")
    return ProcessingError(f"The LLM service refused the request ({status}): {detail}")
