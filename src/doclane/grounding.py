"""The sentence or line of a document that answers a question, found by doclane itself.

The default model is tiny: handed the right passage, it still invents another value. So the
answer opens with what the document says, quoted with its page, and the model only phrases
around it. Finding that line is a small factoid search over the document's own units:

- **Units** (textunits.py): each page's sentences (wrapped lines joined) and its short lines
  (titles, address blocks, the rows of a price list) apart. A table that text recognition read
  column by column (tesseract does so when the columns stand far apart) is put back together
  row by row.
- **Terms**: BM25 over the units, words compared by a light stem ("defaults" is "default").
  A short line also earns half the weight of the terms its neighbours share with the question:
  "Xavier Leroy" stands two lines under "Camlidl user's manual, Version 1.04".
- **What the question asks for** (questions.py; things.py finds it in a unit): a version, a
  person, a date, a place, a number, an abbreviation's expansion. A unit that holds one (not
  just the question's own words) ranks above one that only repeats the question, and a
  question about "this manual" looks first at the opening pages, where a document says its
  version, author and date.
- **Which of a list**: "the cheapest", "the highest": the row of a list or table with the
  lowest or highest figure.

Only a match that holds what the question asks for and shares enough of its words *leads* the
answer; a weaker one is shown after it as its source, and none at all is better than a random
line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from doclane.documents import Document
from doclane.jobs import DocumentKind
from doclane.questions import Asks, Question, extreme, read_question, unhyphen
from doclane.textunits import (
    MAX_QUOTE_CHARS,
    MIN_ROWS,
    ROW_VALUE,
    WORD,
    Unit,
    stem,
    terms,
    units,
)
from doclane.things import CUES, STANDS_FOR, expansion, holds, says, things

NEIGHBOURS = 2  # a short line's context: this many units either side
NEIGHBOUR_WEIGHT = 0.35
TYPE_BONUS = 1.0  # the unit holds what the question asks for
CUE_BONUS = 0.3  # … said the way documents say it ("by X", "X stands for", "Version 1.04")
OPENING_BONUS = 0.5  # a question about the document itself, and a unit of its title block
TITLE_UNITS = 8  # the first units of page 1
OPENING_PAGES = 2  # … and, for less, the rest of its opening pages
LEAD_SHARE = 0.5  # a lead shares at least this share of the question's term weight
MAX_BLOCK_LINES = 4  # lines of names or of an address quoted together


@dataclass(frozen=True, slots=True)
class Grounding:
    """The line that answers a question, its page, and whether it is sure enough to lead."""

    page: int
    text: str
    leads: bool
    # What a restatement must say, one of: the thing asked for as the line says it ("1.04",
    # "Xavier Leroy", "12,940.00", the cheapest row's "Mazda")…
    values: tuple[str, ...] = ()
    # … or, for a question that asks for no particular kind of thing, this many of the line's
    # own words that the question does not use.
    words: frozenset[str] = frozenset()
    need: int = 1

    def quote(self, kind: DocumentKind = DocumentKind.PDF) -> str:
        """The line as the answer shows it: a PDF's with its page."""
        where = f"p. {self.page}" if kind is DocumentKind.PDF else f"in the {kind.value}"
        return f"> Source, {where}: {self.text}"

    def agrees(self, text: str) -> bool:
        """Whether ``text`` says what the line says, rather than something else: a model's
        sentence that does not is left out of the answer, never put in the line's place; one
        that only repeats the line is left out too."""
        if set(terms(text)) <= set(terms(self.text)):
            return False
        if self.values:
            return any(says(text, value) for value in self.values)
        return len(self.words & set(terms(text))) >= min(self.need, len(self.words))


# --- scoring -------------------------------------------------------------------------------


def _idf(units_: list[Unit], query: set[str]) -> dict[str, float]:
    """Each term's inverse unit frequency, for the terms some unit holds."""
    frequency = Counter(t for u in units_ for t in u.words & query)
    n = len(units_)
    return {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}


def _proper_words(document: Document) -> set[str]:
    """Words the document writes in lower case somewhere: no part of a name."""
    return {w for page in document.pages for w in WORD.findall(page.text) if w.islower()}


@dataclass
class _Scored:
    unit: Unit
    score: float
    share: float  # share of the question's term weight the unit (and its context) covers
    holds: bool


