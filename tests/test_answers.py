"""Answer quality on documents with known answers, through the real pipeline and model.

The default model is tiny: it phrases, it does not calculate. So CSV figures must appear in the
answer exactly (doclane computes them), and for PDFs the passage holding the fact, with its page
number, must be what the model reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from doclane.context import build_messages
from doclane.documents import extract
from doclane.jobs import DocumentKind
from tests.documents import make_csv, make_pdf
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = pytest.mark.anyio

NEEDLE = "The warranty period for the XR-7 turbine is eleven years."


def needle_pdf(path: Path) -> Path:
    filler = "Quarterly notes on staffing, facilities, travel and training, section {}.{}."
    pages = [[filler.format(n, i) for i in range(30)] for n in range(1, 31)]
    pages[16][12] = NEEDLE  # page 17
    return make_pdf(path, pages)


def test_the_fact_and_its_page_reach_the_model(tmp_path: Path) -> None:
    document = extract(
        needle_pdf(tmp_path / "n.pdf"), DocumentKind.PDF, lambda *_: None, lambda: False
    )
    assert len(document.pages) == 30
    [message] = build_messages(document, "How long is the XR-7 turbine warranty?", 400)
    assert "[Page 17] " in message["content"] and NEEDLE in message["content"]
    assert len(message["content"]) < 400 * 4 + 600  # and little else: a fast first token


async def test_known_answers(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server({"DOCLANE_MAX_ANSWER_TOKENS": "48"})
    csv = make_csv(tmp_path / "orders.csv", rows=40)  # amount = 2.5 * order_id
    questions = {
        "What is the total amount?": "**total amount: 2,050**",
        "How many orders are in the North region?": "**number of rows where region = North: 10**",
        "What is the average amount by region?": "| North | 55 |",
    }
    async with connect(server.ws) as ws:
        jobs = {
            (await upload(server.http, csv, question))["data"]["job_id"]: expected
            for question, expected in questions.items()
        }
        pdf_job = (
            await upload(
                server.http,
                needle_pdf(tmp_path / "n.pdf"),
                "How long is the XR-7 turbine warranty?",
            )
        )["data"]["job_id"]
        received = await follow(ws, {*jobs, pdf_job})
    for job_id, expected in jobs.items():
        assert expected in check_stream(of_job(received, job_id))
    # The model may get it wrong; the answer always shows where the fact stands.
    assert f"> Source, p. 17: {NEEDLE}" in check_stream(of_job(received, pdf_job))


async def test_summary_of_a_long_pdf_covers_it_all(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_CONTEXT_BUDGET_TOKENS": "150"})
    topics = ["turbines", "staffing", "budgets", "safety", "travel", "training"]
    line = "Section {n} is about {topic}: notes {n}.{i} on {topic}."
    pages = [
        [line.format(n=n, i=i, topic=topics[(n - 1) // 10]) for i in range(20)]
        for n in range(1, 61)
    ]
    pdf = make_pdf(tmp_path / "long.pdf", pages)
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, pdf, "Summarise this document."))["data"]["job_id"]
        events = of_job(await follow(ws, {job_id}), job_id)
    answer = check_stream(events)
    headings = [line.split("**")[1] for line in answer.split("\n") if line.startswith("**Page")]
    assert headings[0].startswith("Pages 1-") and headings[-1].endswith("-60.")
    assert len(headings) == 6
