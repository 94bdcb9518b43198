"""Answer questions about a CSV with one SQL query over the real file.

A small model cannot add up a column, and no model can from a sample of rows. So doclane reads
the question for what it asks, builds the SQL itself from the table's real column names and
values, and runs it in DuckDB over every row. The figures go into the answer verbatim, worded
short and explicitly ("**highest invest: 1,486.7 (firm: General Motors, year: 1954)**"); the
model only phrases around them.

How a question is read is split by concern: ``tablecolumns`` (which columns it names, matched
loosely), ``tableconditions`` (the rows it keeps: values, comparisons, dates), ``tableask``
(what it asks: a figure, the row with the highest value, the most common value, a share, a
value in a named row), ``tablesql`` (the query). A question that cannot be read exactly gets
no figure: ``compute`` returns a note naming the columns it mentions (or None if it names
none), never a figure that ignores part of the question.

The SQL is never free text: identifiers come from the table's own schema (quoted), values are
bound parameters, and every query is a single read-only SELECT with a row cap, run under a
time limit on a connection that can read nothing but the file (``tabular.query_csv``).

The planner looks at the first ``Limits.max_table_columns`` columns, and beyond them only at
columns the question names; matching a name costs one pass over the question's words per
column, so its cost grows with the columns looked at, not faster.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from doclane.documents.model import DEFAULT_LIMITS, Figures, Limits
from doclane.documents.tableask import read
from doclane.documents.tablecolumns import Column, mentions, name_words, words_of
from doclane.documents.tableconditions import VALUE_ENDINGS, show
from doclane.documents.tablesql import MAX_ROWS, Query, build
from doclane.documents.tabular import column_types, fmt, query_csv, quote_ident
from doclane.errors import DocumentError

__all__ = ["Column", "Computed", "Query", "compute", "fmt", "name_words", "plan"]

QUERY_SECONDS = 30.0
_ENDINGS = VALUE_ENDINGS  # "rainy days", "sunny days", "toyotas": rain, sun, toyota
_ASKING = {
    "average",
    "mean",
    "how",
    "many",
    "number",
    "count",
    "minimum",
    "lowest",
    "smallest",
    "least",
    "cheapest",
    "earliest",
    "maximum",
    "highest",
    "largest",
    "biggest",
    "latest",
    "total",
    "sum",
    "altogether",
    "most",
    "common",
    "median",
    "which",
    "what",
    "when",
    "who",
}


@dataclass(frozen=True, slots=True)
class Computed:
    """What was computed for a question, or (``query`` None) the note that nothing was, with
    the columns the question named."""

    query: Query | None
    rows: list[tuple[Any, ...]]
    mentioned: tuple[str, ...] = ()

    @property
    def has_figures(self) -> bool:
        return self.query is not None

    def markdown(self) -> str:
        if self.query is None:
            return _note(self.mentioned)
        return _render(self.query, self.rows)

    def figures(self) -> Figures:
        """The figures for the answer, or the note that there are none: kept apart, so that a
        note is never presented as a computed result."""
        if self.query is None:
            return Figures(note=_note(self.mentioned))
        return Figures(exact=_render(self.query, self.rows))


def _note(names: tuple[str, ...]) -> str:
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    which = "columns" if len(names) > 1 else "column"
    return f"No figure was computed for this question; it mentions the {which} {listed}."


def _cells(columns: list[Column], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{c.name}: {show(v, c)}" for c, v in zip(columns, values, strict=False))


def _table(header: list[str], lines: list[list[str]]) -> str:
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(rows)


def _render(query: Query, rows: list[tuple[Any, ...]]) -> str:
    ask, describe = query.ask, query.describe
    if ask.kind == "figure" and ask.group is None:
        value = rows[0][0] if rows else None
        shown = "none (no row matches)" if value is None else show(value, ask.measure)
        return f"**{describe}: {shown}**"
    if not rows:
        return f"**{describe}: no row matches**"
    if ask.kind == "figure":
        assert ask.group is not None
        lines = [[show(key, ask.group.column), show(value, ask.measure)] for key, value, _ in rows]
        text = _table([ask.group.name, describe], lines)
        if rows[0][2] > len(rows):
            text += f"\n\n(the {len(rows)} highest of {rows[0][2]:,} groups)"
        return text
    if ask.kind == "rows":
        assert ask.measure is not None
        columns = [*ask.shown, *ask.context]
        if ask.limit == 1:
            found = list(dict.fromkeys(_cells(columns, row[:-2]) for row in rows))
            more = rows[0][-1] - len(rows)
            if more > 0:
                found.append(f"and {more:,} more rows")
            context = f" ({'; '.join(found)})" if any(found) else ""
            return f"**{describe}: {show(rows[0][-2], ask.measure)}{context}**"
        columns.append(ask.measure)
        lines = [[show(v, c) for c, v in zip(columns, row, strict=False)] for row in rows]
        return f"**{describe}:**\n\n" + _table([c.name for c in columns], lines)
    if ask.kind == "ranked":
        assert ask.group is not None
        if ask.limit == 1:
            keys = ", ".join(show(key, ask.group.column) for key, _, _ in rows)
            more = rows[0][2] - len(rows)
            keys += f" and {more:,} more" if more > 0 else ""
            value = show(rows[0][1], ask.measure)
            if ask.function == "count":
                value += " row" if rows[0][1] == 1 else " rows"
            each = " each" if len(rows) > 1 else ""
            return f"**{describe}: {keys} ({value}{each})**"
        label = "number of rows" if ask.function == "count" else describe.split(" by ", 1)[-1]
        lines = [[show(k, ask.group.column), show(v, ask.measure)] for k, v in rows]
        return f"**{describe}:**\n\n" + _table([ask.group.name, label], lines)
    if ask.kind == "share":
        part, whole = rows[0]
        if not whole:
            return f"**{describe}: none (no rows)**"
        percent = fmt(round(100 * float(part or 0) / float(whole), 2))
        unit = " rows" if ask.measure is None else ""
        return f"**{describe}: {percent}% ({fmt(part or 0)} of {fmt(whole)}{unit})**"
    # A lookup: one row shows what was asked; several show what tells them apart too.
    count = rows[0][-1]
    if count == 1:
        values = rows[0][: len(ask.shown)]
        text = show(values[0], ask.shown[0]) if len(values) == 1 else _cells(ask.shown, values)
        return f"**{describe}: {text}**"
    columns = [*ask.shown, *ask.context]
    first = f", the first {MAX_ROWS}" if count > MAX_ROWS else ""
    lines = [[show(v, c) for c, v in zip(columns, row[:-1], strict=False)] for row in rows]
    return f"**{describe} ({count:,} rows{first}):**\n\n" + _table([c.name for c in columns], lines)


def plan(question: str, columns: list[Column]) -> Query | None:
    """The one query that answers the question, or None when it asks for nothing this can
    compute exactly."""
    ask = read(question, columns)
    return build(ask) if ask is not None else None


def mentioned(question: str, columns: list[Column]) -> tuple[str, ...]:
    """The names of the columns the question names, in the question's order."""
    found = mentions(words_of(question), [c.name for c in columns])
    return tuple(columns[m.index].name for m in found)


