"""The conditions a question puts on a table's rows: named values, comparisons, dates and years.

- A value of a text column that the question names ("in North East", "the firm US Steel")
  keeps the rows with that value; several values of one column keep any of them ("rain or
  snow"); "not", "other than", "except" before a value keep the others. A short all-capitals
  value ("AK", "OR") counts only written in capitals, and a value found in two columns counts
  only next to the name of one of them: "or" is not Oregon, and "four" is not a guess between
  ``doors`` and ``cylinders``.
- A number after "over", "more than", "above" (>), "at least", "or more" (>=), "under", "less
  than", "below" (<), "at most", "or less", "up to" (<=), "between A and B" (both included)
  compares the numeric column named just before it (or just after: "more than 10 executions");
  where none is named, the column the question computes (``Condition.column`` is None until the
  planner sets it).
- A year, a month ("March 2014", "2014-03") or a day ("2012-05-01", "May 1, 2012") after "in",
  "during", "on", "of", "for" (=), "after" (>), "since", "from" (>=), "before" (<), "until",
  "through", "by" (<=), or two of them after "between"/"from" (both included), compare a date
  column (by its year, month or day) or an integer year column: the one the question names,
  else the only one the table has.

Numbers are read whole (``NUMBER``); a number the question writes that none of these reads
("over 10k", "in the 1990s") makes the question unplannable rather than answered without it.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from doclane.documents.tablecolumns import ADJECTIVES, Column, by_adjective
from doclane.documents.tabular import fmt, quote_ident

# A number as a question writes it: "1,250,000", "2.5", "-3", ".5", "1e308". Thousands
# separators only in groups of three, and nothing may cling to its end ("1,5", "10k", "1.2.3"
# are not read at all rather than read wrong).
NUMBER = r"(-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?)(?![,.]?\d|\w)"
_CURRENCY = r"[$€£]?"
_PREFIXES = [
    (">=", r"at least|no less than|not less than|no fewer than|a minimum of|>=|≥"),
    ("<=", r"at most|no more than|not more than|up to|a maximum of|<=|≤"),
    (
        ">",
        r"over|above|more than|greater than|higher than|larger than|bigger than|"
        r"exceeding|exceeds|exceeded|in excess of|older than|heavier than|taller than|"
        r"longer than|wider than|more expensive than|>",
    ),
    (
        "<",
        r"under|below|less than|fewer than|lower than|smaller than|younger than|"
        r"cheaper than|lighter than|shorter than|less expensive than|<",
    ),
    ("=", r"equal to|equals|exactly|="),
]
_SUFFIXES = [
    (">=", r"or more|or above|and above|or over|and over|or higher|or greater|\+"),
    ("<=", r"or less|or fewer|or below|and below|or under|and under|or lower"),
]
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_TIME_PREFIXES = [
    (">", r"after|later than"),
    (">=", r"since|from|starting in|starting from"),
    ("<", r"before|earlier than|prior to"),
    ("<=", r"until|till|through|up until"),
    ("=", r"in|during|on|of|for"),
]


def _when_pattern(tag: str = "") -> str:
    """A point in time as a question writes it, its parts in groups named with ``tag``."""
    day = r"(?:st|nd|rd|th)?"
    return (
        rf"(?:(?P<iy{tag}>[12]\d{{3}})[-/](?P<im{tag}>\d{{1,2}})(?:[-/](?P<id{tag}>\d{{1,2}}))?"
        rf"|(?P<mdm{tag}>{_MONTH})\.? (?P<mdd{tag}>\d{{1,2}}){day},? (?P<mdy{tag}>[12]\d{{3}})"
        rf"|(?P<dmd{tag}>\d{{1,2}}){day} (?P<dmm{tag}>{_MONTH})\.?,? (?P<dmy{tag}>[12]\d{{3}})"
        rf"|(?P<mym{tag}>{_MONTH})\.?,? (?P<myy{tag}>[12]\d{{3}})"
        rf"|(?P<y{tag}>[12]\d{{3}})"
        rf"|(?P<m{tag}>{_MONTH}))(?![\w-])"
    )


# Endings a value may take in a question: "rainy" days, "sunny" ones, "toyotas".
VALUE_ENDINGS = ("ny", "y", "es", "s")
_ENDINGS = "|".join(VALUE_ENDINGS)
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split()
)
_NOT = r"(?:not|other than|except|excluding|apart from|besides|isn't|wasn't|aren't|weren't)"
_STOPWORDS = set(
    """a an the in on at of or and to is are was were has have had do does did be it by for
    with what which who how many much when where me my we us our you your he she they them
    this that these those all any each per as no not so if up out one two all""".split()
)


@dataclass(frozen=True, slots=True)
class When:
    """A year, a month or a day."""

    year: int
    month: int = 0
    day: int = 0

    @property
    def part(self) -> str:
        if not self.year:
            return "month number"
        return "day" if self.day else "month" if self.month else "year"

    def value(self) -> Any:
        if not self.year:
            return self.month
        if self.day:
            return datetime.date(self.year, self.month, self.day)
        if self.month:
            return f"{self.year:04d}-{self.month:02d}"
        return self.year


@dataclass(frozen=True, slots=True)
class Condition:
    """``column`` (or its ``part``: the year, month or day of a date) ``operator`` ``value``;
    "in" takes a tuple of values."""

    column: Column | None
    operator: str
    value: Any
    part: str = ""

    def sql(self) -> tuple[str, list[Any]]:
        assert self.column is not None
        name = quote_ident(self.column.name)
        subject = {
            "": name,
            "year": f"year({name})",
            "month": f"strftime({name}, '%Y-%m')",
            "month number": f"month({name})",
            "day": f"CAST({name} AS DATE)",
        }[self.part]
        if self.operator == "in":
            marks = ", ".join("?" for _ in self.value)
            return f"{subject} IN ({marks})", list(self.value)
        if self.operator == "!=" and not self.column.numeric:
            return f"{subject} IS DISTINCT FROM ?", [self.value]
        return f"{subject} {self.operator} ?", [self.value]

    def describe(self) -> str:
        assert self.column is not None
        subject = f"{self.part} of {self.column.name}" if self.part else self.column.name
        if self.part in ("year", "month") and self.operator == "=":  # "date in 2013"
            return f"{self.column.name} in {show(self.value, self.column)}"
        if self.operator == "in":
            return f"{subject} = {' or '.join(show(v, self.column) for v in self.value)}"
        return f"{subject} {self.operator} {show(self.value, self.column)}"


def show(value: Any, column: Column | None = None) -> str:
    """A value as the answer shows it; a year as a year ("1954", not "1,954")."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int) and column is not None and column.is_time:
        return str(value)
    return fmt(value)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    column: int  # the index of the column named there


