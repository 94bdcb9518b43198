"""Fit what the model reads into its context window, counted with the provider's tokenizer:
the question, the figures computed for it, the document's facts, then the whole document when
it fits the document budget, otherwise the passages most relevant to the prompt (BM25), always
with their page numbers. Whatever is too long is cut with a visible […], never refused: no
accepted upload fails for being too long.

A small document budget matters on a CPU: every context token costs time before the first
answer token.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from doclane.documents import Document, Figures, Page

Count = Callable[[str], int]  # a text's tokens for the model (Provider.count_tokens)

CHARS_PER_TOKEN = 3  # English prose, measured with SmolLM2's tokenizer: only to plan sections
PASSAGE_CHARS = 700
# The chat template's own tokens (roles, SmolLM2's default system prompt: 30 in all) and the
# seams between parts counted apart.
TEMPLATE_TOKENS = 48
CUT = " […] "  # marks text left out of something too long to read whole
MAX_CHARS_PER_TOKEN = 8  # beyond any real text's average: text this long is taken not to fit
MAX_MISSES = 2  # passages found too long for what is left, after which filling stops

# One user turn, text first, then the question and a short instruction: of the layouts tried
# with SmolLM2-135M on ten questions with known answers, this one answered most correctly (6/10,
# against 2/10 for a system prompt plus the text). A small model needs few, plain words.
INSTRUCTION = "Answer briefly, using only the text."

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Passage:
    page: int
    order: int
    text: str


def _split(document: Document) -> list[Passage]:
    passages: list[Passage] = []
    for page in document.pages:
        buffer = ""
        for paragraph in re.split(r"\n\s*\n|\n", page.text):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            if buffer and len(buffer) + len(paragraph) > PASSAGE_CHARS:
                passages.append(Passage(page.number, len(passages), buffer))
                buffer = ""
            buffer = f"{buffer}\n{paragraph}" if buffer else paragraph
            while len(buffer) > PASSAGE_CHARS * 2:  # one enormous line: cut it
                passages.append(Passage(page.number, len(passages), buffer[:PASSAGE_CHARS]))
                buffer = buffer[PASSAGE_CHARS:]
        if buffer:
            passages.append(Passage(page.number, len(passages), buffer))
    return passages


_STOPWORDS = frozenset(
    (
        "the and for are was were what how which who whom this that these those with from does "
        "did has have had there their about into when where why can could would should will "
        "shall document text page please tell give show"
    ).split()
)


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS]


def _bm25(passages: list[Passage], query: str, k1: float = 1.5, b: float = 0.75) -> list[float]:
    docs = [Counter(_terms(p.text)) for p in passages]
    query_terms = set(_terms(query))
    if not docs or not query_terms:
        return [0.0] * len(passages)
    avg_len = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    doc_freq = Counter(term for d in docs for term in query_terms if term in d)
    scores = []
    for d in docs:
        length = sum(d.values())
        score = 0.0
        for term in query_terms:
            tf = d.get(term, 0)
            if tf:
                idf = math.log(1 + (len(docs) - doc_freq[term] + 0.5) / (doc_freq[term] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))
        scores.append(score)
    return scores


def _labelled(passage: Passage) -> str:
    return f"[Page {passage.page}] {passage.text}"


_LABEL = re.compile(r"^\[Page (\d+)\] ", re.MULTILINE)


def pages_read(messages: list[dict[str, str]]) -> set[int]:
    """The pages whose passages the model was shown: the only ones it may cite."""
    return {int(n) for message in messages for n in _LABEL.findall(message["content"])}


def _fits(passages: list[Passage], budget_tokens: int, count: Count) -> bool:
    """Whether all the passages fit the budget together (counted only when they might)."""
    if sum(len(p.text) for p in passages) > budget_tokens * MAX_CHARS_PER_TOKEN:
        return False
    return count("\n\n".join(_labelled(p) for p in passages)) < budget_tokens


def select_passages(
    document: Document, prompt: str, budget_tokens: int, count: Count
) -> list[Passage]:
    """The passages to read within ``budget_tokens``: all of them, or the most relevant."""
    passages = _split(document)
    if _fits(passages, budget_tokens, count):
        return passages
    scores = _bm25(passages, prompt)
    if max(scores, default=0.0) > 0:
        ranked = sorted(passages, key=lambda p: (-scores[p.order], p.order))
    else:
        # Nothing matches (e.g. "summarise"): sample evenly so the whole document is represented.
        budget_chars = budget_tokens * CHARS_PER_TOKEN
        step = max(1, len(passages) * PASSAGE_CHARS // max(budget_chars, 1))
        ranked = passages[::step] + [p for p in passages if p.order % step]
    return _fill(ranked, budget_tokens, count)


def _fill(ranked: list[Passage], budget_tokens: int, count: Count) -> list[Passage]:
    """The best-ranked passages that fit the budget together, back in document order.

    Each passage is counted with its page label and the blank line before it. After a few
    passages too long for what is left, the rest are not tried: each try is a count.
    """
    chosen: list[Passage] = []
    used = misses = 0
    for passage in ranked:
        tokens = count(f"\n\n{_labelled(passage)}")
        if used + tokens <= budget_tokens:
            chosen.append(passage)
            used += tokens
        else:
            misses += 1
            if misses == MAX_MISSES:
                break
    return sorted(chosen, key=lambda p: p.order)


SUMMARY_WORDS = re.compile(
    r"\b(summar\w*|overview|outline|gist|tl;?dr|main points|key points|what is (this|it) about)\b",
    re.IGNORECASE,
)
SECTION_PROMPT = "Summarise this part of the document in two sentences."
MAX_SECTIONS = 6


@dataclass(frozen=True, slots=True)
class Section:
    heading: str  # e.g. "**Pages 41-80.** ", written before the section's summary
    document: Document  # the section's most representative passages


def summary_sections(
    document: Document, prompt: str, budget_tokens: int, count: Count
) -> list[Section]:
    """For a summary request on a document too long to read at once: its sections, each cut
    down to its most representative passages. Empty when one pass can read it all, or when
    the prompt asks something specific (then retrieval picks the passages)."""
    if not SUMMARY_WORDS.search(prompt):
        return []
    passages = _split(document)
    if _fits(passages, budget_tokens, count):
        return []
    total = sum(len(p.text) for p in passages)
    parts = max(2, math.ceil(total / (budget_tokens * CHARS_PER_TOKEN)))
    size = math.ceil(len(passages) / min(MAX_SECTIONS, parts, len(passages)))
    sections = []
    for start in range(0, len(passages), size):
        part = passages[start : start + size]
        # Representative passages: those richest in the section's own frequent terms.
        frequency = Counter(term for p in part for term in set(_terms(p.text)))
        ranked = sorted(
            part,
            key=lambda p: -sum(frequency[t] for t in set(_terms(p.text))) / (len(p.text) + 200),
        )
        chosen = _fill(ranked, budget_tokens, count)
        first, last = part[0].page, part[-1].page
        pages = f"Page {first}" if first == last else f"Pages {first}-{last}"
        sections.append(
            Section(
                f"**{pages}.** ",
                Document(
                    document.kind,
                    f"{document.facts} This is {pages.lower()}.",
                    [Page(p.page, p.text) for p in chosen],
                ),
            )
        )
    return sections


@dataclass(frozen=True, slots=True)
class Budget:
    """The tokens one request may take, and how to count them."""

    count: Count  # the provider's counter
    window: int  # the model's context: prompt, chat template and answer together
    answer: int  # kept free for the answer the model writes
    # Document tokens to aim for (speed on a CPU): passages fill what figures and facts leave.
    document: int


COMPUTED_HEADING = "Computed exactly over every row:"
NOTE_HEADING = "Not computed:"


def build_messages(
    document: Document,
    prompt: str,
    budget: Budget,
    figures: Figures | None = None,
    prefix: str = "",
) -> list[dict[str, str]]:
    """The chat messages for one question about one document, fitted to the model's window.

    What fits first: the question and instruction (a question longer than half the room is cut
    in the middle, keeping its start and end), then ``figures``: the exact results computed for
    the question under COMPUTED_HEADING, or the note that none were under NOTE_HEADING (never
    under the other: a note is no result), then the document's facts (cut at the end when too
    long, e.g. a very wide table's profile), then the passages that fit both what is left and
    the document budget. Figures come first in the text too, so the model reads them before
    anything else. ``prefix``, the start of the answer a resumed run continues, takes room as
    well.
    """
    count = budget.count
    room = budget.window - budget.answer - TEMPLATE_TOKENS - count(_frame("", ""))
    if prefix:
        room -= count(prefix)
    question, used = _cut(prompt, room // 2, count, middle=True)
    room -= used
    sections: list[str] = []
    document_used = 0
    figures = figures or Figures()
    computed = [f"{COMPUTED_HEADING}\n{figures.exact}"] if figures.exact else []
    if figures.note:
        computed.append(f"{NOTE_HEADING}\n{figures.note}")
    for part in [*computed, document.facts]:
        text, used = _cut(part, room, count)
        if text:
            sections.append(text)
            room -= used
            document_used += used
    passage_budget = max(0, min(room, budget.document - document_used))
    for passage in select_passages(document, prompt, passage_budget, count):
        sections.append(_labelled(passage))
    return [{"role": "user", "content": _frame("\n\n".join(sections), question)}]


# How long an answer may be. A question gets a few sentences, and one when doclane's own
# grounding (computed figures, the line that answers it) already opens the answer: the model
# phrases, the facts are said. A long answer only when the prompt asks for one.
LONG_ANSWER = re.compile(
    r"^\W*(?:(?:please|can you|could you|would you|I need you to)\s+)?(?:explain|describe|"
    r"summari[sz]e|list|outline|compare|walk me through|tell me about|write|draft|translate|"
    r"go through|give (?:me )?(?:an? |the )?(?:overview|summary|list|explanation|description))\b"
    r"|\b(?:in (?:detail|depth)|step[- ]by[- ]step|at length|detailed|thorough(?:ly)?|"
    r"elaborate|all (?:the|of the)|every)\b",
    re.IGNORECASE,
)
GROUNDED_SENTENCES, GROUNDED_TOKENS = 1, 60
QUESTION_SENTENCES, QUESTION_TOKENS = 3, 120


@dataclass(frozen=True, slots=True)
class Shape:
    """How long the model's part of an answer may be."""

    tokens: int
    sentences: int | None  # it is stopped after this many; None: as many as it writes


