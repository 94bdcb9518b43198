"""CSV files with DuckDB: dialect and types sniffed, a one-pass profile computed in SQL.

The file is never loaded into Python: DuckDB scans it, so the figures the model sees (row count,
sums, means, min/max) are exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from doclane.documents.model import Document, ReportProgress, ShouldStop
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind

SAMPLE_ROWS = 5
NUMERIC_TYPES = (
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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_csv(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Create the view ``csv`` over the file; return the encoding that read it."""
    last_error: Exception | None = None
    for encoding in ("utf-8", "latin-1"):
        try:
            # A view cannot take a prepared parameter, so the path is a quoted literal.
            con.execute(
                f"CREATE OR REPLACE VIEW csv AS SELECT * FROM "
                f"read_csv({quote_literal(str(path))}, encoding = '{encoding}')"
            )
            con.execute("SELECT count(*) FROM csv").fetchone()
            return encoding
        except duckdb.Error as exc:
            last_error = exc
    raise DocumentError("The CSV file could not be parsed") from last_error


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def extract_csv(path: Path, progress: ReportProgress, should_stop: ShouldStop) -> Document:
    con = duckdb.connect()
    try:
        progress(0, 3, "Reading the table")
        encoding = open_csv(con, path)
        columns: list[tuple[str, str]] = [
            (str(row[0]), str(row[1])) for row in con.execute("DESCRIBE csv").fetchall()
        ]
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
            if type_.startswith(NUMERIC_TYPES):
                aggregates += [f"avg({col})", f"sum({col})"]
        stats = con.execute(f"SELECT {', '.join(aggregates)} FROM csv").fetchone()
        if stats is None:
            raise DocumentError("The CSV file could not be profiled")
        progress(2, 3, "Reading the first rows")
        head = con.execute(f"SELECT * FROM csv LIMIT {SAMPLE_ROWS}").fetchall()
    except duckdb.Error as exc:
        raise DocumentError("The CSV file could not be read") from exc
    finally:
        con.close()

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
            f"~{distinct:,} distinct, min {_fmt(low)}, max {_fmt(high)}"
        )
        if type_.startswith(NUMERIC_TYPES):
            mean, total = next(values), next(values)
            line += f", mean {_fmt(mean)}, sum {_fmt(total)}"
        lines.append(line)
    lines.append(f"First {min(SAMPLE_ROWS, row_count)} rows:")
    lines.append(" | ".join(name for name, _ in columns))
    lines += [" | ".join(_fmt(value) for value in row) for row in head]
    progress(3, 3, "Table profiled")
    return Document(DocumentKind.CSV, "\n".join(lines))
