"""Answer quality on documents with known answers, through the real pipeline and model.

The default model is tiny: it phrases, it does not calculate. So CSV figures must appear in the
answer exactly (doclane computes them), and for PDFs and images the line holding the fact opens
the answer, with its page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from websockets.asyncio.client import connect

from doclane.context import Budget, build_messages
from doclane.documents import Document, extract
from doclane.jobs import DocumentKind
from doclane.providers.base import estimate_tokens
from tests.documents import make_csv, make_pdf, make_report_pdf, make_topics_pdf
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

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
    budget = Budget(estimate_tokens, 2048, 200, 400)
    [message] = build_messages(document, "How long is the XR-7 turbine warranty?", budget)
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
    # The model may get it wrong; the answer opens with the fact and where it stands.
    assert check_stream(of_job(received, pdf_job)).startswith(f"> Source, p. 17: {NEEDLE}")


def titled_manual(path: Path) -> Path:
    """A 12-page manual: its version and author on the title page, a limit on page 9."""
    prose = "The toolkit converts data between the two languages and writes the glue code."
    pages = [["Widgetkit user's manual", "Version 2.7", "Maria Lindqvist", "Nordic Institute"]]
    pages += [[prose] * 20 for _ in range(11)]
    pages[8][7] = "A widget name is a string of 1 up to 64 characters."
    return make_pdf(path, pages)


def price_list(path: Path) -> Path:
    """A price list drawn as a picture, as a phone or a screenshot gives it."""
    lines = ["Riverside Motors - Price list", "Audi sedan 13,950.00", "Volvo sedan 12,940.00"]
    lines += ["Mazda hatchback 5,195.00"]
    image = Image.new("RGB", (700, 300), "white")
    pen = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        pen.text((40, 30 + 60 * row), line, fill="black", font=ImageFont.load_default(size=30))
    image.save(path)
    return path


_CITED = re.compile(r"\bp\.\s*(\d+)|\[Page (\d+)\]")
_FIGURE = re.compile(r"(?<![\w.])\d[\d,.]*\d|(?<![\w.])\d(?![\w])")


@pytest.mark.llm
async def test_answers_open_with_their_grounding_and_state_no_invented_figure(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The real model after the line that answers: the line leads, with its page for a PDF,
    and every figure of the answer stands in the document (or the question)."""
    server = start_server()
    pdf, png = titled_manual(tmp_path / "manual.pdf"), price_list(tmp_path / "prices.png")
    questions = {
        (pdf, "Which version of Widgetkit does this manual describe?"): "p. 1: Version 2.7",
        (pdf, "How many characters long can a widget name be?"): (
            "p. 9: A widget name is a string of 1 up to 64 characters."
        ),
        (png, "How much does the Volvo cost?"): "in the image: Volvo sedan 12,940.00",
    }
    async with connect(server.ws) as ws:
        jobs = {
            (await upload(server.http, path, question))["data"]["job_id"]: (path, question, line)
            for (path, question), line in questions.items()
        }
        received = await follow(ws, set(jobs), timeout=240)
    for job_id, (path, question, line) in jobs.items():
        answer = check_stream(of_job(received, job_id))
        assert answer.startswith(f"> Source, {line}"), answer
        document = read(path)
        text = " ".join(page.text for page in document.pages) + " " + question
        cited = [int(a or b) for a, b in _CITED.findall(answer)]
        assert all(1 <= page <= len(document.pages) for page in cited), answer
        for figure in _FIGURE.findall(_CITED.sub(" ", answer)):
            assert figure.rstrip(".,") in text, (figure, answer)


def read(path: Path) -> Document:
    kind = DocumentKind.PDF if path.suffix == ".pdf" else DocumentKind.IMAGE
    return extract(path, kind, lambda *_: None, lambda: False)


async def test_summary_of_a_long_pdf_covers_it_all(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_CONTEXT_BUDGET_TOKENS": "150"})
    topics = ["turbines", "staffing", "budgets", "safety", "travel", "training"]
    pdf = make_topics_pdf(tmp_path / "long.pdf", topics, pages_per_topic=10)
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, pdf, "Summarise this document."))["data"]["job_id"]
        events = of_job(await follow(ws, {job_id}), job_id)
    answer = check_stream(events)
    headings = [line.split("**")[1] for line in answer.split("\n") if line.startswith("**Page")]
    assert headings[0].startswith("Pages 1-") and headings[-1].endswith("-60.")
    assert len(headings) == 6


def wide_csv(path: Path, columns: int = 60, rows: int = 30) -> Path:
    """A finance export: a region and monthly figures, each column profiled in the facts."""
    header = ["region", *(f"sales_{2020 + i // 12}_{i % 12 + 1:02d}" for i in range(columns - 1))]
    lines = [",".join(header)]
    for row in range(rows):
        figures = (f"{(row + 1) * (column + 3) * 10.25:.2f}" for column in range(columns - 1))
        lines.append(",".join([["North", "South", "East"][row % 3], *figures]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.llm
async def test_a_wide_table_is_answered(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Its profile overflows a 2,048-token window: it is cut to fit, not sent whole."""
    server = start_server()
    csv = wide_csv(tmp_path / "wide.csv")
    async with connect(server.ws) as ws:
        body = await upload(server.http, csv, "What is the total of sales_2023_06?")
        job_id = body["data"]["job_id"]
        check_stream(of_job(await follow(ws, {job_id}), job_id))  # completed, with an answer


@pytest.mark.llm
async def test_a_long_prompt_is_answered(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """8,000 characters, well inside the upload limit: cut in the middle to fit the window."""
    server = start_server()
    notes = " ".join(f"Note {i}: the board met, discussed staffing and travel." for i in range(150))
    prompt = f"My notes first. {notes}"[:7_960] + " What was the revenue in 2024?"
    assert len(prompt) >= 7_990
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, make_report_pdf(tmp_path / "r.pdf"), prompt))["data"][
            "job_id"
        ]
        check_stream(of_job(await follow(ws, {job_id}), job_id))
