"""CSV files with DuckDB: dialect, header, quoting and types sniffed, a one-pass profile in SQL.

The file is never loaded into Python: DuckDB scans it, so the figures the model sees (row count,
sums, means, min/max) are exact, even for millions of rows. Text is read as UTF-8 (a BOM is
fine) and, failing that, as Latin-1.

The file is untrusted, so DuckDB runs locked down (see ``_connect``), and only the first
``Limits.max_table_columns`` columns are profiled: the cost of a profile grows faster than the
number of its columns, and a 30 KB file can hold thousands of them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from doclane.documents.model import DEFAULT_LIMITS, Document, Limits, ReportProgress, ShouldStop
from doclane.documents.spreadsheet import as_csv
from doclane.errors import DocumentError
from doclane.jobs.model import DocumentKind

T = TypeVar("T")

SAMPLE_ROWS = 5
TOP_VALUES = 3
LISTED_NAMES = 50  # of the columns beyond the cap, how many the profile names
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


def column_types(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Every column of the view ``csv``, in file order: (name, DuckDB type). Read from the
    catalog, where the view keeps what it was bound to: DESCRIBE would sniff the file again."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE table_name = 'csv' ORDER BY column_index"
    ).fetchall()
    return [(str(name), str(type_)) for name, type_ in rows]


def _connect(path: Path, limits: Limits) -> duckdb.DuckDBPyConnection:
    """A connection that can read this one file and nothing else: no other file, no network,
    no extensions, one thread, bounded memory, and settings that cannot be changed back."""
    con = duckdb.connect(
        config={
            "threads": 1,
            "memory_limit": f"{limits.table_memory_mb}MiB",
            # No spilling. External access off does not cover it: DuckDB would still write to
            # ".tmp" in the working directory, up to 90% of the disk, and a killed reader would
            # leave the files behind. What does not fit in memory fails as a DocumentError.
            "temp_directory": "",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,  # a Python variable is not a table
        }
    )
    try:
        # These three can only be set once connected; the lock makes every setting final.
        con.execute(f"SET allowed_paths = [{quote_literal(str(path))}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _create_view(con: duckdb.DuckDBPyConnection, path: Path, encoding: str) -> None:
    try:
        # A view cannot take a prepared parameter, so the path is a quoted literal.
        con.execute(
            "CREATE VIEW csv AS SELECT * FROM "
            f"read_csv({quote_literal(str(path))}, encoding = '{encoding}')"
        )
    except duckdb.OutOfMemoryException as exc:
        # Sniffing holds every column at once (~60 KiB each in DuckDB 2.0): at 512 MiB that
        # stops near 8,500 columns, whatever the cap on profiled columns.
        raise DocumentError(
            "The table has too many columns to read within the memory limit"
        ) from exc


def query_csv(
    path: Path,
    work: Callable[[duckdb.DuckDBPyConnection], T],
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[T, str]:
    """Run ``work`` on a locked-down connection where the view ``csv`` is the file; return its
    result and the encoding that read the file. An undecodable file is read again as Latin-1."""
    path = as_csv(path, limits).resolve()  # a spreadsheet is read as the CSV of its first sheet
    error: duckdb.Error | None = None
    for encoding in ENCODINGS:
        con = _connect(path, limits)
        try:
            _create_view(con, path, encoding)
            return work(con), encoding
        except duckdb.InvalidInputException as exc:  # bad bytes for the encoding, or bad CSV
            error = exc
        except duckdb.OutOfMemoryException as exc:
            raise DocumentError("The table needs more memory than doclane allows") from exc
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
    if isinstance(value, float) and abs(value) >= 1e16:  # past exact integers: "1e+308"
        return repr(value)
    if isinstance(value, float | Decimal):
        rounded = round(float(value), 6)
        return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:,}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _profile(
    con: duckdb.DuckDBPyConnection, progress: ReportProgress, max_columns: int
) -> tuple[list[tuple[str, str]], list[str], tuple[Any, ...], list[tuple[Any, ...]]]:
    """The profiled columns, the names of the rest, one row of aggregates over every row (one
    scan), and the first rows."""
    described = column_types(con)
    columns, rest = described[:max_columns], [name for name, _ in described[max_columns:]]
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
    selected = ", ".join(quote_ident(name) for name, _ in columns)
    head = con.execute(f"SELECT {selected} FROM csv LIMIT {SAMPLE_ROWS}").fetchall()
    return columns, rest, stats, head


def _more_columns(names: list[str]) -> str:
    """The line that names (some of) the columns beyond the cap."""
    listed = [fmt(name) for name in names[:LISTED_NAMES]]
    if len(names) > LISTED_NAMES:
        listed.append("…")
    return f"… and {len(names):,} more columns: {', '.join(listed)} (not profiled)"


def extract_csv(
    path: Path,
    progress: ReportProgress,
    should_stop: ShouldStop,
    limits: Limits = DEFAULT_LIMITS,
) -> Document:
    progress(0, 3, "Reading the table")
    (columns, rest, stats, head), encoding = query_csv(
        path, lambda con: _profile(con, progress, limits.max_table_columns), limits
    )

    row_count = int(stats[0])
    lines = [f"CSV table: {row_count:,} rows, {len(columns) + len(rest):,} columns."]
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
    if rest:
        lines.append(_more_columns(rest))
    lines.append(f"First {min(SAMPLE_ROWS, row_count)} rows:")
    lines.append(" | ".join(name for name, _ in columns))
    lines += [" | ".join(fmt(value) for value in row) for row in head]
    progress(3, 3, "Table profiled")
    return Document(DocumentKind.CSV, "\n".join(lines))
