"""Time to the first answer chunk: a question about a 10-page PDF, uploaded to a real server,
until its first `ai_chunk` arrives over the WebSocket. The baseline, in the same run, is the
bare model answering the very prompt doclane built (time to its first token), so the ratio
shows what the queue, extraction, retrieval and streaming add.

    .venv/bin/python -m benchmarks.first_token [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import tempfile
import time
from pathlib import Path

import anyio
from tests.documents import make_pdf
from tests.server import ServerProcess
from tests.wsclient import upload
from websockets.asyncio.client import connect

from benchmarks.report import write_section
from doclane.context import Budget, build_messages
from doclane.documents import extract
from doclane.jobs import DocumentKind
from doclane.providers.local import LocalProvider
from doclane.settings import Settings

QUESTION = "How long is the warranty of the XR-7 turbine?"


def ten_page_pdf(path: Path, seed: int) -> Path:
    """A new text each time: llama.cpp caches a prompt it has seen, which would flatter both."""
    rng = random.Random(seed)
    words = "the company reported growth in revenue profit staff market customers product".split()
    pages = [[" ".join(rng.choice(words) for _ in range(14)) for _ in range(40)] for _ in range(10)]
    pages[6][10] = "The warranty period for the XR-7 turbine is eleven years."
    return make_pdf(path, pages)


async def via_doclane(server: ServerProcess, pdf: Path, question: str = QUESTION) -> float:
    """Upload to the first ``ai_chunk``; returns once the job has ended, so that the next
    measure does not wait behind it (or share the CPU with its answer)."""
    async with connect(server.ws) as ws:
        started = time.perf_counter()
        job_id = (await upload(server.http, pdf, question))["data"]["job_id"]
        first_chunk = None
        with anyio.fail_after(120):
            while True:
                event = json.loads(await ws.recv())
                if event.get("job_id") != job_id:
                    continue
                if event["type"] == "ai_chunk" and first_chunk is None:
                    first_chunk = time.perf_counter() - started
                if event["type"] in ("job_completed", "job_failed"):
                    assert first_chunk is not None, event
                    return first_chunk


async def bare_model(provider: LocalProvider, pdf: Path, settings: Settings) -> float:
    document = extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False)
    budget = Budget(
        provider.count_tokens,
        provider.context_tokens,
        settings.max_answer_tokens,
        settings.context_budget_tokens,
    )
    messages = build_messages(document, QUESTION, budget)
    started = time.perf_counter()
    stream = provider.stream(messages, 8)
    async for _ in stream:
        break
    elapsed = time.perf_counter() - started
    await stream.aclose()  # type: ignore[attr-defined]
    return elapsed


async def measure(repeats: int) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory() as folder:
        provider = LocalProvider(None, settings.local_threads, settings.local_context_tokens, 1)
        await provider.start()
        server = ServerProcess(Path(folder) / "data").start()
        try:
            doclane, bare = [], []
            for repeat in range(repeats):  # in turns: a slow spell hits both
                pdf = ten_page_pdf(Path(folder) / f"ten-{repeat}.pdf", seed=repeat)
                doclane.append(await via_doclane(server, pdf))
                bare.append(await bare_model(provider, pdf, settings))
        finally:
            server.stop()
            await provider.close()
    row = f"| {min(doclane):.2f} | {min(bare):.2f} | {min(doclane) / min(bare):.2f} |"
    print(row)
    write_section(
        "first-token",
        f"""## Time to the first answer chunk

`benchmarks/first_token.py`, {datetime.date.today()}, {os.cpu_count()} cores, default settings
({settings.local_threads} inference thread, {settings.context_budget_tokens}-token context
budget), best of {repeats}: a question about a 10-page PDF (a different text each time, so no
prompt cache helps). *doclane* is upload to first
`ai_chunk` over the WebSocket on a running server (queue, extraction, retrieval, inference,
streaming); the baseline is the bare model's first token for the same prompt.

| doclane s | bare model s | ratio |
|---|---|---|
{row}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    anyio.run(measure, parser.parse_args().repeats)


if __name__ == "__main__":
    main()