def _phrases(question: str, names: list[str]) -> list[str]:
    """Runs of 1-4 words of the question that could be a value in the table: not made only of
    column names, numbers and the words that ask for a computation."""
    words = re.findall(r"[\w'&.-]+", question.lower())
    ignore = _ASKING | {w for name in names for w in name_words(name).split()}
    ignore |= {"the", "is", "are", "was", "were", "of", "in", "by", "per", "for", "a", "an"}
    phrases = set()
    for size in (1, 2, 3, 4):
        for start in range(len(words) - size + 1):
            run = words[start : start + size]
            if not all(w in ignore or w.replace(".", "").isdigit() for w in run):
                phrase = " ".join(run).rstrip(".?!,")
                phrases |= {" ".join(run), phrase}
                phrases |= {phrase[: -len(e)] for e in _ENDINGS if phrase.endswith(e)}
    return sorted(phrases)


def _columns(con: duckdb.DuckDBPyConnection, question: str, max_columns: int) -> list[Column]:
    """The columns the planner looks at: the first ``max_columns``, then (as many again at
    most) those beyond that the question names. A text column carries the values the question
    names, found in one scan (none when the question names nothing that could be a value)."""
    described = column_types(con)
    rest = described[max_columns:]
    found_rest = mentions(words_of(question), [name for name, _ in rest]) if rest else []
    named = [rest[m.index] for m in sorted(found_rest, key=lambda m: m.index)]
    looked_at = described[:max_columns] + named[:max_columns]
    texts = [name for name, type_ in looked_at if type_ == "VARCHAR"]
    phrases = _phrases(question, [name for name, _ in looked_at])
    found: dict[str, list[str]] = {}
    if texts and phrases:
        # One row per (column, value) the question names. UNPIVOT costs the same per column
        # however many there are; one DISTINCT aggregate per column grew quadratically.
        as_text = ", ".join(f"CAST({quote_ident(n)} AS VARCHAR) AS {quote_ident(n)}" for n in texts)
        rows = con.execute(
            f"SELECT DISTINCT name, value FROM (UNPIVOT (SELECT {as_text} FROM csv) "
            "ON COLUMNS(*) INTO NAME name VALUE value) WHERE list_contains($1, lower(value))",
            [phrases],
        ).fetchall()
        for name, value in rows:
            found.setdefault(name, []).append(value)
    return [
        # Longest value first, so "North East" wins over "North".
        Column.of(name, type_, tuple(sorted(found.get(name, ()), key=_longest_first)))
        for name, type_ in looked_at
    ]


def _longest_first(value: str) -> tuple[int, str]:
    return -len(value), value


def compute(path: Path, question: str, limits: Limits = DEFAULT_LIMITS) -> Computed | None:
    """Run the question's query over the whole file. A question this cannot compute exactly
    gives a note naming the columns it mentions (``Computed.has_figures`` is False), or None
    when it mentions none."""

    def run(con: duckdb.DuckDBPyConnection) -> Computed | None:
        timer = threading.Timer(QUERY_SECONDS, con.interrupt)
        timer.start()
        try:
            columns = _columns(con, question, limits.max_table_columns)
            query = plan(question, columns)
            if query is None:
                named = mentioned(question, columns)
                return Computed(None, [], named) if named else None
            rows = con.execute(query.sql, query.params).fetchall()
        except duckdb.InterruptException as exc:
            raise DocumentError("The table query took too long") from exc
        finally:
            timer.cancel()
        if query.ask.counts_things and rows and rows[0][1] == 1 and rows[0][2] > 1:
            # Every group is one row: "the most subcommittees" counts something else.
            return Computed(None, [], mentioned(question, columns))
        return Computed(query, rows)

    return query_csv(path, run, limits)[0]
