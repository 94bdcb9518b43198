"""What a question about a table asks for, read from its words: an ``Ask``.

- **figure**: a count, distinct count, total, average, median, minimum or maximum of a column,
  overall or per group ("by firm", "per state", "for each year");
- **rows**: the row(s) with the highest or lowest value of a column ("which firm had the
  highest invest", "in which year was X lowest", "the 5 largest …", "the most expensive car"),
  shown with the column the question asks for and the row's label;
- **ranked**: the group(s) that come first by a figure ("which state has the most airports",
  "the most common weather", "which firm had the highest total invest");
- **share**: the share of rows, or of a column's total, that the conditions keep;
- **lookup**: a column's value in the row(s) the question names ("the poverty of Texas").

Anything else is not an ``Ask`` (``read`` returns None): a question that names no computation,
one whose column is ambiguous, or one with a number or condition the reader cannot place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from doclane.documents.tablecolumns import Column, by_adjective, mentions, name_key, words_of
from doclane.documents.tableconditions import (
    Condition,
    Span,
    read_numbers,
    read_values,
    settle,
    unread_digits,
)
from doclane.documents.tabular import quote_ident

MAX_TOP = 50  # "the 1000 largest" lists this many

_FUNCTIONS = [  # (SQL function, words that ask for it), the first found wins
    ("median", r"median"),
    ("avg", r"average|mean|avg"),
    ("count", r"how many|number of|count|how often"),
    ("sum", r"total|sum|altogether|in all|combined|adds? up|added up|adding up"),
]
_HIGH = (
    r"highest|largest|biggest|greatest|maximum|max|most|top|latest|peak|record|"
    r"oldest|heaviest|tallest|longest|widest|most expensive|strongest|fastest|hottest|"
    r"warmest|wettest|richest|deepest|busiest|best"
)
_LOW = (
    r"lowest|smallest|least|fewest|minimum|min|bottom|earliest|"
    r"youngest|cheapest|lightest|shortest|least expensive|weakest|slowest|coldest|coolest|"
    r"driest|poorest|shallowest|worst"
)
_MODE = (
    r"(?P<which>most|least) (?:common|frequent|frequently|often|popular|usual|typical)"
    r"|(?:occurs?|occurred|appears?|appeared|happens?|happened) (?:the )?(?P<how>most|least)"
    r"|\bmode\b"
)
_SHARE = r"\b(?:share|percentage|percent|proportion|fraction)\b|%"
_GROUP = r"(?:by|per|for each|for every|in each|each)"
_WORD_NUMBERS = {
    word: n
    for n, word in enumerate(
        "one two three four five six seven eight nine ten eleven twelve".split(), 1
    )
}
_TOP = (
    r"\b(?:top|first|bottom|last|which|what)\s+(?P<a>\d+|{w})\b"
    r"|\b(?P<b>\d+|{w})\s+(?:{h}|{l})\b".replace("{w}", "|".join(_WORD_NUMBERS))
    .replace("{h}", _HIGH)
    .replace("{l}", _LOW)
)


@dataclass(frozen=True, slots=True)
class Group:
    """Rows grouped by a column's value, or by the year or month of a date column."""

    column: Column
    part: str = ""

    @property
    def name(self) -> str:
        return f"{self.part} of {self.column.name}" if self.part else self.column.name

    def sql(self) -> str:
        name = quote_ident(self.column.name)
        return {"": name, "year": f"year({name})", "month": f"strftime({name}, '%Y-%m')"}[self.part]


@dataclass(frozen=True)
class Ask:
    kind: str  # "figure", "rows", "ranked", "share" or "lookup"
    conditions: list[Condition]
    function: str = ""  # avg, sum, min, max, median, count, distinct
    measure: Column | None = None  # the column computed, ranked or looked up
    group: Group | None = None
    shown: list[Column] = field(default_factory=list)  # asked for, shown with each row
    context: list[Column] = field(default_factory=list)  # what tells rows apart, shown too
    descending: bool = True
    limit: int = 1  # top N; 1 is the extreme and its ties
    # "which state has the most airports": rows counted per group because the question
    # counts things ("airports") that no column names; meaningless if every group is one row
    counts_things: bool = False


