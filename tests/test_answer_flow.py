"""An answer's course through the worker, with a scripted model: the grounding line opens it,
the model's sentence after it is kept only when it agrees, figures the document does not hold
never reach a chunk, and a re-run continues what a crashed run persisted. Every chunk's
``partial`` is the concatenation of the chunks before it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from doclane import messages
from doclane.events import MemoryEventBus
from doclane.jobs import Change, JobStore, NewJob, open_store
from doclane.jobs.model import DocumentKind
from doclane.journal import Journal
from doclane.numberguard import UNVERIFIED
from doclane.settings import Settings
from doclane.storage import LocalStorage
from doclane.worker import Worker
from tests.documents import in_storage, make_report_pdf
from tests.fakes import ScriptedProvider, Step

pytestmark = pytest.mark.anyio

COMPUTED = "Computed exactly over every row:"  # the headings of what the model reads
NOTE = "Not computed:"
LEAD = "> Source, p. 2: Revenue in 2024 was 4.2 million dollars."
REVENUE = "What was the revenue in 2024?"


@asynccontextmanager
async def worker(tmp_path: Path, provider: ScriptedProvider) -> AsyncIterator[JobStore]:
    settings = Settings(data_dir=tmp_path, poll_interval_seconds=0.05, chunk_interval_ms=0)
    store = open_store(settings.resolved_database_url)
    await store.open()
    try:
        async with anyio.create_task_group() as tg:
            journal = Journal(store, MemoryEventBus())
            storage = LocalStorage(settings.uploads_dir)
            tg.start_soon(Worker(settings, journal, provider, storage).run)
            yield store
            tg.cancel_scope.cancel()
    finally:
        await store.close()


async def submit(
    store: JobStore, path: Path, prompt: str, kind: DocumentKind = DocumentKind.PDF
) -> str:
    job_id = f"job-{time.monotonic_ns()}"
    key = in_storage(path, path.parent, job_id)  # every test's data_dir is its tmp_path
    await store.create(NewJob(job_id, path.name, key, kind, prompt, 0, time.time()))
    return job_id


async def finished(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    """The job's events once it has ended, as its log keeps them."""
    with anyio.fail_after(20):
        while True:
            events = await store.events_after(job_id, 0)
            if events and events[-1]["type"] in ("job_completed", "job_failed"):
                return events
            await anyio.sleep(0.05)


def chunks(events: list[dict[str, Any]]) -> list[str]:
    """The chunks sent, checked to add up: each partial is all the chunks so far."""
    text, sent = "", []
    for event in events:
        if event["type"] == "ai_chunk":
            text += event["chunk"]
            assert event["partial"] == text
            sent.append(event["chunk"])
    assert events[-1]["type"] == "job_completed" and events[-1]["ai_response"] == text
    return sent


async def test_the_grounding_line_opens_the_answer(tmp_path: Path) -> None:
    pdf = make_report_pdf(tmp_path / "r.pdf")
    provider = ScriptedProvider(
        Step(pieces=["Revenue was 5", ".1 million", "."]),  # another figure: left out
        Step(pieces=["The company earned 4", ".2 million dollars in 20", "24."]),
    )
    async with worker(tmp_path, provider) as store:
        wrong = await finished(store, await submit(store, pdf, REVENUE))
        right = await finished(store, await submit(store, pdf, REVENUE))
    assert chunks(wrong) == [LEAD]
    assert chunks(right) == [LEAD, "\n\nThe company earned 4.2 million dollars in 2024."]
    assert provider.prefixes == ["", ""]


async def test_an_unsupported_figure_never_reaches_a_chunk(tmp_path: Path) -> None:
    """With no line to lead, the model answers from the passages; what it says is streamed,
    a figure that is not in them marked before it is sent, however the pieces split it."""
    pdf = make_report_pdf(tmp_path / "r.pdf")
    pieces = [
        "Revenue was 4",
        ".2 million in 20",
        "24, not 9",
        ".",
        "9 million; see p",
        ". 2 ",
        "and p. 9",
        ".",
    ]
    provider = ScriptedProvider(Step(pieces=pieces))
    async with worker(tmp_path, provider) as store:
        events = await finished(store, await submit(store, pdf, "Is the outlook good?"))
    sent = chunks(events)
    answer = "".join(sent)
    assert answer == (
        f"Revenue was 4.2 million in 2024, not {UNVERIFIED} million; see p. 2 and p. {UNVERIFIED}."
    )
    assert all("9.9" not in chunk and not chunk.endswith("9") for chunk in sent)


async def test_a_rerun_after_the_lead_does_not_repeat_it(tmp_path: Path) -> None:
    """A run that crashed after sending the lead: the next one sends only what follows it,
    and the model starts its own words afresh."""
    pdf = make_report_pdf(tmp_path / "r.pdf")
    store = open_store(f"sqlite:///{tmp_path / 'doclane.db'}")
    await store.open()
    job_id = await submit(store, pdf, REVENUE)
    await store.claim("dead-host:1:x", 0.01)
    await store.emit(
        job_id, "dead-host:1:x", Change(answer=LEAD), messages.ai_chunk(job_id, LEAD, LEAD)
    )
    await store.close()
    await anyio.sleep(0.05)  # the dead worker's lease expires
    provider = ScriptedProvider(Step(pieces=["Revenue reached 4.2 million dollars."]))
    async with worker(tmp_path, provider) as store:
        events = await finished(store, job_id)
    assert chunks(events) == [LEAD, "\n\nRevenue reached 4.2 million dollars."]
    assert provider.prefixes == [""]


async def test_a_table_question_nothing_was_computed_for_is_not_called_computed(
    tmp_path: Path,
) -> None:
    """The planner cannot read "not public": the answer opens with the note that names the
    columns, and the model reads that note under its own heading, never under the one for
    computed figures, with the table's profile to answer from."""
    table = tmp_path / "invest.csv"
    table.write_text("firm,year,invest\nGM,1950,10.5\nFord,1950,4.2\nGM,1951,12.25\n")
    note = "No figure was computed for this question; it mentions the columns invest and firm."
    provider = ScriptedProvider(Step(pieces=["The table does not say which firms are public."]))
    question = "What is the average invest of firms that are not public?"
    async with worker(tmp_path, provider) as store:
        events = await finished(store, await submit(store, table, question, DocumentKind.CSV))
    first, *rest = chunks(events)  # the model's words stream: in as many chunks as they come
    assert first == note and "".join(rest) == "\n\nThe table does not say which firms are public."
    [[message]] = provider.messages
    read = message["content"]
    assert COMPUTED not in read
    assert f"{NOTE}\n{note}" in read
    assert "CSV table: 3 rows, 3 columns." in read  # the profile, to answer from


async def test_computed_figures_are_read_under_their_heading_alone(tmp_path: Path) -> None:
    table = tmp_path / "invest.csv"
    table.write_text("firm,year,invest\nGM,1950,10.5\nFord,1950,4.2\nGM,1951,12.25\n")
    provider = ScriptedProvider(Step(pieces=["GM invested 12.25 in 1951."]))
    question = "What is the highest invest?"
    async with worker(tmp_path, provider) as store:
        events = await finished(store, await submit(store, table, question, DocumentKind.CSV))
    figures = chunks(events)[0]
    assert "12.25" in figures
    [[message]] = provider.messages
    assert f"{COMPUTED}\n{figures}" in message["content"]
    assert NOTE not in message["content"]
