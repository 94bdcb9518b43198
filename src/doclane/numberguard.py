"""The number guard: a figure the model writes that the document does not support never reaches
the user as a fact.

A number, a date or a page in the model's text is *supported* when the document's extracted text,
the figures doclane computed, or the question holds it: the same value in any usual form
(``12,940.00`` for ``12940``, ``12.940,00`` as Europe writes it, ``3%`` for ``3``), or rounded
from one (``12.9`` from ``12.94``, with at least two significant digits); a date when the
document has the same day (``2024-01-31``, ``31/01/2024``, ``January 31, 2024``); a version
(``3.6.12``) when the document writes it so; a page (``p. 7``, ``pages 3-4``, ``[Page 7]``) when
it is one the model was shown. Anything else is replaced by :data:`UNVERIFIED` before it is
streamed. List numbering ("1. ") is not a figure.

The guard sits on the stream: it holds back the tail of the text that may still grow into a
number (the last word, whatever it is: "12" may become "12,940.00" with the next piece) and
releases everything before it, checked. So what has been streamed never changes, and ``partial``
stays the concatenation of the chunks sent.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass

UNVERIFIED = "[unverified]"
SIGNIFICANT = 2  # a rounded figure keeps at least this many significant digits

_MONTH_NAMES = {
    name.lower(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
} | {"sept": 9}
_MONTH = "|".join(sorted(_MONTH_NAMES, key=len, reverse=True))

# One contiguous token: a date, a version, or a number. Nothing word-like may touch it ("x86",
# "H2O", "1st" are no figures), as in the benchmark's grading.
_TOKEN = re.compile(
    r"(?<![\w.,])(?:"
    r"(?P<iso>\d{4}-\d{1,2}-\d{1,2})"
    r"|(?P<dmy>\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4})"
    r"|(?P<version>\d+(?:\.\d+){2,})"
    r"|(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?)%?"
    r")(?![\w]|[.,]\d)",
    re.UNICODE,
)
_WORD_DATE = re.compile(
    rf"\b(?:(?P<m1>{_MONTH})\.?\s+(?:(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?,?\s+)?(?P<y1>\d{{4}})"
    rf"|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<m2>{_MONTH})\.?,?\s+(?P<y2>\d{{4}}))\b",
    re.IGNORECASE,
)
_CITATION = re.compile(
    r"(?:\b(?:pp?\.|pages?)\s*|\[\s*page\s+)(\d+)(?:\s*(?:-|\u2013|to|and)\s*(\d+))?",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"^[ \t]*(\d+)[.)](?=\s)", re.MULTILINE)
_TAIL = re.compile(r"\s*\S*\Z")  # the last word and the space before it: it may still grow
# … and, before it, the start of a date written in words ("May 1," may become "May 1, 2002").
_DATE_START = re.compile(
    rf"(?:\A|\s+)(?:(?:{_MONTH})\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?,?)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?(?:\s+(?:{_MONTH})\.?,?)?)\Z",
    re.IGNORECASE,
)
CONTEXT_CHARS = 80  # of the text already released, read again for what stands before a token
MAX_HELD = 64  # a "word" longer than this (a URL, a hash) is no number: only its end is held
_TOKEN_END = re.compile(r"[\w.,/%-]*\Z")

Date = tuple[int, int, int]  # year, month, day (0 when not given)


@dataclass(frozen=True, slots=True)
class Value:
    value: float
    decimals: int


def values(text: str) -> list[Value]:
    """The values a number as written may mean: "12,940" is 12940 in English and 12.94 in
    German; "1.234,5" is 1234.5."""
    text = text.lstrip("+-")
    readings: list[str] = []
    if "," in text and "." in text:
        readings.append(
            text.replace(",", "")
            if text.rfind(".") > text.rfind(",")
            else text.replace(".", "").replace(",", ".")
        )
    elif "," in text:
        head, _, tail = text.rpartition(",")
        if len(tail) == 3 and text.count(",") >= 1 and head:
            readings.append(text.replace(",", ""))  # thousands
        if text.count(",") == 1:
            readings.append(text.replace(",", "."))  # a decimal comma
    elif text.count(".") > 1:
        readings.append(text.replace(".", ""))  # "1.234.567"
    else:
        readings.append(text)
        head, _, tail = text.rpartition(".")
        if head and len(tail) == 3:
            readings.append(text.replace(".", ""))  # "12.940": twelve thousand in German
    found = []
    for reading in readings:
        try:
            number = float(reading)
        except ValueError:
            continue
        decimals = len(reading.partition(".")[2])
        found.append(Value(number, decimals))
    return found


def shows(stated: Value, source: float) -> bool:
    """Whether the stated value is the source value, exactly or rounded to its decimals."""
    if stated.value == source:
        return True
    digits = f"{stated.value:.{stated.decimals}f}".replace(".", "").lstrip("0")
    close = abs(stated.value - source) <= 0.5 * 10**-stated.decimals + 1e-9 * max(1.0, source)
    return close and len(digits) >= SIGNIFICANT


def _dates(match: re.Match[str]) -> set[Date]:
    """The days a date token may mean (day and month swap when both could be either)."""
    if match["iso"]:
        year, month, day = (int(p) for p in match["iso"].split("-"))
        return {(year, month, day)}
    if match["dmy"]:
        first, second, year = (int(p) for p in re.split(r"[/.]", match["dmy"]))
        year += 2000 if year < 50 else 1900 if year < 100 else 0
        return {(year, second, first), (year, first, second)}
    return set()


def _word_date(match: re.Match[str]) -> Date:
    month = match["m1"] or match["m2"]
    day = match["d1"] or match["d2"] or "0"
    year = match["y1"] or match["y2"]
    return int(year), _MONTH_NAMES[month.lower().rstrip(".")], int(day)


class Support:
    """What a model may state about one document: its numbers, dates, versions and pages."""

    def __init__(self, texts: Iterable[str], pages: Iterable[int] = ()) -> None:
        self.numbers: set[float] = set()
        self.dates: set[Date] = set()
        self.words: set[str] = set()  # tokens as written (versions, identifiers)
        self.pages = set(pages)
        for text in texts:
            self._read(text)
        self._sorted = sorted(self.numbers)

    def _read(self, text: str) -> None:
        for match in _TOKEN.finditer(text):
            self.words.add(match[0])
            self.dates |= _dates(match)
            if match["number"]:
                self.numbers.update(v.value for v in values(match["number"]))
            elif match["dmy"] or match["iso"] or match["version"]:
                parts = re.split(r"[-/.]", match[0])
                self.numbers.update(float(p) for p in parts)
        for match in _WORD_DATE.finditer(text):
            year, month, day = _word_date(match)
            self.dates.add((year, month, day))
            self.dates.add((year, month, 0))
        # Any digits the token pattern passes over ("x86", "ICC-13") may still be quoted.
        self.numbers.update(float(d) for d in re.findall(r"\d+", text))

    def number(self, written: str) -> bool:
        for stated in values(written):
            if stated.value in self.numbers:
                return True
            tolerance = 0.5 * 10**-stated.decimals
            low, high = stated.value - tolerance, stated.value + tolerance
            if any(shows(stated, n) for n in self._near(low, high)):
                return True
        return False

    def _near(self, low: float, high: float) -> list[float]:
        start = bisect.bisect_left(self._sorted, low - 1e-9)
        end = bisect.bisect_right(self._sorted, high + 1e-9)
        return self._sorted[start:end]

    def token(self, match: re.Match[str]) -> bool:
        if match[0] in self.words:
            return True
        if match["iso"] or match["dmy"]:
            return bool(_dates(match) & self.dates)
        if match["version"]:
            return False
        return self.number(match["number"])

    def date(self, match: re.Match[str]) -> bool:
        return _word_date(match) in self.dates


def check(text: str, support: Support, before: str = "") -> tuple[str, list[str]]:
    """``text`` with every unsupported figure replaced by UNVERIFIED, and those figures.

    ``before`` is the text that precedes it (already checked), read for what stands before a
    token: "p. " makes a page of the number after it."""
    full = before + text
    offset = len(before)
    pages = [m for m in _CITATION.finditer(full) if m.end() > offset]
    markers = {m.start(1) for m in _LIST_MARKER.finditer(full)}
    spans: list[tuple[int, int]] = []  # unsupported, in ``full``
    for citation in pages:
        for group in (1, 2):
            number = citation[group]
            if number and citation.start(group) >= offset and int(number) not in support.pages:
                spans.append(citation.span(group))
    skip = [(m.start(), m.end()) for m in pages]
    for match in _WORD_DATE.finditer(full):
        if match.start() >= offset:
            skip.append(match.span())  # a date is checked whole: its day, month and year
            if not support.date(match):
                spans.append(match.span())
    for match in _TOKEN.finditer(full):
        start = match.start()
        if start < offset or start in markers or any(a <= start < b for a, b in skip):
            continue
        if not support.token(match):
            spans.append(match.span())
    removed = [full[a:b] for a, b in sorted(spans)]
    out = full
    for a, b in sorted(spans, reverse=True):
        out = out[:a] + UNVERIFIED + out[b:]
    return out[offset:], removed


class NumberGuard:
    """Checks a stream of text piece by piece: ``feed`` returns what may be sent now, ``close``
    the rest. ``before`` is the answer the stream continues (a resumed run's)."""

    def __init__(self, support: Support, before: str = "") -> None:
        self.support = support
        self._before = before[-CONTEXT_CHARS:]
        self._held = ""
        self.removed: list[str] = []

    def feed(self, piece: str) -> str:
        self._held += piece
        tail = _TAIL.search(self._held)
        cut = tail.start() if tail else len(self._held)
        date = _DATE_START.search(self._held, 0, cut)
        if date and date.start() < cut:
            cut = date.start()
        if len(self._held) - cut > MAX_HELD:
            end = _TOKEN_END.search(self._held)
            cut = (
                end.start()
                if end and len(self._held) - end.start() <= MAX_HELD
                else len(self._held)
            )
        ready, self._held = self._held[:cut], self._held[cut:]
        return self._release(ready)

    def close(self) -> str:
        ready, self._held = self._held, ""
        return self._release(ready)

    @property
    def held(self) -> str:
        return self._held

    def _release(self, text: str) -> str:
        if not text:
            return ""
        checked, removed = check(text, self.support, self._before)
        self.removed += removed
        self._before = (self._before + checked)[-CONTEXT_CHARS:]
        return checked
