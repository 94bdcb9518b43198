"""The context builder: whole document when it fits, else the most relevant passages, and
everything fitted to the model's window, measured with llama.cpp's own tokenizer and template."""

from __future__ import annotations

import random
from collections.abc import Iterator

import anyio
import httpx
import pytest

from doclane.context import (
    GROUNDED_SENTENCES,
    MAX_SECTIONS,
    QUESTION_SENTENCES,
    Budget,
    Count,
    answer_shape,
    build_messages,
    pages_read,
    select_passages,
    stop_at,
    summary_sections,
)
from doclane.documents import Document, Figures, Page
from doclane.jobs import DocumentKind
from doclane.providers import Message
from doclane.providers.base import estimate_tokens
from doclane.providers.local import LocalProvider

WINDOW, ANSWER, DOCUMENT = 2048, 200, 400


def long_document() -> Document:
    pages = [
        Page(
            n, "\n".join(f"Filler sentence {n}.{i} about gardening and weather." for i in range(20))
        )
        for n in range(1, 31)
    ]
    pages[16] = Page(17, "The warranty period for the XR-7 turbine is eleven years.")
    return Document(DocumentKind.PDF, "PDF document, 30 pages.", pages)


@pytest.fixture(scope="module")
def llama() -> Iterator[LocalProvider]:
    """The local provider, for llama.cpp's tokenizer and chat template (nothing is generated)."""
    provider = LocalProvider(None, 1, WINDOW, 1)
    yield provider
    anyio.run(provider.close)


@pytest.fixture(params=["llama.cpp", "estimate"])
def count(request: pytest.FixtureRequest, llama: LocalProvider) -> Count:
    """The local provider's counter, and the estimate the openai provider uses."""
    return llama.count_tokens if request.param == "llama.cpp" else estimate_tokens


def read_tokens(llama: LocalProvider, messages: list[Message], prefix: str = "") -> int:
    """What llama.cpp reads for a request: its chat template applied, then tokenized."""
    if prefix:
        messages = [*messages, {"role": "assistant", "content": prefix}]
    address = llama._load().listening_address  # the provider's own llama.cpp server
    templated = httpx.post(
        f"{address}/apply-template", json={"messages": messages}, trust_env=False
    ).json()["prompt"]
    return llama.count_tokens(templated)