@dataclass
class _Question:
    """The question as the reader sees it: where each column is named, and which words are
    left for the words that ask (names and values masked)."""

    columns: Sequence[Column]
    lowered: str
    masked: str
    named: list[Span]

    def column_at(self, position: int, slack: int = 1) -> Span | None:
        """The column named at ``position``, or after "the", "a", "an" there (``slack`` 0:
        right there only)."""
        for span in self.named:
            gap = self.lowered[position : span.start] if span.start >= position else "#"
            if re.fullmatch(r"\s*(?:the\s+|a\s+|an\s+)?", gap) and len(gap) <= 6 * slack:
                return span
        return None

    def words(self, pattern: str) -> re.Match[str] | None:
        return re.search(rf"(?<![\w#])(?:{pattern})(?![\w#])", self.masked)


def _mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    return "".join(chars)


def _top_n(masked: str) -> tuple[int, tuple[int, int]] | None:
    match = re.search(_TOP, masked)
    if match is None:
        return None
    said = match["a"] or match["b"]
    number = _WORD_NUMBERS.get(said) or int(said)
    if number < 1:
        return None
    return min(number, MAX_TOP), match.span()


def read(question: str, columns: Sequence[Column]) -> Ask | None:
    """The question's ``Ask``, or None when it asks for nothing this can compute exactly."""
    text = " ".join(question.split())
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer: read it lowered
        text = lowered
    words = words_of(lowered)
    named = [
        Span(words[m.first].start, words[m.last].end, m.index)
        for m in mentions(words, [c.name for c in columns])
    ]
    values = read_values(text, lowered, columns, named)
    if values is None:
        return None
    named = [s for s in named if all(s.end <= a or s.start >= b for a, b in values.used)]
    names = [(s.start, s.end) for s in named]
    top = _top_n(_mask(lowered, [*values.used, *names]))
    skip = [top[1]] if top else []
    numbers = read_numbers(lowered, columns, named, [*values.used, *names, *skip])
    if numbers is None or unread_digits(lowered, numbers.used):
        return None
    read_spans = [span for span in numbers.used if span not in skip]
    masked = _mask(lowered, read_spans)
    if _unknown_name(text, masked):
        return None
    q = _Question(columns, lowered, masked, named)
    conditions = values.conditions + numbers.conditions
    negated = re.search(r"(?<![\w#])(?:not|never|no)(?![\w#])|n't\b", masked)
    if negated and not any(c.operator == "!=" for c in conditions):
        return None  # a condition this did not read ("not sunny"): no figure that ignores it
    return _plan(q, conditions, top)


def _unknown_name(text: str, masked: str) -> bool:
    """Whether the question writes a name (a capitalised word past its first) that is neither
    a column nor a value of the table: a figure that ignored it would answer another question."""
    for match in re.finditer(r"(?<![\w'])[A-Z][\w'&.-]*", text):
        if match.start() == 0 or text[match.start() - 2 : match.start()] in (". ", "? ", "! "):
            continue
        if "#" in masked[match.start() : match.end()] or match[0] in _NOT_NAMES:
            continue
        return True
    return False


_NOT_NAMES = {"I", "OK", "Q1", "Q2", "Q3", "Q4"} | {
    m.capitalize()
    for m in (
        "january february march april may june july august september "
        "october november december jan feb mar apr jun jul aug sep sept "
        "oct nov dec monday tuesday wednesday thursday friday saturday "
        "sunday"
    ).split()
}


def _labels(
    columns: Sequence[Column], taken: Sequence[Column | None], shown: Sequence[Column] = ()
) -> list[Column]:
    """The columns that tell a row apart: the first text column (unless one is shown already)
    and the first time column that the question does not already fix or show."""
    free = [c for c in columns if c not in taken]
    shows_text = any(c.is_text for c in shown)
    text = None if shows_text else next((c for c in free if c.is_text), None)
    time = next((c for c in free if c.is_date or c.is_year), None)
    return [c for c in (text, time) if c is not None]


@dataclass
class _Roles:
    """What the columns the question names are for."""

    answers: list[Column]  # asked for: "which firm", "in which year", "when"
    asks_for_row: bool  # "which one", "who": a row is asked for, its label shown
    group: Group | None  # "by firm", "per year"
    others: list[Column]  # the rest, in the question's order


