"""A document cut into the units an answer can quote, and the terms units are matched on.

Each page's sentences (wrapped lines joined) and its short lines (titles, address blocks, the
rows of a price list) are units of their own; a table that text recognition read column by
column is put back together row by row. Words are compared by a light stem, British and
American spellings alike. See grounding.py for how a question picks its unit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from doclane.documents import Document

MAX_QUOTE_CHARS = 300  # a unit longer than this is cut around what matched
SHORT_LINE = 0.7  # a line shorter than this share of the page's text width ends its unit
MIN_ROWS = 3  # lines of a list or table, for "the cheapest" and the like
COVER_LINES = 8  # a page of fewer lines is a cover or title page
TEXT_WIDTH = 85  # characters of a line of prose on a page, common in manuals
WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?", re.UNICODE)
STOPWORDS = frozenset(
    (
        "the and for are was were what how which who whom whose this that these those with from "
        "does did has have had there their about into when where why can could would should "
        "will shall document text page please tell give show much many long its it is be of "
        "in on at to an by or as any all some one most least more less than does do me my "
        "list image picture file table manual guide book paper report describe describes "
        "described according under over between after before upon via within without through "
        "during also just only may might must could would should shall will"
    ).split()
)
# A sentence ends at a full stop before a capital, except after an initial ("Michael J. Vrhel")
# or a common abbreviation.
_SENTENCE_END = re.compile(
    r"\n|(?<=[.!?])(?<!\b[A-Z]\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)"
    r"(?<!\bNo\.)(?<!\bvs\.)(?<!\bFig\.)(?<!\bal\.)(?<!\bSt\.)"
    r"[\"\u201d\u2019)\]]?\s+(?=[\"\u201c(\[]?[A-Z0-9])"
)
_BULLET = re.compile(r"\s*[\u2022\u25e6\u2023\u25aa\u25cf]\s+")
ROW_VALUE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w])")


@dataclass(frozen=True, slots=True)
class Unit:
    page: int
    order: int
    text: str
    line: bool  # a whole line of its own (a title, an address line, a row)
    cells: tuple[tuple[str, str], ...] = ()  # a rebuilt table row: (column, value) pairs
    words: frozenset[str] = frozenset()  # its terms, counted once


# British and American spellings of words that manuals use both ways.
_SPELLING = {
    british: american
    for british, american in (
        ("licence", "license"),
        ("licences", "licenses"),
        ("licenced", "licensed"),
        ("colour", "color"),
        ("colours", "colors"),
        ("behaviour", "behavior"),
        ("centre", "center"),
        ("catalogue", "catalog"),
        ("organisation", "organization"),
        ("initialise", "initialize"),
        ("optimise", "optimize"),
        ("customise", "customize"),
        ("favourite", "favorite"),
        ("grey", "gray"),
    )
}


@functools.lru_cache(maxsize=65_536)  # a document repeats its words: each is stemmed once
def stem(word: str) -> str:
    """A crude stem, enough to match "defaults" with "default" and "shares" with "share"."""
    word = word.lower().replace("\u2019", "'").removesuffix("'s")
    word = _SPELLING.get(word, word)
    if len(word) <= 3:
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def terms(text: str) -> list[str]:
    return [stem(w) for w in WORD.findall(text) if len(w) > 1 and w.lower() not in STOPWORDS]


def units(document: Document) -> list[Unit]:
    """Every page's sentences and short lines, in document order, with rebuilt table rows."""
    found: list[Unit] = []
    for page in document.pages:
        lines = [line.strip() for line in page.text.split("\n")]
        whole = set(lines)
        lengths = sorted(len(line) for line in lines if line)
        # A page of a few lines (a cover, a title page) is measured against a common width.
        width = lengths[int(len(lengths) * 0.8)] if len(lengths) >= COVER_LINES else TEXT_WIDTH
        for paragraph in _paragraphs(lines, width):
            for sentence in _SENTENCE_END.split(_BULLET.sub("\n", " ".join(paragraph))):
                for text in _cut_long(sentence.strip()):
                    if text:
                        found.append(_unit(page.number, len(found), text, text in whole))
        for cells in _rebuilt_rows(page.text):
            text = "; ".join(f"{column}: {value}" if column else value for column, value in cells)
            found.append(_unit(page.number, len(found), text, True, cells))
    return found