def long_question(chars: int = 20_000) -> str:
    rng = random.Random(7)
    words = "revenue staff turbine 2024 warranty, region North; budget 4.2 million (see p. 17)"
    filler = " ".join(rng.choice(words.split()) for _ in range(chars // 5))
    return f"QSTART my notes follow. {filler}"[: chars - 40] + " So: which year? QEND"


def wide_profile(chars: int = 50_000) -> str:
    """Facts like a very wide CSV's profile: one line of figures per column."""
    lines = ["CSV table: 50 rows, 900 columns.", "Columns (exact figures over every row):"]
    column = 0
    while sum(len(line) + 1 for line in lines) < chars:
        lines.append(
            f"- net_sales_{column} (DOUBLE): 0 empty, ~50 distinct, min 35.19, "
            f"max 9,931.48, mean 4,647.9586, sum {232_397.93 + column:,}"
        )
        column += 1
    return "\n".join(lines)


def test_small_document_is_sent_whole(llama: LocalProvider) -> None:
    document = Document(DocumentKind.PDF, "PDF, 2 pages.", [Page(1, "Alpha."), Page(2, "Beta.")])
    budget = Budget(llama.count_tokens, WINDOW, ANSWER, DOCUMENT)
    [message] = build_messages(document, "What comes second?", budget)
    assert "[Page 1] Alpha." in message["content"] and "[Page 2] Beta." in message["content"]
    assert "Question: What comes second?" in message["content"]


def test_relevant_passages_are_picked_within_the_budget(llama: LocalProvider) -> None:
    question = "How long is the turbine warranty?"
    passages = select_passages(long_document(), question, 150, llama.count_tokens)
    assert sum(llama.count_tokens(f"\n\n[Page {p.page}] {p.text}") for p in passages) <= 150
    assert any(p.page == 17 for p in passages)
    budget = Budget(llama.count_tokens, WINDOW, ANSWER, DOCUMENT)
    [message] = build_messages(long_document(), question, budget)
    assert "[Page 17] The warranty period" in message["content"]


def test_unmatched_prompt_samples_the_whole_document(llama: LocalProvider) -> None:
    passages = select_passages(long_document(), "Summarise.", 800, llama.count_tokens)
    pages = {p.page for p in passages}
    assert min(pages) <= 3 and max(pages) >= 25  # not just the first pages


def test_summary_of_a_long_document_covers_every_part(llama: LocalProvider) -> None:
    filler = "Chapter {} discusses topic {} with figures and remarks on budget and staff."
    pages = [Page(n, "\n".join(filler.format(n, i) for i in range(25))) for n in range(1, 201)]
    document = Document(DocumentKind.PDF, "PDF document, 200 pages.", pages)
    count = llama.count_tokens
    sections = summary_sections(document, "Please summarise this report.", 400, count)
    assert len(sections) == MAX_SECTIONS
    assert sections[0].heading.startswith("**Pages 1-")
    assert sections[-1].heading.endswith("-200.** ")
    covered = [p.number for s in sections for p in s.document.pages]
    assert covered == sorted(covered) and covered[0] <= 34 and covered[-1] >= 167
    for section in sections:  # each part fits what the model reads in one pass
        assert count("\n\n".join(f"[Page 1] {p.text}" for p in section.document.pages)) <= 400
    # A specific question, or a document that fits, is answered in one pass instead.
    assert summary_sections(document, "What does chapter 7 say?", 400, count) == []
    assert summary_sections(long_document(), "Summarise.", 10_000, count) == []


def test_a_long_question_is_cut_in_the_middle(llama: LocalProvider, count: Count) -> None:
    question = long_question()
    document = Document(DocumentKind.PDF, "PDF, 1 page.", [Page(1, "Revenue was 4.2 million.")])
    messages = build_messages(document, question, Budget(count, WINDOW, ANSWER, DOCUMENT))
    assert read_tokens(llama, messages) + ANSWER <= WINDOW
    content = messages[0]["content"]
    assert question[:40] in content and question[-40:] in content and " […] " in content
    assert "[Page 1] Revenue was 4.2 million." in content  # the question left the text room


def test_long_facts_are_cut_at_a_word(llama: LocalProvider, count: Count) -> None:
    facts = wide_profile()
    document = Document(DocumentKind.CSV, facts, [Page(1, "order_id,region\n1,North")])
    question = "What is the total of net_sales_3?"
    messages = build_messages(document, question, Budget(count, WINDOW, ANSWER, DOCUMENT))
    assert read_tokens(llama, messages) + ANSWER <= WINDOW
    content = messages[0]["content"]
    assert f"Question: {question}\n" in content and facts[:300] in content
    kept = content.removeprefix("Text:\n").split(" […]")[0]
    assert facts.startswith(kept) and facts[len(kept)] in " \n"  # no number cut in half
    assert len(kept) > 2_000  # the window is used, not just a sliver of it


def test_everything_long_at_once_still_fits(llama: LocalProvider, count: Count) -> None:
    question = long_question()
    pages = [Page(n, long_question(3_000)) for n in range(1, 11)]
    document = Document(DocumentKind.CSV, wide_profile(), pages)
    figures = "| region | total |\n|---|---|\n" + "".join(f"| r{i} | {i}.5 |\n" for i in range(400))
    prefix = "The total is " + "very " * 60
    budget = Budget(count, WINDOW, ANSWER, DOCUMENT)
    messages = build_messages(document, question, budget, Figures(exact=figures), prefix)
    assert read_tokens(llama, messages, prefix) + ANSWER <= WINDOW
    content = messages[0]["content"]
    assert question[:40] in content and question[-40:] in content
    assert "Computed exactly over every row:\n| region | total |" in content


def test_the_estimate_never_counts_fewer_tokens_than_llama(llama: LocalProvider) -> None:
    rng = random.Random(3)
    base64 = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/"
    samples = {
        "prose": "The warranty period for the XR-7 turbine is eleven years, said the report. " * 30,
        "profile": wide_profile(5_000),
        "numbers": " ".join(str(rng.randint(0, 10**9)) for _ in range(300)),
        "json": str([{"id": i, "name": f"item {i}", "price": i * 1.1} for i in range(60)]),
        "hex": "".join(rng.choice("0123456789abcdef") for _ in range(2_000)),
        "base64": "".join(rng.choice(base64) for _ in range(2_000)),
        "letters": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(2_000)),
        "capitals": "THE WARRANTY PERIOD FOR THE TURBINE IS ELEVEN YEARS. " * 30,
        "german": "Die Gewährleistungsfrist für die Turbine beträgt elf Jahre. " * 30,
        "russian": "Гарантийный срок для турбины составляет одиннадцать лет. " * 30,
        "chinese": "涡轮机的保修期为十一年\uff0c包括检查和维护\u3002" * 40,
        "emoji": "🚀🔥✅ done 👍🏽 " * 60,
        "spacing": "word   \t  \n\n\n    other " * 100,
    }
    for name, text in samples.items():
        assert estimate_tokens(text) >= llama.count_tokens(text), name
    prose = samples["prose"]
    assert estimate_tokens(prose) <= 2 * llama.count_tokens(prose)  # and stays of use


def test_a_question_gets_a_short_answer_and_a_request_a_long_one() -> None:
    question = answer_shape("Which version does this manual describe?", False, 200)
    assert question.sentences == QUESTION_SENTENCES and question.tokens < 200
    grounded = answer_shape("How much does the Volvo cost?", True, 200)
    assert grounded.sentences == GROUNDED_SENTENCES and grounded.tokens < question.tokens
    for request in ["Describe this image.", "Please explain how the parser works.", "Summarise."]:
        assert answer_shape(request, True, 200).sentences is None
        assert answer_shape(request, True, 200).tokens == 200


def test_where_a_short_answer_stops() -> None:
    text = "Dr. Smith wrote it in 2002, see p. 4. It has 3.5 pages. And more. Also this."
    assert text[: stop_at(text + " ", 1)] == "Dr. Smith wrote it in 2002, see p. 4."
    assert (
        text[: stop_at(text + " ", 2)] == "Dr. Smith wrote it in 2002, see p. 4. It has 3.5 pages."
    )
    assert stop_at("One sentence not yet ended", 1) is None
    assert stop_at("Any length at all. More.", None) is None
    # What follows a blank line is the model starting over.
    assert stop_at("The total is 4\n\nQuestion: what", 3) == len("The total is 4")


def test_the_pages_the_model_read() -> None:
    document = Document(DocumentKind.PDF, "PDF, 3 pages.", [Page(2, "Beta."), Page(3, "Gamma.")])
    messages = build_messages(
        document, "What is on page 9?", Budget(estimate_tokens, 2048, 200, 400)
    )
    assert pages_read(messages) == {2, 3}
