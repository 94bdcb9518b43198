"""An ``Ask`` as one SQL query over the view ``csv``, and what it computes in words.

Every query is a single read-only SELECT (a WITH … SELECT at most) that returns few rows:
identifiers come only from the table's own schema, quoted; every value the question supplies
is a bound parameter; row lists end in a LIMIT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doclane.documents.tableask import Ask
from doclane.documents.tablecolumns import Column
from doclane.documents.tableconditions import Condition
from doclane.documents.tabular import quote_ident

MAX_GROUPS = 50  # rows of a per-group table
MAX_TIES = 5  # rows that share the highest value, shown
MAX_ROWS = 10  # rows a lookup shows

_LABELS = {
    "avg": "average",
    "sum": "total",
    "min": "lowest",
    "max": "highest",
    "median": "median",
    "count": "number of rows",
    "distinct": "number of distinct",
}


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    params: list[Any]
    describe: str  # what was computed, in words
    ask: Ask


def _where(conditions: list[Condition]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        clause, values = condition.sql()
        clauses.append(clause)
        params += values
    return clauses, params


def _aggregate(function: str, measure: Column | None) -> tuple[str, str]:
    """The SQL expression and its words: ("avg("price")", "average price")."""
    if function == "count" or measure is None:
        return "count(*)", _LABELS["count"]
    name = quote_ident(measure.name)
    if function == "distinct":
        return f"count(DISTINCT {name})", f"{_LABELS['distinct']} {measure.name}"
    return f"{function}({name})", f"{_LABELS[function]} {measure.name}"


def build(ask: Ask) -> Query:
    clauses, params = _where(ask.conditions)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    described = " and ".join(c.describe() for c in ask.conditions)
    suffix = f" where {described}" if described else ""
    direction = "DESC" if ask.descending else "ASC"

    if ask.kind == "figure":
        expression, label = _aggregate(ask.function, ask.measure)
        if ask.group is None:
            return Query(f"SELECT {expression} FROM csv{where}", params, label + suffix, ask)
        key = ask.group.sql()
        sql = (
            f"SELECT {key}, {expression} AS value, count(*) OVER () FROM csv{where} "
            f"GROUP BY {key} ORDER BY value DESC NULLS LAST, {key} LIMIT {MAX_GROUPS}"
        )
        return Query(sql, params, label + suffix, ask)

    if ask.kind == "rows":
        assert ask.measure is not None
        measure = quote_ident(ask.measure.name)
        selected = ", ".join([*(quote_ident(c.name) for c in ask.shown + ask.context), measure])
        extreme = "highest" if ask.descending else "lowest"
        if ask.limit == 1:
            best = "max" if ask.descending else "min"
            sql = (
                f"SELECT {selected}, count(*) OVER () FROM csv WHERE "
                + " AND ".join(
                    [*clauses, f"{measure} = (SELECT {best}({measure}) FROM csv{where})"]
                )
                + f" LIMIT {MAX_TIES}"
            )
            return Query(sql, params + params, f"{extreme} {ask.measure.name}{suffix}", ask)
        sql = (
            f"SELECT {selected} FROM csv WHERE "
            f"{' AND '.join([*clauses, f'{measure} IS NOT NULL'])} "
            f"ORDER BY {measure} {direction} LIMIT {ask.limit}"
        )
        return Query(sql, params, f"{ask.limit} {extreme} {ask.measure.name}{suffix}", ask)

    if ask.kind == "ranked":
        assert ask.group is not None
        expression, label = _aggregate(ask.function, ask.measure)
        key = ask.group.sql()
        grouped = (
            f"WITH g AS (SELECT {key} AS key, {expression} AS value FROM csv WHERE "
            f"{' AND '.join([*clauses, f'{key} IS NOT NULL'])} GROUP BY {key})"
        )
        if ask.function == "count":
            describe = f"{'most' if ask.descending else 'least'} common {ask.group.name}"
        else:
            extreme = "highest" if ask.descending else "lowest"
            describe = f"{ask.group.name} with the {extreme} {label}"
        if ask.limit == 1:
            best = "max" if ask.descending else "min"
            sql = (
                f"{grouped} SELECT key, value, count(*) OVER () FROM g "
                f"WHERE value = (SELECT {best}(value) FROM g) ORDER BY key LIMIT {MAX_TIES}"
            )
        else:
            order = f"ORDER BY value {direction}, key LIMIT {ask.limit}"
            sql = f"{grouped} SELECT key, value FROM g {order}"
            first = "top" if ask.descending else "bottom"
            describe = f"{first} {ask.limit} {ask.group.name} by {label}"
        return Query(sql, params, describe + suffix, ask)

    if ask.kind == "share":
        kept = " AND ".join(clauses)
        if ask.measure is not None:
            total = f"sum({quote_ident(ask.measure.name)})"
            describe = f"share of total {ask.measure.name}"
        else:
            total, describe = "count(*)", "share of rows"
        sql = f"SELECT {total} FILTER (WHERE {kept}), {total} FROM csv"
        return Query(sql, params, describe + suffix, ask)

    # A lookup: the shown columns of the rows the conditions keep.
    selected = ", ".join(quote_ident(c.name) for c in ask.shown + ask.context)
    sql = f"SELECT {selected}, count(*) OVER () FROM csv{where} LIMIT {MAX_ROWS}"
    return Query(sql, params, ask.shown[0].name + suffix, ask)
