"""The context builder: whole document when it fits, else the most relevant passages."""

from __future__ import annotations

from doclane.context import MAX_SECTIONS, build_messages, select_passages, summary_sections
from doclane.documents import Document, Page
from doclane.jobs import DocumentKind


def long_document() -> Document:
    pages = [
        Page(
            n, "\n".join(f"Filler sentence {n}.{i} about gardening and weather." for i in range(20))
        )
        for n in range(1, 31)
    ]
    pages[16] = Page(17, "The warranty period for the XR-7 turbine is eleven years.")
    return Document(DocumentKind.PDF, "PDF document, 30 pages.", pages)


def test_small_document_is_sent_whole() -> None:
    document = Document(DocumentKind.PDF, "PDF, 2 pages.", [Page(1, "Alpha."), Page(2, "Beta.")])
    messages = build_messages(document, "What comes second?", budget_tokens=600)
    content = messages[-1]["content"]
    assert "[Page 1] Alpha." in content and "[Page 2] Beta." in content
    assert "Question: What comes second?" in content


def test_relevant_passage_is_picked_with_its_page() -> None:
    passages = select_passages(long_document(), "How long is the turbine warranty?", 1500)
    assert sum(len(p.text) for p in passages) <= 1500
    assert passages[0].page == 17 or any(p.page == 17 for p in passages)
    messages = build_messages(long_document(), "How long is the turbine warranty?", 400)
    assert "[Page 17] The warranty period" in messages[-1]["content"]


def test_unmatched_prompt_samples_the_whole_document() -> None:
    passages = select_passages(long_document(), "Summarise.", 3000)
    pages = {p.page for p in passages}
    assert min(pages) <= 3 and max(pages) >= 25  # not just the first pages


def test_summary_of_a_long_document_covers_every_part() -> None:
    filler = "Chapter {} discusses topic {} with figures and remarks on budget and staff."
    pages = [Page(n, "\n".join(filler.format(n, i) for i in range(25))) for n in range(1, 201)]
    document = Document(DocumentKind.PDF, "PDF document, 200 pages.", pages)
    sections = summary_sections(document, "Please summarise this report.", 400)
    assert len(sections) == MAX_SECTIONS
    assert sections[0].heading.startswith("**Pages 1-")
    assert sections[-1].heading.endswith("-200.** ")
    covered = [p.number for s in sections for p in s.document.pages]
    assert covered == sorted(covered) and covered[0] <= 34 and covered[-1] >= 167
    for section in sections:  # each part fits what the model reads in one pass
        assert sum(len(p.text) for p in section.document.pages) <= 400 * 4
    # A specific question, or a document that fits, is answered in one pass instead.
    assert summary_sections(document, "What does chapter 7 say?", 400) == []
    assert summary_sections(long_document(), "Summarise.", 10_000) == []
