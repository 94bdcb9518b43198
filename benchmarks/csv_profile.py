"""CSV at scale: doclane's load + profile of a 2M-row, ~270 MB CSV against the same profile as
hand-written DuckDB SQL, and a question's computed answer against its hand-written query, in
the same run (goal: at most 1.2x the raw time).

    .venv/bin/python -m benchmarks.csv_profile [--rows 2000000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path

import duckdb

from benchmarks.report import write_section
from benchmarks.timing import best_times
from doclane.documents import extract
from doclane.documents.tablequery import compute
from doclane.jobs import DocumentKind

QUESTION = "What is the total units by region?"


def make_csv(path: Path, rows: int) -> None:
    duckdb.execute(
        f"""COPY (
            SELECT i AS order_id,
                   DATE '2024-01-01' + (i % 366)::INTEGER AS day,
                   ['North', 'South', 'East', 'West', 'North East'][1 + i % 5] AS region,
                   'product-' || (i % 97) AS product,
                   1 + (i * 7) % 9 AS units,
                   round(1 + (i * 37 % 100000) / 100.0, 2) AS price,
                   lpad(((i * 13) % 99999)::VARCHAR, 5, '0') AS zip,
                   'note ' || md5(i::VARCHAR) AS note
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')"""
    )


def raw_profile(path: Path) -> None:
    """The profile doclane computes, written by hand: schema, one aggregate scan, first rows."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW csv AS SELECT * FROM read_csv('{path}')")
    columns = con.execute("DESCRIBE csv").fetchall()
    parts = ["count(*)"]
    for name, type_, *_ in columns:
        parts += [
            f'count("{name}")',
            f'approx_count_distinct("{name}")',
            f'min("{name}")',
            f'max("{name}")',
        ]
        parts += (
            [f'avg("{name}")', f'sum("{name}")']
            if type_ in ("BIGINT", "DOUBLE")
            else [f'approx_top_k("{name}", 3)']
        )
    con.execute(f"SELECT {', '.join(parts)} FROM csv").fetchone()
    con.execute("SELECT * FROM csv LIMIT 5").fetchall()
    con.close()


def raw_question(path: Path) -> None:
    con = duckdb.connect()
    con.execute(
        f"SELECT region, sum(units) AS v FROM read_csv('{path}') GROUP BY region ORDER BY v DESC"
    ).fetchall()
    con.close()


def measure(rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sales.csv"
        make_csv(path, rows)
        size_mb = path.stat().st_size / 1e6
        times = best_times(
            3,
            {
                "profile": lambda: extract(path, DocumentKind.CSV, lambda *_: None, lambda: False),
                "raw profile": lambda: raw_profile(path),
                "answer": lambda: compute(path, QUESTION),
                "raw answer": lambda: raw_question(path),
            },
        )
    rows_text = [
        f"| {task} | {times[key]:.2f} | {times['raw ' + key]:.2f} | "
        f"{times[key] / times['raw ' + key]:.2f} |"
        for task, key in (("load + profile", "profile"), (f'answer "{QUESTION}"', "answer"))
    ]
    print("\n".join(rows_text))
    write_section(
        "csv",
        f"""## CSV at scale

`benchmarks/csv_profile.py`, {datetime.date.today()}, {os.cpu_count()} cores, DuckDB
{duckdb.__version__}: {rows:,} rows, {size_mb:.0f} MB, 8 columns, best of 3 runs taken in
turns. *doclane* is `extract()` (sniffing, schema, the one-scan profile, first rows) and
`compute()` (reading the question, looking for the values it names, the query); the baseline
is the same SQL written by hand. Ratio = doclane's seconds over raw DuckDB's (goal ≤ 1.2).

| task | doclane s | raw DuckDB s | ratio |
|---|---|---|---|
{chr(10).join(rows_text)}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    measure(parser.parse_args().rows)


if __name__ == "__main__":
    main()
