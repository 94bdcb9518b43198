"""Each question's truth, computed from its document when the benchmark runs, never typed in.

A question says how (``questions.toml``):

- a table question names an operation over the CSV, computed with pandas: ``op`` is one of
  sum, mean, median, min, max, count, nunique (a figure, or one per group with ``by``), share
  (the percentage of the rows that ``where`` keeps), argmax and argmin (the ``answer`` column
  of the row with the highest or lowest ``column``; with ``by``, the group whose ``agg`` of
  ``column`` is highest or lowest), top (the ``answer`` of the ``n`` rows with the highest
  ``column``, or the lowest with ``lowest = true``), mode (the most common value of
  ``column``), lookup (the ``answer`` column of the rows that ``where`` picks);
  ``where`` filters rows first (``[["firm", "=", "IBM"], ["year", ">", 1950]]``); on a date
  column, ``"year"`` keeps a year (2009), ``"month"`` a month ("2010-07");
- a PDF, scan or screenshot question gives a regular expression, ``find``, whose first group,
  in the document's text, is the truth; the pages it matches on are where the truth stands;
- a drawing's question names one of the figures the drawing computed, ``fact`` (and, with
  ``rivals``, the drawing's list of the other candidates).

``format = "year"`` keeps the year of a date, ``format = "month"`` its month; ``as_text = true``
compares a number-like truth (a version) as words.
"""

from __future__ import annotations

import datetime
import operator
import re
from typing import Any

import pandas as pd

from benchmarks.eval.documents import Doc
from benchmarks.eval.grading import Item, Truth, as_number

_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
MAX_GROUP_COLUMN_VALUES = 60  # text columns with at most this many values are grouped by
SHOWN_ROWS = 5  # the first rows doclane shows the model


def truth(question: dict[str, Any], doc: Doc) -> Truth:
    if "op" in question:
        assert doc.table is not None, f"{question['ask']}: not a table"
        found = table_truth(question, doc.table)
    elif "find" in question:
        found = text_truth(question, doc)
    else:
        value = doc.facts[question["fact"]]
        assert isinstance(value, str | float)
        rivals = [r for r in doc.facts.get(question.get("rivals", ""), []) if r != value]
        found = Truth([Item([value], rivals, as_text=question.get("as_text", False))])
    if doc.table is not None:
        found.figures += table_figures(doc.table)
        found.shown_rows = [
            [v if isinstance(v, str) else float(v) for v in row if v == v]  # NaN dropped
            for row in doc.table.head(SHOWN_ROWS).itertuples(index=False)
        ]
    found.figures += [float(v) for v in doc.facts.values() if isinstance(v, float)]
    return found


def text_truth(question: dict[str, Any], doc: Doc) -> Truth:
    pattern = re.compile(question["find"])
    value = None
    pages = set()
    for page, text in enumerate(doc.pages, 1):
        for match in pattern.finditer(text):
            if value is None:
                value = match[1]
            if match[1] == value:
                pages.add(page)
    if value is None:
        raise LookupError(f"{doc.key}: {question['find']!r} not found")
    accept = _variants(value)
    number = as_number(value)
    return Truth(
        [Item(accept, as_text=question.get("as_text", False))],
        pages,
        [number] if number is not None else [],
    )


def _variants(value: str | float) -> list[str | float]:
    """A date in the ways an answer may write it."""
    if not isinstance(value, str):
        return [value]
    for pattern in ("%B %d, %Y", "%Y/%m/%d", "%Y-%m-%d", "%B %Y", "%d %B %Y"):
        try:
            date = datetime.datetime.strptime(value, pattern)
        except ValueError:
            continue
        if pattern == "%B %Y":
            return [value, date.strftime("%Y-%m"), date.strftime("%b %Y")]
        return [
            value,
            f"{date.day} {date:%B %Y}",
            f"{date:%Y/%m/%d}",
            f"{date:%Y-%m-%d}",
            f"{date:%B} {date.day}, {date:%Y}",
            f"{date:%b} {date.day}, {date:%Y}",
        ]
    return [value]


def dates(column: pd.Series) -> pd.Series:
    """A column of dates as pandas reads them: text in any usual form, or yyyymmdd numbers."""
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_datetime(column.astype("int64").astype(str), format="%Y%m%d")
    return pd.to_datetime(column, format="mixed")


