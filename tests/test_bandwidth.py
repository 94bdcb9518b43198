"""What one socket receives per token of an answer: every ai_chunk carries the whole answer so
far (``partial``, which the seed front end needs), so a chunk per token would cost O(n²) bytes.
The runner coalesces chunks so that the bytes per token stay bounded however long the answer
(see docs/security.md for the figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doclane.runner import CHUNK_GROWTH
from tests.fakes import ScriptedProvider, Step
from tests.test_worker import running_worker
from tests.wsclient import check_stream

pytestmark = pytest.mark.anyio

TOKEN = "word "  # 5 bytes, as an English token of ~4 characters and its space


@pytest.mark.parametrize("tokens", [200, 1000])
async def test_bytes_per_token_per_socket_are_bounded(tmp_path: Path, tokens: int) -> None:
    provider = ScriptedProvider(Step(pieces=[TOKEN] * tokens, delay=0.002))
    async with running_worker(
        tmp_path, provider, max_answer_tokens=tokens, chunk_interval_ms=5
    ) as harness:
        job_id = await harness.submit()
        events = await harness.until_final(job_id, timeout=120)
    answer = check_stream(events)
    sent = sum(len(json.dumps(e).encode()) for e in events if e["type"] == "ai_chunk")
    written = answer.count("word")
    assert written >= tokens * 0.9
    per_token = sent / written
    chunks = sum(1 for e in events if e["type"] == "ai_chunk")
    print(f"{written} tokens, {chunks} chunks, {sent} B: {per_token:.0f} B per token")
    # Each chunk's partial is at most 1/CHUNK_GROWTH of the answer shorter than the next one's,
    # so all the partials together are at most (CHUNK_GROWTH + 1) answers long; each chunk also
    # carries its own text and ~150 bytes of envelope.
    bound = (CHUNK_GROWTH + 2) * len(TOKEN) + 150 * chunks / written
    assert per_token <= bound, (per_token, bound)
