"""A table's columns as the planner sees them, and which of them a question names.

A column is named when a run of the question's words spells its name once case, spaces,
underscores and punctuation are set aside: "temp_max", "temp max" and "Temp Max" all name
``temp_max``; "copper price" names ``COPPERPRICE`` (upper case run together). The last word may
be a plural ("firms" names ``firm``), and a piece of the name may be the start of a longer word
(≥ 3 letters): ``unemp`` is named by "unemployment", ``COUNCILDIST`` by "council district",
``SUNACTIVITY`` by "sunspot activity". Exact spellings beat plurals, which beat abbreviations;
a longer run beats a shorter one; and two columns named equally well by the same words are
both left out (the question is ambiguous, and doclane does not guess).

A few adjectives stand for a column the question does not spell ("how old" is the age, "most
expensive" the price); they name a column only when exactly one column has that word.

Cost: one pass over the question's words per column, starting only where a word begins with
the column's first letter, so a table with thousands of columns is matched in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from doclane.documents.tabular import is_numeric

MIN_PIECE = 3  # the shortest start of a word that may stand for it ("sun" for "sunspot")
MAX_WORDS = 16  # the most words one column name may span
EXACT, PLURAL, ABBREVIATED = 3, 2, 1

# Words that stand for a column they do not spell: the column words they point at.
ADJECTIVES: dict[str, tuple[str, ...]] = {
    "old": ("age",),
    "older": ("age",),
    "oldest": ("age",),
    "young": ("age",),
    "younger": ("age",),
    "youngest": ("age",),
    "expensive": ("price", "cost"),
    "cheap": ("price", "cost"),
    "cheaper": ("price", "cost"),
    "cheapest": ("price", "cost"),
    "costly": ("price", "cost"),
    "heavy": ("weight",),
    "heaviest": ("weight",),
    "lightest": ("weight",),
    "tall": ("height",),
    "tallest": ("height",),
    "long": ("length",),
    "longest": ("length",),
    "shortest": ("length",),
    "wide": ("width",),
    "widest": ("width",),
    "populous": ("population",),
}
# Words too common to be a column's name on their own, or that ask for a computation: they
# may still spell a name exactly, never stand as the abbreviation of one.
_NOT_ABBREVIATIONS = set(
    """about above after again against all also among and any are average before below
    between biggest both but can common count did does done each equal every fewer fewest
    for frequent from greatest had has have her here highest his how into largest least less
    lower lowest many maximum mean median minimum more most much not number off often once
    only other our out over percent percentage proportion same share since smallest some
    than that the their them then there these they this those through top total under until
    very was were what when where which while who whom whose why with within without you
    your""".split()
)
_STOP_NAMES = {"a", "an", "the", "of", "in", "on", "by", "is", "to", "and", "or", "for", "at"}


TIME_WORDS = ("year", "date", "month", "day", "quarter", "week", "time", "period")


def name_words(name: str) -> str:
    """A column name as a question would say it: "order_id" -> "order id"."""
    return re.sub(r"[_\W]+", " ", name).strip().lower()


def name_key(name: str) -> str:
    """A column name's letters and digits, lower case: "temp_max" -> "tempmax"."""
    return re.sub(r"[\W_]+", "", name.lower())


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    numeric: bool
    values: tuple[str, ...] = ()  # values of a text column the question names, longest first
    type: str = ""  # DuckDB's type ("" when unknown: text or a number, as ``numeric`` says)

    @property
    def words(self) -> str:
        return name_words(self.name)

    @property
    def is_date(self) -> bool:
        return self.type.startswith(("DATE", "TIMESTAMP"))

    @property
    def is_year(self) -> bool:
        """A column of whole years: integers under a name that says "year" ("YEAR", "yr")."""
        named = any(w in ("year", "yr", "years") for w in self.words.split())
        return named and self.numeric and not self.type.startswith(("DOUBLE", "FLOAT", "DEC"))

    @property
    def is_time(self) -> bool:
        """Dates, years, or integers named as a time (a quarter, a month number)."""
        if self.is_date or self.is_year:
            return True
        return self.numeric and any(w in TIME_WORDS for w in self.words.split())

    @property
    def is_text(self) -> bool:
        return not self.numeric and not self.is_date

    @classmethod
    def of(cls, name: str, duckdb_type: str, values: tuple[str, ...] = ()) -> Column:
        return cls(name, is_numeric(duckdb_type), values, duckdb_type)