@dataclass
class Reading:
    """What the conditions reader found, and the characters of the question it read."""

    conditions: list[Condition]
    used: list[tuple[int, int]]


def _free(used: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    return all(end <= a or start >= b for a, b in used)


def _number(text: str) -> float | None:
    number = float(text.replace(",", ""))
    return number if math.isfinite(number) else None


def _when(match: re.Match[str], tag: str = "") -> When | None:
    """The point in time a ``_when_pattern`` match names (a year of 0: a month of any year)."""

    def group(name: str) -> str:
        return match[name + tag] or ""

    try:
        if group("iy"):
            day = int(group("id")) if group("id") else 0
            when = When(int(group("iy")), int(group("im")), day)
        elif group("mdy"):
            when = When(int(group("mdy")), _MONTHS[group("mdm")], int(group("mdd")))
        elif group("dmy"):
            when = When(int(group("dmy")), _MONTHS[group("dmm")], int(group("dmd")))
        elif group("myy"):
            when = When(int(group("myy")), _MONTHS[group("mym")])
        elif group("y"):
            when = When(int(group("y")))
        else:
            when = When(0, _MONTHS[group("m")])
        if when.month:
            datetime.date(when.year or 2000, when.month, when.day or 1)  # a real date, or none
    except ValueError:
        return None
    return when


def _time_column(columns: Sequence[Column], named: Sequence[Span], when: When) -> Column | None:
    """The column a point in time is compared with: the one named, else the only one."""
    fits = [c for c in columns if c.is_date or (c.is_year and when.part == "year")]
    mentioned = [c for c in (columns[s.column] for s in named) if c in fits]
    if len(mentioned) == 1:
        return mentioned[0]
    if len(fits) > 1:
        years = [c for c in fits if c.is_year]
        fits = years if len(years) == 1 and when.part == "year" else fits
    return fits[0] if len(fits) == 1 else None


def _at_time(column: Column, operator: str, when: When) -> Condition:
    if column.is_year:
        return Condition(column, operator, when.year)
    part = when.part
    if part == "day" and column.type.startswith("DATE"):
        part = ""
    return Condition(column, operator, when.value(), part)


def read_values(
    question: str, lowered: str, columns: Sequence[Column], named: Sequence[Span]
) -> Reading | None:
    """Conditions on text columns from the values the question names; None if a value could
    belong to two columns and nothing says which."""
    found: list[tuple[int, int, int, str]] = []  # start, end, column, value
    for index, column in enumerate(columns):
        for value in column.values:
            ending = f"(?:{_ENDINGS})?" if len(value) >= 3 and value[-1].isalpha() else ""
            pattern = rf"(?<!\w){re.escape(value.lower())}{ending}(?!\w)"
            for match in re.finditer(pattern, lowered):
                written = question[match.start() : match.end()]
                plural = match[0].endswith("s") and len(match[0]) > len(value)
                if plural and _counts_rows(lowered, match.start()):
                    continue  # "how many deaths": the rows counted, not the value "Death"
                strict = value.lower() in _STOPWORDS or (len(value) <= 3 and value.isupper())
                if strict and written != value:
                    continue
                found.append((match.start(), match.end(), index, value))
    found.sort(key=lambda f: (f[0] - f[1], f[0]))  # longest first
    kept: list[tuple[int, int, int, str]] = []
    for start, end, index, value in found:
        if any(not (end <= s or start >= e) for s, e, *_ in kept):
            same = [k for k in kept if (k[0], k[1]) == (start, end) and k[2] != index]
            if same:  # the same words are a value of two columns: the one named beside them
                near = {
                    s.column for s in named if abs(s.end - start) <= 1 or abs(end - s.start) <= 1
                }
                owners = {index, *(k[2] for k in same)} & near
                if len(owners) != 1:
                    return None
                kept = [k for k in kept if k not in same or k[2] in owners]
                if index in owners:
                    kept.append((start, end, index, value))
            continue
        kept.append((start, end, index, value))
    conditions: list[Condition] = []
    by_column: dict[int, list[tuple[int, int, str, bool]]] = {}
    for start, end, index, value in kept:
        negated = re.search(rf"{_NOT} (?:the |a |an )?$", lowered[:start]) is not None
        by_column.setdefault(index, []).append((start, end, value, negated))
    for index, values in sorted(by_column.items()):
        column = columns[index]
        kept_values = tuple(dict.fromkeys(v for _, _, v, negated in values if not negated))
        for _, _, value, negated in values:
            if negated:
                conditions.append(Condition(column, "!=", value))
        if len(kept_values) == 1:
            conditions.append(Condition(column, "=", kept_values[0]))
        elif kept_values:
            conditions.append(Condition(column, "in", kept_values))
    return Reading(conditions, [(s, e) for s, e, *_ in kept])


def _counts_rows(lowered: str, at: int) -> bool:
    """Whether the word at ``at`` names what is counted ("how many deaths", "the most cars")."""
    return re.search(r"(?:how many|number of|most|fewest|least)\s+$", lowered[:at]) is not None


def _compared_column(
    columns: Sequence[Column], named: Sequence[Span], start: int, end: int, said: str = ""
) -> Column | None:
    """The numeric column a comparative stands for ("older than": the age), else the one
    named just before the comparison (or just after its number)."""
    word = said.split(" ")[0]
    if word in ADJECTIVES or said.startswith(("more expensive", "less expensive")):
        index = by_adjective(
            "expensive" if "expensive" in said else word, [c.name for c in columns]
        )
        return columns[index] if index is not None else None
    before = [s for s in named if s.end <= start and columns[s.column].numeric]
    if before and start - before[-1].end <= 40:
        return columns[before[-1].column]
    after = [s for s in named if s.start >= end and columns[s.column].numeric]
    if after and after[0].start - end <= 12:
        return columns[after[0].column]
    return None


def read_numbers(
    lowered: str, columns: Sequence[Column], named: Sequence[Span], used: list[tuple[int, int]]
) -> Reading | None:
    """Comparisons and points in time; None when a number is unreadable."""
    conditions: list[Condition] = []
    taken = list(used)
    number = rf"{_CURRENCY}{NUMBER}"

    def read(match: re.Match[str], found: list[Condition]) -> None:
        conditions.extend(found)
        taken.append(match.span())

    # Ranges first: "between 2001 and 2005", "from March 2014 to June 2014", "between 5 and 10".
    between = r"\b(?:between|from) (?:the (?:years?|months?|dates?|days?) )?"
    joined = r" (?:and|to|until|through|-) "
    for match in re.finditer(
        rf"{between}{_when_pattern('a')}{joined}{_when_pattern('b')}", lowered
    ):
        first, last = _when(match, "a"), _when(match, "b")
        if first is None or last is None or first.part != last.part:
            return None
        column = _time_column(columns, named, first)
        if column is not None and _free(taken, *match.span()):
            read(match, [_at_time(column, ">=", first), _at_time(column, "<=", last)])
    for match in re.finditer(rf"{between}{number}{joined}{number}", lowered):
        low, high = _number(match[1]), _number(match[2])
        if low is None or high is None:
            return None
        if _free(taken, *match.span()):
            column = _compared_column(columns, named, match.start(), match.end())
            read(match, [Condition(column, ">=", low), Condition(column, "<=", high)])
    # Points in time after a preposition: "in 2008", "after 1900", "in March 2014".
    for operator, words in _TIME_PREFIXES:
        pattern = rf"\b(?:{words}) (?:the (?:year|month|date|day) (?:of )?)?{_when_pattern()}"
        for match in re.finditer(pattern, lowered):
            when = _when(match)
            if when is None or not _free(taken, *match.span()):
                continue
            column = _time_column(columns, named, when)
            if column is not None:
                read(match, [_at_time(column, operator, when)])
    # Comparisons of numbers: "over 500", "at least 2.5e3", "10 or more".
    for operator, words in _PREFIXES:
        pattern = rf"(?<!\w)(?:{words}) ?{_CURRENCY}(?:{NUMBER}|-?\.?\d)"
        for match in re.finditer(pattern, lowered):
            if not _free(taken, *match.span()):
                continue
            value = _number(match[1]) if match[1] else None
            if value is None:
                return None  # "over 1e309", "over 1,5": no honest figure
            column = _compared_column(columns, named, match.start(), match.end(), match[0])
            read(match, [Condition(column, operator, value)])
    for operator, words in _SUFFIXES:
        for match in re.finditer(rf"{number} ?(?:{words})(?!\w)", lowered):
            value = _number(match[1])
            if value is None:
                return None
            if _free(taken, *match.span()):
                column = _compared_column(columns, named, match.start(), match.end())
                read(match, [Condition(column, operator, value)])
    # "the first quarter": an ordinal before a numeric column's name is that number.
    for match in re.finditer(rf"\b({'|'.join(_ORDINALS)})\s", lowered):
        span = next((s for s in named if s.start == match.end()), None)
        if span is not None and columns[span.column].numeric and _free(taken, *match.span()):
            column = columns[span.column]
            read(match, [Condition(column, "=", _ORDINALS.index(match[1]) + 1)])
    # "year 1950", "2 children": a number beside a numeric column's name is that value.
    for match in re.finditer(NUMBER, lowered):
        if not _free(taken, *match.span()):
            continue
        between = r"\s*(?:(?:of|is|was|=|equals?|equal to)\s*)?"
        beside = [
            s
            for s in named
            if columns[s.column].numeric
            and (
                (s.end <= match.start() and re.fullmatch(between, lowered[s.end : match.start()]))
                or 0 <= s.start - match.end() <= 1
            )
        ]
        value = _number(match[1])
        if len(beside) == 1 and value is not None:
            read(match, [Condition(columns[beside[0].column], "=", value)])
    return Reading(conditions, taken)


def unread_digits(lowered: str, used: Sequence[tuple[int, int]]) -> bool:
    """Whether a digit of the question stands outside everything that was read."""
    return any(_free(used, m.start(), m.end()) for m in re.finditer(r"\d", lowered))


def settle(conditions: list[Condition], target: Column | None) -> list[Condition] | None:
    """Comparisons that named no column compare the computed one; None if there is none."""
    if any(c.column is None for c in conditions) and (target is None or not target.numeric):
        return None
    return [c if c.column is not None else replace(c, column=target) for c in conditions]