def answer_shape(prompt: str, grounded: bool, max_tokens: int) -> Shape:
    if LONG_ANSWER.search(prompt):
        return Shape(max_tokens, None)
    if grounded:
        return Shape(min(max_tokens, GROUNDED_TOKENS), GROUNDED_SENTENCES)
    return Shape(min(max_tokens, QUESTION_TOKENS), QUESTION_SENTENCES)


_STOP = re.compile(r"[.!?][\"\u201d\u2019)\]*]*(?=\s)|\n\s*\n")
_ABBREVIATION = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|cf|approx|p|pp|no|fig|eq|dr|mr|mrs|ms|st|inc|ltd|co|jr|sr|[a-z])$",
    re.IGNORECASE,
)


def stop_at(text: str, sentences: int | None) -> int | None:
    """Where a short answer ends: after its last allowed sentence, or at its first blank line
    (what follows a blank line in a short answer is the model starting over). None: not yet."""
    if sentences is None:
        return None
    seen = 0
    for match in _STOP.finditer(text):
        if not match[0].strip():  # a blank line
            if text[: match.start()].strip():
                return match.start()
            continue
        if _ABBREVIATION.search(text[: match.start()]):
            continue
        seen += 1
        if seen >= sentences:
            return match.end()
    return None


def _frame(text: str, question: str) -> str:
    return f"Text:\n{text}\n\nQuestion: {question}\n{INSTRUCTION}"