def _roles(
    q: _Question, conditions: list[Condition], top: tuple[int, tuple[int, int]] | None
) -> _Roles:
    columns = q.columns
    answers: list[Column] = []
    asks_for_row = False
    asking = [m.end() for m in re.finditer(r"(?<![\w#])(?:which|what)\s+", q.lowered)]
    skip = []
    if top is not None:  # "the 5 largest firms", "top 3 states"
        skip.append(top[1][1] + 1)
        asking += skip
    for at in asking:
        span = q.column_at(at, slack=0)
        rest = q.lowered[at:]
        if span is not None and (at not in skip or _names_rows(columns, span, q.named)):
            answers.append(columns[span.column])
        elif re.match(r"(?:year|date|day|month)\b", rest):
            answers += [c for c in columns if c.is_date][:1]
            asks_for_row = True
        elif at not in skip and not re.match(
            r"(?:is|was|are|were|did|does|do|has|had|percentage|percent|share|proportion|"
            r"fraction|\d|top|first)\b",
            rest,
        ):
            asks_for_row = True
    if re.match(r"\W*(?:and |but |so )?when\b", q.masked) or q.words(
        r"when (?:was|were|did|is|does|do|has|had)"
    ):
        answers += [c for c in columns if (c.is_date or c.is_year) and c not in answers][:1]
        asks_for_row = True
    if q.words("who|whom|whose"):
        asks_for_row = True

    group: Group | None = None
    for match in re.finditer(rf"(?<![\w#]){_GROUP}\s", q.lowered):
        span = q.column_at(match.end())
        if span is not None:
            column = columns[span.column]
            if _groupable(column):
                group = Group(column)
                break
        elif moment := re.match(r"(year|month)\b", q.lowered[match.end() :]):
            dates = [c for c in columns if c.is_date]
            if len(dates) == 1:
                group = Group(dates[0], moment[1])
                break
    compared = {c.column.name for c in conditions if c.operator not in ("=", "in") and c.column}
    others = [
        columns[s.column]
        for s in q.named
        if columns[s.column] not in answers
        and (group is None or columns[s.column] is not group.column)
        and columns[s.column].name not in compared
    ]
    return _Roles(answers, asks_for_row, group, others)


def _names_rows(columns: Sequence[Column], span: Span, named: Sequence[Span]) -> bool:
    """Whether the column after "top 3"/"which 3" names what is listed rather than what ranks:
    text, or a time ("which 3 years had the highest DEC") when another number is named."""
    column = columns[span.column]
    if not column.numeric:
        return True
    others = [columns[s.column] for s in named if s.column != span.column]
    return column.is_time and any(c.numeric and not c.is_time for c in others)


def _groupable(column: Column) -> bool:
    """Whether rows are grouped by the column's values: text, dates, years, whole numbers."""
    return column.is_text or column.is_time or column.type.endswith("INT")


