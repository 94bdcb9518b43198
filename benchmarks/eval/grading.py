"""Grading one answer against its truth, in code.

- **Right**: every item of the truth is in the answer (a table per group has one item per
  group). A number is found when the answer shows it in any usual form (1,234.5 / 1234.50) or
  rounded (1234.567 as 1,234.57 or 1,235, keeping at least two significant digits); a name is
  found case- and punctuation-insensitively, as whole words. When a question picks one of
  several candidates (which firm, which year), naming another candidate before the truth is
  wrong: an answer that lists every firm has not said which one.
- **Unsupported number**: a number in the answer that is neither in the document's text, nor
  in the question, nor one of the figures the benchmark computed from the document (the truth
  and, for a table, every column's and group's count, sum, mean, minimum and maximum).
  Page citations and list numbering are not figures. Lines that copy one of a table's first
  rows are not read for the truth: a truth that happens to stand in row 1 is not an answer.
- **Cited pages**: the pages an answer cites ("p. 3", "Page 3", "pages 3-4") against the
  pages on which the truth stands.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|\.\d)")
_CITATION = re.compile(
    r"\b(?:pp?\.|pages?)\s*(\d+)(?:\s*(?:-|\u2013|to|and)\s*(\d+))?", re.IGNORECASE
)
_LIST_MARKER = re.compile(r"^\s*(\d+)[.)]\s", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Number:
    start: int
    text: str
    value: float
    decimals: int
    significant: int


def numbers(text: str) -> list[Number]:
    found = []
    for match in _NUMBER.finditer(text):
        raw = match[0].replace(",", "")
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        significant = len(raw.replace(".", "").lstrip("0")) or 1
        found.append(Number(match.start(), match[0], float(raw), decimals, significant))
    return found


def cited_pages(answer: str) -> set[int]:
    pages: set[int] = set()
    for match in _CITATION.finditer(answer):
        first = int(match[1])
        last = int(match[2]) if match[2] else first
        pages.update(range(first, min(last, first + 50) + 1))
    return pages


def _not_figures(answer: str) -> list[tuple[int, int]]:
    """Spans of the answer whose digits are page citations or list numbering."""
    spans = [m.span() for m in _CITATION.finditer(answer)]
    return spans + [m.span(1) for m in _LIST_MARKER.finditer(answer)]


def figures(answer: str) -> list[Number]:
    """The numbers an answer states as figures."""
    skip = _not_figures(answer)
    return [n for n in numbers(answer) if not any(a <= n.start < b for a, b in skip)]


def shows(number: Number, value: float) -> bool:
    """Whether ``number`` as written is ``value``, exactly or rounded to its decimals."""
    if number.value == abs(value):
        return True
    tolerance = 0.5 * 10**-number.decimals
    close = abs(number.value - abs(value)) <= tolerance + 1e-9 * max(1.0, abs(value))
    return close and number.significant >= 2


def normal(text: str) -> str:
    """Lower case, accents and punctuation gone, words padded with spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " " + " ".join(re.findall(r"[a-z0-9@]+", text)) + " "


def as_number(value: str | float) -> float | None:
    if isinstance(value, float | int):
        return float(value)
    text = value.strip().replace(",", "")
    return float(text) if re.fullmatch(r"-?\d+(?:\.\d+)?", text) else None


@dataclass
class Item:
    """One thing the answer must say: any of ``accept`` (a number or words), and none of
    ``rivals`` before it."""

    accept: list[str | float]
    rivals: list[str | float] = field(default_factory=list)
    as_text: bool = False  # compare a number-like value ("1.04", a version) as words

    def position(self, answer: str, values: list[str | float]) -> int | None:
        found = []
        stated = figures(answer)
        padded = normal(answer)
        for value in values:
            number = None if self.as_text else as_number(value)
            if number is not None:
                found += [n.start for n in stated if shows(n, number)]
            else:
                words = normal(str(value))
                if words.strip() and (at := padded.find(words)) >= 0:
                    found.append(at)
        return min(found, default=None)

    def describe(self) -> str:
        return " / ".join(_show(v) for v in self.accept[:3])


def _show(value: str | float) -> str:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return value


@dataclass
class Truth:
    items: list[Item]
    pages: set[int] = field(default_factory=set)  # where it stands, for a PDF
    figures: list[float] = field(default_factory=list)  # computed numbers an answer may state
    shown_rows: list[list[str | float]] = field(default_factory=list)  # a table's first rows

    def describe(self) -> str:
        shown = "; ".join(item.describe() for item in self.items[:4])
        if len(self.items) > 4:
            shown += f"; … ({len(self.items)} values)"
        return shown + (f" (p. {', '.join(map(str, sorted(self.pages)))})" if self.pages else "")


def restates_row(line: str, row: list[str | float]) -> bool:
    """Whether a line of an answer copies a row of the table (most of its cells)."""
    stated = figures(line)
    padded = normal(line)
    cells = 0
    for cell in row:
        if isinstance(cell, float):
            cells += any(n.value == abs(cell) for n in stated)
        elif normal(cell).strip():
            cells += normal(cell) in padded
    return cells >= max(3, len(row) - 1)


def grade(answer: str, truth: Truth) -> str | None:
    """None when the answer is right, else why not.

    Lines that copy one of the table's first rows (which the model is shown) are not read: a
    truth that happens to stand in row 1 is not an answer."""
    lines = answer.splitlines()
    answer = "\n".join(
        line for line in lines if not any(restates_row(line, row) for row in truth.shown_rows)
    )
    for item in truth.items:
        at = item.position(answer, item.accept)
        # Rivals are sought in the same way (numbers with numbers, words with words).
        if at is None:
            return f"does not say {item.describe()}"
        if item.rivals:
            rival = item.position(answer, item.rivals)
            if rival is not None and rival < at:
                return f"names another candidate before {item.describe()}"
    return None


class Support:
    """The numbers an answer may state about one document and one question."""

    def __init__(self, document_text: str, computed: list[float]) -> None:
        values = {n.value for n in numbers(document_text)} | {abs(v) for v in computed}
        self.values = sorted(values)

    def supports(self, number: Number) -> bool:
        tolerance = 0.5 * 10**-number.decimals + 1e-9 * max(1.0, number.value)
        low = bisect.bisect_left(self.values, number.value - tolerance)
        high = bisect.bisect_right(self.values, number.value + tolerance)
        return any(shows(number, value) for value in self.values[low:high])

    def unsupported(self, answer: str, question: str) -> list[str]:
        asked = {n.value for n in numbers(question)}
        return [n.text for n in figures(answer) if n.value not in asked and not self.supports(n)]