def _rows(table: pd.DataFrame, where: list[list[Any]]) -> pd.DataFrame:
    for column, op, value in where:
        if op == "year":
            table = table[dates(table[column]).dt.year == value]
        elif op == "month":
            table = table[dates(table[column]).dt.strftime("%Y-%m") == value]
        else:
            table = table[_COMPARE[op](table[column], value)]
    return table


def _value(raw: Any, form: str | None) -> str | float:
    if form == "year":
        return float(str(raw)[:4])
    if form == "month":
        return f"{dates(pd.Series([raw])).iloc[0]:%B %Y}"
    if isinstance(raw, str):
        return raw
    return float(raw)


def table_truth(question: dict[str, Any], table: pd.DataFrame) -> Truth:
    rows = _rows(table, question.get("where", []))
    op = question["op"]
    column = question.get("column")
    form = question.get("format")
    if op == "share":
        value = 100.0 * len(rows) / len(table)
        return Truth([Item([value, value / 100])], figures=[value, value / 100])
    if op in ("sum", "mean", "median", "min", "max", "count", "nunique"):
        if "by" in question:
            grouped = rows.groupby(question["by"])
            values = grouped.size() if op == "count" else getattr(grouped[column], op)()
            return Truth([Item([float(v)]) for v in values], figures=[float(v) for v in values])
        value = float(len(rows) if op == "count" else getattr(rows[column], op)())
        return Truth([Item([value])], figures=[value])
    if op in ("argmax", "argmin") and "by" in question:
        grouped = getattr(rows.groupby(question["by"])[column], question.get("agg", "mean"))()
        best = getattr(grouped, op.removeprefix("arg"))()
        accept = [str(key) for key in grouped.index[grouped == best]]
        rivals = [str(key) for key in grouped.index if str(key) not in accept]
        return Truth([Item(list(accept), list(rivals))], figures=[float(best)])
    answers = rows[question["answer"]] if "answer" in question else rows[column]
    if op == "top":
        ranked = rows.sort_values(column, ascending=question.get("lowest", False))
        chosen = ranked.head(question["n"])
        items = [Item(_variants(_value(v, form))) for v in chosen[question["answer"]]]
        return Truth(items, figures=[float(v) for v in chosen[column]])
    if op in ("argmax", "argmin"):
        best = getattr(rows[column], op.removeprefix("arg"))()
        winners = answers[rows[column] == best]
        extra = [float(best)]
    elif op == "mode":
        counts = answers.value_counts()
        winners = pd.Series(counts[counts == counts.max()].index)
        extra = [float(counts.max())]
    elif op == "lookup":
        winners, extra = answers, []
    else:
        raise ValueError(f"unknown op {op}")
    accept = sorted({_value(v, form) for v in winners.dropna()}, key=str)
    accept = [variant for value in accept for variant in _variants(value)]
    rivals = sorted({_value(v, form) for v in answers.dropna()} - set(accept), key=str)
    numbers = [float(v) for v in accept if isinstance(v, float)]
    item = Item(accept, rivals if question.get("rivals", True) else [])
    return Truth([item], figures=numbers + extra)


def table_figures(table: pd.DataFrame) -> list[float]:
    """Figures an answer may fairly state about a table: its size, every numeric column's
    count, sum, mean, median, minimum and maximum, overall and per value of each small text
    column, and how often each value of a text column occurs."""
    found = [float(len(table)), float(len(table.columns))]
    found += [float(n) for n in table.isna().sum()]  # empty cells per column
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    texts = [c for c in table.columns if c not in numeric]
    stats = ["count", "sum", "mean", "median", "min", "max", "nunique"]
    for column in numeric:
        found += [float(table[column].agg(stat)) for stat in stats]
    for column in texts:
        counts = table[column].value_counts()
        found += [float(len(counts)), *map(float, counts.values)]
        if numeric and len(counts) <= MAX_GROUP_COLUMN_VALUES:
            grouped = table.groupby(column)[numeric].agg(stats[:-1])
            found += [float(v) for v in grouped.to_numpy().ravel()]
    return [v for v in found if v == v]  # no NaN