def _score(units_: list[Unit], question: Question, common: set[str]) -> list[_Scored]:
    """Each unit's score: the share of the question's terms it holds (a short line's
    neighbours lending it some of theirs), and bonuses for holding what the question asks
    for, said the way documents say it, and standing where documents say it."""
    kind = question.kind
    idf = _idf(units_, question.content)
    total = sum(idf.values())
    own = [{t: idf[t] for t in u.words if t in idf} for u in units_]
    headers = _headers(units_)
    scored = []
    for i, unit in enumerate(units_):
        weights = dict(own[i])
        if unit.line:
            for j in range(max(0, i - NEIGHBOURS), min(len(units_), i + NEIGHBOURS + 1)):
                if j != i and units_[j].page == unit.page:
                    for t, w in own[j].items():
                        weights[t] = max(weights.get(t, 0.0), NEIGHBOUR_WEIGHT * w)
        # A question about nothing the document names ("who is the author?") matches all.
        share = sum(weights.values()) / total if total else 1.0
        words = len(unit.text.split())
        score = share / (1.0 + max(0, words - 30) / 60)  # a long unit matches by chance
        has = kind is not None and holds(kind, unit.text, question.text, common)
        if kind in (Asks.PERSON, Asks.PLACE) and i in headers:
            has = False  # "Make Body style Doors Price": a table's header names no one
        if has and kind is not None:
            score += TYPE_BONUS
            cue = STANDS_FOR if kind is Asks.EXPANSION else CUES.get(kind)
            # Said as documents say it: "Revision 1.66" for "the revision number", "Total
            # due" for "the total due", "by Dale Rogerson", "IDL stands for".
            if (cue is not None and cue.search(unit.text)) or (question.kind_words & unit.words):
                score += CUE_BONUS
            if kind is Asks.PERSON and unit.line and words <= 6:
                score += CUE_BONUS  # a name on a line of its own: a title page's author
        if question.subject and re.search(
            rf"(?<![\w-]){re.escape(question.subject)}\s+(?:is|are|was)\b", unhyphen(unit.text)
        ):
            score += CUE_BONUS  # "X is a …" for "what kind of Y is X"
        if question.about_itself and kind in _OPENING_KINDS:
            if _in_title(unit):
                score += OPENING_BONUS  # the title block
            elif unit.page <= OPENING_PAGES:
                score += OPENING_BONUS / 3
        scored.append(_Scored(unit, score, share, has))
    return scored


def _headers(units_: list[Unit]) -> set[int]:
    """The units that head a list or table: the line just above a run of its rows."""
    rows = [u.line and _row_figure(u, "") is not None for u in units_]
    return {
        i
        for i in range(len(units_) - MIN_ROWS)
        if all(rows[i + 1 : i + 1 + MIN_ROWS])
        and all(u.page == units_[i].page for u in units_[i + 1 : i + 1 + MIN_ROWS])
    }


_OPENING_KINDS = {Asks.VERSION, Asks.PERSON, Asks.DATE, Asks.PLACE, Asks.LICENCE, Asks.LINK}


def _in_title(unit: Unit) -> bool:
    """The title block: page 1's first units, and its short lines (a cover page's)."""
    return unit.page == 1 and (unit.order < TITLE_UNITS or unit.line)


def _extreme(units_: list[Unit], question: str) -> Unit | None:
    """For "the cheapest", "the highest": the row with the lowest or highest figure of the
    list or table the question is most about."""
    end = extreme(question)
    if end is None:
        return None
    runs: list[list[Unit]] = []
    for unit in units_:
        if unit.line and _row_figure(unit, question) is not None:
            last = runs[-1][-1] if runs else None
            if last is not None and last.page == unit.page and unit.order - last.order <= 1:
                runs[-1].append(unit)
                continue
            runs.append([unit])
    runs = [r for r in runs if len(r) >= MIN_ROWS]
    if not runs:
        return None
    query = set(terms(question)) - _EXTREME_WORDS

    def shared(run: list[Unit]) -> int:
        return len(query & {t for u in [*run, *_before(units_, run[0])] for t in u.words})

    # The run whose rows and header share most of the question's words. One that shares none
    # of those the document says elsewhere is not the list asked about ("the maximum value
    # for ekb" is no row of a formula); "the cheapest car" names nothing, any list may be it.
    best = max(runs, key=lambda run: (shared(run), len(run)))
    if not shared(best) and query & {t for u in units_ for t in u.words}:
        return None

    def value(unit: Unit) -> float:
        figure = _row_figure(unit, question)
        assert figure is not None
        return figure

    return min(best, key=value) if end == "lowest" else max(best, key=value)


_EXTREME_WORDS = frozenset(
    terms(
        "cheapest least expensive lowest smallest minimum fewest shortest earliest dearest "
        "priciest highest largest biggest maximum greatest most longest latest"
    )
)


def _label(row: Unit) -> str:
    """What names a row: its first cell, or the first word of its line ("Mazda")."""
    if row.cells:
        column, value = row.cells[0]
        return value or column
    return row.text.split()[0]


def _before(units_: list[Unit], first: Unit) -> list[Unit]:
    return [u for u in units_[max(0, first.order - 2) : first.order] if u.page == first.page]