def _plan(
    q: _Question, conditions: list[Condition], top_n: tuple[int, tuple[int, int]] | None
) -> Ask | None:
    columns = q.columns
    roles = _roles(q, conditions, top_n)
    answers, group = roles.answers, roles.group
    top = top_n[0] if top_n else 0
    fixed = [c.column for c in conditions if c.operator in ("=", "in")]
    numeric = [c for c in roles.others if c.numeric and c not in fixed]
    function = next((fn for fn, words in _FUNCTIONS if q.words(words)), "")
    mode = re.search(_MODE, q.masked)
    high, low = q.words(_HIGH), q.words(_LOW)
    if mode is not None:
        high = low = None
    descending = high is not None and (low is None or high.start() <= low.start())
    adjective = next(
        (
            columns[i]
            for word in re.findall(r"[a-z]+", q.masked)
            if (i := by_adjective(word, [c.name for c in columns])) is not None
        ),
        None,
    )
    measure = numeric[0] if numeric else adjective

    def sole_measure() -> Column | None:
        candidates = [
            c for c in columns if c.numeric and not c.is_time and not c.words.endswith("id")
        ]
        return candidates[0] if len(candidates) == 1 else None

    def done(
        kind: str,
        function: str = "",
        measure: Column | None = None,
        group: Group | None = None,
        shown: Sequence[Column] = (),
        limit: int = 1,
    ) -> Ask | None:
        settled = settle(conditions, measure)
        if settled is None:
            return None
        context = _labels(columns, [*shown, measure, *fixed], shown)
        return Ask(kind, settled, function, measure, group, list(shown), context, descending, limit)

    if q.words(_SHARE) and conditions:
        share_of = measure if measure is not None and measure not in fixed else None
        return done("share", "sum" if share_of else "count", share_of)

    if mode is not None:
        descending = "least" not in mode[0]
        after = q.column_at(mode.end())
        targets = [columns[after.column]] if after else answers or roles.others
        if not targets:
            return None
        target = targets[0]
        return done("ranked", "count", None, Group(target), limit=top or 1)

    if high or low or top:
        extreme = high if descending else low
        ranked_by = q.column_at(extreme.end()) if extreme else None
        if group is not None and not group.part and group.column.numeric and answers:
            # "the top 3 locations by smoking_yes": the rows ranked by a number, not grouped
            measure, group = group.column, None
        elif ranked_by is not None and columns[ranked_by.column].numeric:
            # "the AGE of the person with the biggest AVGEXP": AVGEXP ranks, AGE is shown
            measure = columns[ranked_by.column]
            shown = [c for c in roles.others if c not in (measure, *fixed)]
            if not answers and not roles.asks_for_row and shown and function == "":
                return done("rows", "", measure, None, shown, top or 1)
        asked = answers or roles.asks_for_row or top
        if function in ("avg", "sum", "median"):  # "which firm had the highest total invest"
            measure = measure or sole_measure()
            groupable = len(answers) == 1 and _groupable(answers[0])
            key = Group(answers[0]) if groupable else group
            if measure is None or key is None:
                return None
            if not asked and group is not None and not top:
                return None  # "the highest average price by make": ranked below
            return done("ranked", function, measure, key, limit=top or 1)
        if asked:
            if measure is not None:
                return done("rows", "", measure, None, answers, top or 1)
            most = q.words(r"(?:most|least|fewest)(?:\s+(?P<noun>[a-z]+))?")
            if len(answers) == 1 and (function == "count" or most):
                noun = most["noun"] if most else None
                if noun and any(
                    c.numeric and name_key(c.name).startswith(noun.rstrip("s")) for c in columns
                ):
                    return None  # "the most bills" with BILLS103 and BILLS104: which?
                ranked = done("ranked", "count", None, Group(answers[0]), limit=top or 1)
                return replace(ranked, counts_things=True) if ranked else None
            return None
        measure = measure or sole_measure()
        if measure is None:
            return None
        if group is not None:
            return done("figure", "max" if descending else "min", measure, group)
        return done("rows", "", measure)

    counted = _counted(q)
    if function == "count" or (counted is not None and q.words("different|distinct|unique")):
        if counted is not None and counted.numeric and not counted.is_time and counted not in fixed:
            return done("figure", "sum", counted, group)  # "how many units"
        if (
            counted is not None
            and counted not in fixed
            and (not counted.numeric or counted.is_time or q.words("different|distinct|unique"))
        ):
            return done("figure", "distinct", counted, group)  # "how many firms"
        return done("figure", "count", None, group)

    if function:
        measure = measure or sole_measure()
        if measure is None:
            return None
        return done("figure", function, measure, group)

    # No computation asked for: a column's value in the rows the question names.
    shown = (
        answers or [c for c in roles.others if c not in fixed] or ([adjective] if adjective else [])
    )
    if not shown or not any(c.operator in ("=", "in") for c in conditions):
        return None
    return done("lookup", "", None, None, shown)


def _counted(q: _Question) -> Column | None:
    """The column right after "how many" / "number of" ("how many units", "how many firms")."""
    match = re.search(
        r"(?<![\w#])(?:how many|number of|count of)\s+(?:(?:different|distinct|unique)\s+)?",
        q.lowered,
    )
    if match is None:
        return None
    span = q.column_at(match.end(), slack=0)
    return q.columns[span.column] if span else None