def _unit(
    page: int, order: int, text: str, line: bool, cells: tuple[tuple[str, str], ...] = ()
) -> Unit:
    return Unit(page, order, text, line, cells, frozenset(terms(text)))


def _paragraphs(lines: list[str], width: int) -> list[list[str]]:
    """Runs of lines that wrap into each other: a short line (a title, a row, a paragraph's
    last line) or a blank one ends a run."""
    runs: list[list[str]] = [[]]
    for line in lines:
        if line:
            runs[-1].append(line)
        if not line or len(line) < SHORT_LINE * width or width < 40:
            runs.append([])
    return [run for run in runs if run]


def _cut_long(text: str) -> list[str]:
    if len(text) <= MAX_QUOTE_CHARS * 2:
        return [text]
    words = text.split(" ")
    pieces, current = [], ""
    for word in words:
        if current and len(current) + len(word) > MAX_QUOTE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    return [*pieces, current]


def _rebuilt_rows(text: str) -> list[tuple[tuple[str, str], ...]]:
    """Rows of a table that text recognition read one column after another.

    Tesseract reads far-apart columns as blocks of their own: a header, then its cells, one a
    line. Neighbouring blocks of the same length are the columns of one table; a block of
    figures alone stands beside the lines read just before it (the labels of its rows).
    """
    blocks = [
        [line.strip() for line in block.split("\n") if line.strip()]
        for block in re.split(r"\n\s*\n", text)
    ]
    blocks = [b for b in blocks if b]
    rows: list[tuple[tuple[str, str], ...]] = []
    index = 0
    while index < len(blocks):
        size = len(blocks[index])
        end = index + 1
        while end < len(blocks) and len(blocks[end]) == size:
            end += 1
        if size > MIN_ROWS and end - index >= 2:
            columns = blocks[index:end]
            headers = [column[0] for column in columns]
            for row in range(1, size):
                rows.append(tuple(zip(headers, (c[row] for c in columns), strict=True)))
            index = end
            continue
        block = blocks[index]
        figures = block[1:]
        if len(figures) >= MIN_ROWS and all(ROW_VALUE.fullmatch(f) for f in figures):
            before = [line for b in blocks[:index] for line in b]
            labels = before[-len(figures) :]
            if len(labels) == len(figures):
                rows += [
                    ((label, ""), (block[0], f)) for label, f in zip(labels, figures, strict=True)
                ]
        index += 1
    return rows or _columns_read_apart(text)


def _columns_read_apart(text: str) -> list[tuple[tuple[str, str], ...]]:
    """Rows of a table whose columns were read one after another with blank lines between
    their cells: the row labels (under their header, if any), then each column's header and
    as many figures. The first such table of the page."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    figure = [bool(ROW_VALUE.fullmatch(line.lstrip("+-$€£"))) for line in lines]
    columns: list[tuple[int, int]] = []  # (header's line, figures) of consecutive columns
    at = 0
    while at < len(lines):
        end = at + 1
        while end < len(lines) and figure[end]:
            end += 1
        size = end - at - 1
        fits = not columns or (size == columns[0][1] and columns[-1][0] + columns[-1][1] + 1 == at)
        if not figure[at] and size >= MIN_ROWS and fits:
            columns.append((at, size))
            at = end
            continue
        if columns:
            break
        at += 1
    if not columns:
        return []
    first, size = columns[0]
    labels = lines[first - size : first] if first >= size else []
    if not labels or any(figure[first - size : first]):
        return []
    header = lines[first - size - 1] if first > size and not figure[first - size - 1] else ""
    return [
        (
            (header, label) if header else (label, ""),
            *((lines[start], lines[start + 1 + row]) for start, _ in columns),
        )
        for row, label in enumerate(labels)
    ]