def _row_figure(unit: Unit, question: str) -> float | None:
    """The figure a row is compared by: in a rebuilt row, the column the question names (else
    the last); in a line, its last figure, after a label."""
    if unit.cells:
        query = set(terms(question))
        figures = [
            (column, float(v.replace(",", "")))
            for column, v in unit.cells
            if ROW_VALUE.fullmatch(v)
        ]
        if not figures:
            return None
        # The column that shares most of the question's words, and has fewest others.
        shares = [(len(query & set(terms(c))), -len(set(terms(c)) - query)) for c, _ in figures]
        best = max(range(len(figures)), key=lambda i: shares[i])
        return figures[best][1] if shares[best][0] else figures[-1][1]
    if not re.match(r"\s*[A-Za-z]", unit.text):
        return None
    values = ROW_VALUE.findall(unit.text)
    return float(values[-1].replace(",", "")) if values else None


# --- the answer's grounding ----------------------------------------------------------------


def ground(document: Document, question: str) -> Grounding | None:
    """The unit that answers ``question``, or None when nothing matches well enough to show.

    ``leads`` is set when the unit holds what the question asks for and shares enough of its
    words (for a question that asks for no particular kind of thing: most of them), so the
    answer can open with it."""
    found = units(document)
    if not found or not terms(question):
        return None
    extreme = _extreme(found, question)
    if extreme is not None:
        label = _label(extreme)
        return Grounding(extreme.page, _shown(extreme, question), True, (label,))
    asked = read_question(question)
    common = _proper_words(document)
    scored = _score(found, asked, common)
    # Ties go to a rebuilt table row over the line its label came from, then to the first.
    best = max(scored, key=lambda s: (s.score, bool(s.unit.cells), -s.unit.order))
    mentioned = asked.content & frozenset().union(*(u.words for u in found))
    if asked.content and not mentioned:
        return None  # the question is about something the document never names
    if asked.kind is not None:
        leads = best.holds and best.share >= LEAD_SHARE / 2
        if not mentioned:  # "who is the author?": only where a document says so
            leads = leads and asked.about_itself and best.unit.page <= OPENING_PAGES
        # The document's own name, which a scan's title may have misread, is no test of the
        # title block's version, author or date.
        title = asked.about_itself and _in_title(best.unit) and asked.kind in _OPENING_KINDS
        leads = leads or (best.holds and title)
    else:
        own = asked.terms & set(terms(best.unit.text))
        leads = best.share >= LEAD_SHARE and len(own) >= min(2, len(asked.terms))
    if not leads and best.share < LEAD_SHARE:
        return None
    shown = _shown(best.unit, question)
    kind = asked.kind
    if kind in (Asks.PERSON, Asks.PLACE) and best.unit.line:
        shown = _block(found, best.unit, kind, question, common)
    said = tuple(things(kind, shown, question, common)) if kind is not None else ()
    if kind is Asks.EXPANSION:
        spelled = expansion(shown, asked.abbreviation)
        said = (spelled,) if spelled else ()
    words = frozenset(terms(shown)) - asked.terms
    need = 2 if kind is Asks.EXPANSION else 1
    return Grounding(best.unit.page, shown, leads, said, words, need)


# Words of the computed figures' labels and of their frame, which no restatement needs.
_FIGURE_WORDS = frozenset(
    terms(
        "computed exactly over every row rows total average highest lowest number where most "
        "common distinct share top sum mean median count minimum maximum per"
    )
)


def figures_lead(figures: str, question: str) -> Grounding:
    """A table's computed figures as what the answer opens with: a sentence after them must
    name one of their values (a figure, a group, the row they were found in)."""
    frame = "Computed exactly over every row"
    words = frozenset(terms(figures)) - set(terms(question)) - _FIGURE_WORDS
    return Grounding(0, f"{frame}: {figures}", True, (), words)


def _block(found: list[Unit], unit: Unit, kind: Asks, question: str, common: set[str]) -> str:
    """A name or address line with the lines beside it that hold more of the same (a title
    page's authors, an address's street and town), joined."""
    lines = [unit]
    for step in (-1, 1):
        order = unit.order + step
        while 0 <= order < len(found) and len(lines) < MAX_BLOCK_LINES:
            other = found[order]
            if other.page != unit.page or not other.line:
                break
            same = things(kind, other.text, question, common) or (
                kind is Asks.PLACE and holds(Asks.PLACE, other.text, "")
            )
            if not same:
                break
            lines.insert(0 if step < 0 else len(lines), other)
            order += step
    return ", ".join(" ".join(line.text.split()).rstrip(",") for line in lines)


def _shown(unit: Unit, question: str) -> str:
    """The unit as quoted: whole, or cut around its first matched term when too long."""
    text = " ".join(unit.text.split())
    if len(text) <= MAX_QUOTE_CHARS:
        return text
    query = set(terms(question))
    at = next(
        (m.start() for m in WORD.finditer(text) if stem(m[0]) in query),
        0,
    )
    start = max(0, min(at - MAX_QUOTE_CHARS // 3, len(text) - MAX_QUOTE_CHARS))
    start = text.rfind(" ", 0, start) + 1 if start else 0
    cut = text[start : start + MAX_QUOTE_CHARS]
    cut = cut[: cut.rfind(" ")] if start + MAX_QUOTE_CHARS < len(text) else cut
    return ("…" if start else "") + cut + ("…" if start + len(cut) < len(text) else "")
