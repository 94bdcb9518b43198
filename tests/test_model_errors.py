"""A model's failure in its own words goes to the log, with the job; the user gets a fixed
message (a failure worth retrying keeps a message of doclane's own, naming only a status)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from doclane.errors import ProcessingError, TransientError
from doclane.providers.openai import OpenAIProvider
from doclane.runner import MODEL_FAILED
from tests.fakes import ScriptedProvider, Step
from tests.test_worker import running_worker

pytestmark = pytest.mark.anyio

LLAMA_SAYS = "the request exceeds the available context size, try increasing it"


async def test_a_model_failure_is_logged_and_shown_as_a_fixed_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="doclane.runner")
    failure = ProcessingError(f"The local model failed: {LLAMA_SAYS}")
    async with running_worker(tmp_path, ScriptedProvider(Step(error=failure))) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
    assert events[-1]["type"] == "job_failed" and events[-1]["error"] == MODEL_FAILED
    [record] = [r for r in caplog.records if LLAMA_SAYS in r.getMessage()]
    assert record.levelno == logging.WARNING and job_id in record.getMessage()
    assert "'r.pdf'" in record.getMessage()


async def test_a_busy_service_is_retried_without_showing_its_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="doclane.runner")

    def busy(_: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": {"message": "Quota of org-7Hx exceeded"}})

    provider = OpenAIProvider("http://llm.test/v1", None, "m", 5, httpx.MockTransport(busy))
    try:
        with pytest.raises(TransientError) as raised:
            [_ async for _ in provider.stream([{"role": "user", "content": "q"}], 9)]
    finally:
        await provider.close()
    assert raised.value.message == "The LLM service is unavailable (429)"

    scripted = ScriptedProvider(Step(error=raised.value), Step())
    async with running_worker(tmp_path, scripted) as h:
        job_id = await h.submit()
        events = await h.until_final(job_id)
    [retry] = [e for e in events if e.get("status") == "pending"]
    assert "(429)" in retry["stage"] and "org-7Hx" not in json.dumps(events)
    assert events[-1]["type"] == "job_completed"
    [record] = [r for r in caplog.records if "org-7Hx" in r.getMessage()]
    assert record.levelno == logging.WARNING and job_id in record.getMessage()
