"""CSV files with DuckDB: dialect, header, quoting and types sniffed, a one-pass profile in SQL.

The file is never loaded into Python: DuckDB scans it, so the figures the model sees (row count,
sums, means, min/max) are exact, even for millions of rows. Text is read as UTF-8 (a BOM is
fine) and, failing that, as Latin-1.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from doclane.documents.model import Document, ReportProgress, ShouldStop
from doclane.documents.spreadsheet import as_csv
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind

T = TypeVar("T")

SAMPLE_ROWS = 5
TOP_VALUES = 3
ENCODINGS = ("utf-8", "latin-1")
_NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.startswith(_NUMERIC_TYPES)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def query_csv(path: Path, work: Callable[[duckdb.DuckDBPyConnection], T]) -> tuple[T, str]:
    """Run ``work`` on a connection where the view ``csv`` is the file; return its result and
    the encoding that read the file. An undecodable file is read again as Latin-1."""
    path = as_csv(path)  # a spreadsheet is read as the CSV of its first sheet
    error: duckdb.Error | None = None
    for encoding in ENCODINGS:
        con = duckdb.connect()
        try:
            # A view cannot take a prepared parameter, so the path is a quoted literal.
            con.execute(
                "CREATE VIEW csv AS SELECT * FROM "
                f"read_csv({quote_literal(str(path))}, encoding = '{encoding}')"
            )
            return work(con), encoding
        except duckdb.InvalidInputException as exc:  # bad bytes for the encoding, or bad CSV
            error = exc
        except duckdb.Error as exc:
            raise DocumentError("The CSV file could not be read") from exc
        finally:
            con.close()
    raise DocumentError("The CSV file could not be parsed") from error


def fmt(value: Any) -> str:
    """A figure as the answer shows it: exact (to 6 decimals), with thousands separators."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        rounded = round(float(value), 6)
        return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:,}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _profile(
    con: duckdb.DuckDBPyConnection, progress: ReportProgress
) -> tuple[list[tuple[str, str]], tuple[Any, ...], list[tuple[Any, ...]]]:
    """Columns, one row of aggregates over every row (one scan), and the first rows."""
    columns = [(str(row[0]), str(row[1])) for row in con.execute("DESCRIBE csv").fetchall()]
    progress(1, 3, "Profiling columns")
    aggregates = ["count(*)"]
    for name, type_ in columns:
        col = quote_ident(name)
        aggregates += [
            f"count({col})",
            f"approx_count_distinct({col})",
            f"min({col})",
            f"max({col})",
        ]
        if is_numeric(type_):
            aggregates += [f"avg({col})", f"sum({col})"]
        else:
            aggregates.append(f"approx_top_k({col}, {TOP_VALUES})")
    stats = con.execute(f"SELECT {', '.join(aggregates)} FROM csv").fetchone()
    if stats is None:
        raise DocumentError("The CSV file could not be profiled")
    progress(2, 3, "Reading the first rows")
    head = con.execute(f"SELECT * FROM csv LIMIT {SAMPLE_ROWS}").fetchall()
    return columns, stats, head


def extract_csv(path: Path, progress: ReportProgress, should_stop: ShouldStop) -> Document:
    progress(0, 3, "Reading the table")
    (columns, stats, head), encoding = query_csv(path, lambda con: _profile(con, progress))

    row_count = int(stats[0])
    lines = [f"CSV table: {row_count:,} rows, {len(columns)} columns."]
    if encoding != "utf-8":
        lines[0] += f" (Text encoding: {encoding}.)"
    lines.append("Columns (exact figures computed over every row):")
    values = iter(stats[1:])
    for name, type_ in columns:
        non_null, distinct, low, high = (next(values) for _ in range(4))
        line = (
            f"- {name} ({type_}): {row_count - non_null:,} empty, "
            f"~{distinct:,} distinct, min {fmt(low)}, max {fmt(high)}"
        )
        if is_numeric(type_):
            mean, total = next(values), next(values)
            line += f", mean {fmt(mean)}, sum {fmt(total)}"
        else:
            top = [fmt(v) for v in next(values) or () if v is not None]
            if top:
                line += f", most common: {', '.join(top)}"
        lines.append(line)
    lines.append(f"First {min(SAMPLE_ROWS, row_count)} rows:")
    lines.append(" | ".join(name for name, _ in columns))
    lines += [" | ".join(fmt(value) for value in row) for row in head]
    progress(3, 3, "Table profiled")
    return Document(DocumentKind.CSV, "\n".join(lines))
