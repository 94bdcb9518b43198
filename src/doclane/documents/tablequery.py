"""Answer counting and arithmetic questions about a CSV with one SQL query over the real file.

A small model cannot add up a column, and no model can from a sample of rows. So doclane reads
the question for what it asks (a count, a total, an average, a minimum or maximum, per group,
under a filter), builds the SQL itself from the table's real column names and values, and runs
it in DuckDB over every row. The figures go into the answer verbatim; the model only phrases
around them.

The SQL is never free text: identifiers come from the table's own schema (quoted), filter
values are bound parameters, and every query is a single read-only SELECT with a row cap, run
under a time limit.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from doclane.documents.tabular import fmt, is_numeric, query_csv, quote_ident
from doclane.errors import DocumentError

MAX_GROUPS = 50
QUERY_SECONDS = 30.0

# (SQL function, label, words that ask for it), in the order they are tried.
_AGGREGATES: list[tuple[str, str, tuple[str, ...]]] = [
    ("avg", "average", ("average", "mean")),
    ("count", "number of rows", ("how many", "number of", "count")),
    ("min", "lowest", ("minimum", "lowest", "smallest", "least", "cheapest", "earliest")),
    ("max", "highest", ("maximum", "highest", "largest", "biggest", "latest")),
    ("sum", "total", ("total", "sum", "altogether")),
]
_GROUP_WORDS = r"(?:by|per|for each|for every|in each|each)"
_COMPARISONS = [
    (r"(?:over|above|more than|greater than|at least|>=?)", ">"),
    (r"(?:under|below|less than|fewer than|at most|<=?)", "<"),
]


def name_words(name: str) -> str:
    """A column name as a question would say it: "order_id" -> "order id"."""
    return re.sub(r"[_\W]+", " ", name).strip().lower()


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    numeric: bool
    values: tuple[str, ...] = ()  # distinct values of a small text column, for filters

    @property
    def words(self) -> str:
        return name_words(self.name)


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    params: list[Any]
    describe: str  # what was computed, in words
    group: Column | None


@dataclass(frozen=True, slots=True)
class Computed:
    query: Query
    rows: list[tuple[Any, ...]]

    def markdown(self) -> str:
        if self.query.group is None:
            return f"**{self.query.describe}: {fmt(self.rows[0][0])}**"
        header = f"| {self.query.group.name} | {self.query.describe} |\n|---|---|\n"
        lines = "\n".join(f"| {fmt(key)} | {fmt(value)} |" for key, value in self.rows)
        return f"{header}{lines}"


def _mentions(question: str, phrase: str) -> bool:
    if not phrase:
        return False
    variants = {phrase, phrase.rstrip("s"), phrase + "s", phrase + "es"}
    return any(re.search(rf"\b{re.escape(v)}\b", question) for v in variants if v)


def plan(question: str, columns: list[Column]) -> Query | None:
    """The one query that answers the question, or None when it asks for no computation."""
    q = " " + re.sub(r"\s+", " ", question.lower()) + " "
    function = label = None
    for fn, name, words in _AGGREGATES:
        if any(_mentions(q, word) for word in words):
            function, label = fn, name
            break
    if function is None:
        return None

    group = next(
        (
            c
            for c in columns
            if re.search(rf"\b{_GROUP_WORDS} {re.escape(c.words)}s?\b", q) and not c.numeric
        ),
        None,
    )
    mentioned = [c for c in columns if c is not group and _mentions(q, c.words)]
    numeric = [c for c in mentioned if c.numeric]
    counted = [c for c in numeric if _mentions(q, f"how many {c.words}")]
    if function == "count" and counted:  # "how many units were sold?": add the units up
        function, label, numeric = "sum", "total", counted
    conditions: list[str] = []
    params: list[Any] = []
    described: list[str] = []
    for column in columns:
        if column is group or column.numeric:
            continue
        for value in column.values:
            if len(value) > 1 and re.search(rf"(?<!\w){re.escape(value.lower())}(?!\w)", q):
                conditions.append(f"{quote_ident(column.name)} = ?")
                params.append(value)
                described.append(f"{column.name} = {value}")
                break

    target: Column | None = numeric[0] if numeric else None
    if function != "count":
        if target is None:
            candidates = [c for c in columns if c.numeric and not c.words.endswith("id")]
            if len(candidates) != 1:
                return None  # which column? do not guess
            target = candidates[0]
        expression = f"{function}({quote_ident(target.name)})"
        describe = f"{label} {target.name}"
    else:
        expression = "count(*)"
        describe = "number of rows"
    for pattern, operator in _COMPARISONS:
        match = re.search(rf"{pattern} (-?[\d,]*\.?\d+)", q)
        if match and target is not None:
            number = float(match[1].replace(",", ""))
            conditions.append(f"{quote_ident(target.name)} {operator} ?")
            params.append(number)
            described.append(f"{target.name} {operator} {fmt(number)}")
    if described:
        describe += " where " + " and ".join(described)

    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    if group is None:
        sql = f"SELECT {expression} FROM csv{where}"
    else:
        key = quote_ident(group.name)
        sql = (
            f"SELECT {key}, {expression} AS value FROM csv{where} "
            f"GROUP BY {key} ORDER BY value DESC, {key} LIMIT {MAX_GROUPS}"
        )
    return Query(sql, params, describe, group)


def _phrases(question: str, names: list[str]) -> list[str]:
    """Runs of 1-3 words of the question that could be a value in the table: not made only of
    column names, numbers and the words that ask for an aggregate."""
    words = re.findall(r"[\w'&.-]+", question.lower())
    asking = {w for _, _, keys in _AGGREGATES for key in keys for w in key.split()}
    ignore = asking | {w for name in names for w in name_words(name).split()}
    ignore |= {"what", "which", "the", "is", "are", "was", "of", "in", "by", "per", "for", "a"}
    phrases = set()
    for size in (1, 2, 3):
        for start in range(len(words) - size + 1):
            run = words[start : start + size]
            if not all(w in ignore or w.replace(".", "").isdigit() for w in run):
                phrases.add(" ".join(run))
    return sorted(phrases)


def _columns(con: duckdb.DuckDBPyConnection, question: str) -> list[Column]:
    """The table's columns; a text column carries the values the question names, found in one
    scan (none when the question names nothing that could be a value)."""
    described = [
        (str(name), str(type_)) for name, type_, *_ in con.execute("DESCRIBE csv").fetchall()
    ]
    texts = [name for name, type_ in described if not is_numeric(type_)]
    phrases = _phrases(question, [name for name, _ in described])
    found: dict[str, tuple[str, ...]] = {}
    if texts and phrases:
        as_text = [f"CAST({quote_ident(name)} AS VARCHAR)" for name in texts]
        matches = [
            f"list(DISTINCT {t}) FILTER (WHERE list_contains(?, lower({t})))" for t in as_text
        ]
        row = con.execute(
            f"SELECT {', '.join(matches)} FROM csv", [phrases] * len(texts)
        ).fetchone()
        for name, values in zip(texts, row or (), strict=False):
            # Longest first, so "North East" wins over "North".
            found[name] = tuple(sorted(values or (), key=len, reverse=True))
    return [Column(name, is_numeric(type_), found.get(name, ())) for name, type_ in described]


def compute(path: Path, question: str) -> Computed | None:
    """Run the question's query over the whole file; None if it asks for no computation."""

    def run(con: duckdb.DuckDBPyConnection) -> Computed | None:
        timer = threading.Timer(QUERY_SECONDS, con.interrupt)
        timer.start()
        try:
            query = plan(question, _columns(con, question))
            if query is None:
                return None
            rows = con.execute(query.sql, query.params).fetchall()
        except duckdb.InterruptException as exc:
            raise DocumentError("The table query took too long") from exc
        finally:
            timer.cancel()
        return Computed(query, rows) if rows else None

    return query_csv(path, run)[0]