@dataclass(frozen=True, slots=True)
class Word:
    text: str  # lower case letters and digits
    start: int  # where it stands in the question
    end: int


def words_of(question: str) -> list[Word]:
    return [Word(m[0], m.start(), m.end()) for m in re.finditer(r"[a-z0-9]+", question.lower())]


@dataclass(frozen=True, slots=True)
class Mention:
    """Words ``first`` to ``last`` (inclusive) of the question name column ``index``."""

    index: int
    first: int
    last: int
    score: int


def _spans(key: str, words: Sequence[Word], first: int) -> list[tuple[int, int]]:
    """Every way words ``first``… spell ``key``: (last word, score)."""
    found: list[tuple[int, int]] = []

    def step(at: int, word: int, score: int) -> None:
        if word >= len(words) or word - first >= MAX_WORDS:
            return
        text, rest = words[word].text, key[at:]
        if rest.startswith(text):  # the whole word is the next piece of the name
            if len(text) == len(rest):
                found.append((word, score))
            else:
                step(at + len(text), word + 1, score)
            return
        for ending in ("s", "es"):  # the name's last piece, in the plural
            if text == rest + ending:
                found.append((word, min(score, PLURAL)))
        if not (text.isalpha() and text not in _NOT_ABBREVIATIONS):
            return
        common = 0
        while common < min(len(text), len(rest)) and text[common] == rest[common]:
            common += 1
        # A piece of the name abbreviates the word: "unemp" for "unemployment".
        for size in range(common, MIN_PIECE - 1, -1):
            if not rest[:size].isalpha():
                continue
            if size == len(rest):
                found.append((word, ABBREVIATED))
            else:
                step(at + size, word + 1, ABBREVIATED)

    step(0, first, EXACT)
    return found


def mentions(words: Sequence[Word], names: Sequence[str]) -> list[Mention]:
    """The columns the question names, each at most once, at non-overlapping words; a run of
    words that names two columns equally well names neither."""
    starts: dict[str, list[int]] = {}
    for position, word in enumerate(words):
        starts.setdefault(word.text[0], []).append(position)
    candidates: list[Mention] = []
    for index, name in enumerate(names):
        key = name_key(name)
        if not key or key in _STOP_NAMES:
            continue
        for first in starts.get(key[0], ()):
            best: dict[int, int] = {}
            for last, score in _spans(key, words, first):
                best[last] = max(best.get(last, 0), score)
            candidates += [Mention(index, first, last, s) for last, s in best.items()]
    candidates.sort(key=lambda m: (m.last - m.first, m.score), reverse=True)
    taken: set[int] = set()
    named: set[int] = set()
    chosen: list[Mention] = []
    for mention in candidates:
        span = set(range(mention.first, mention.last + 1))
        if span & taken or mention.index in named:
            continue
        rivals = [
            m
            for m in candidates
            if (m.first, m.last, m.score) == (mention.first, mention.last, mention.score)
            and m.index != mention.index
            and m.index not in named
        ]
        taken |= span
        if rivals:
            continue  # two columns spelled equally well by the same words: neither
        named.add(mention.index)
        chosen.append(mention)
    return sorted(chosen, key=lambda m: m.first)


def by_adjective(word: str, names: Sequence[str]) -> int | None:
    """The one column an adjective stands for ("expensive": a price), if exactly one."""
    wanted = ADJECTIVES.get(word)
    if not wanted:
        return None
    found = [
        i for i, name in enumerate(names) if any(w in name_words(name).split() for w in wanted)
    ]
    if len(found) != 1:
        # "price" spelled run together with another word ("PRICEUSD") is not looked for.
        found = [i for i, name in enumerate(names) if name_key(name) in wanted]
    return found[0] if len(found) == 1 else None