def _cut(text: str, limit: int, count: Count, middle: bool = False) -> tuple[str, int]:
    """``text`` and its tokens if it fits ``limit``; else what fits of its start (and of its
    end too if ``middle``) around a visible […], cut between words so no number is halved."""
    tokens = count(text) + 1  # and the blank line that joins it to the next part
    if tokens <= limit:
        return text, tokens
    keep = len(text)
    while True:
        keep = min(keep - 1, keep * limit // tokens)  # characters, at the text's own density
        if keep <= 0:
            return "", 0
        if middle:
            head, tail = _words_before(text, keep - keep // 2), _words_after(text, keep // 2)
            cut = f"{head}{CUT}{tail}"
        else:
            cut = f"{_words_before(text, keep)}{CUT.rstrip()}"
        tokens = count(cut) + 1
        if tokens <= limit:
            return cut, tokens


def _words_before(text: str, size: int) -> str:
    """The first ``size`` characters, ending at a space or line break if there is one."""
    head = text[:size]
    end = max(head.rfind(" "), head.rfind("\n"))
    return head[:end] if end > 0 else head


def _words_after(text: str, size: int) -> str:
    """The last ``size`` characters, starting at a space or line break if there is one."""
    tail = text[len(text) - size :] if size else ""
    starts = [i for i in (tail.find(" "), tail.find("\n")) if i >= 0]
    return tail[min(starts) + 1 :] if starts else tail
