"""Hostile tables: DuckDB reads the one file and nothing else, names never become SQL, and a
table with thousands of columns is profiled and queried in time that grows with the cap."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import duckdb
import pytest

from doclane.documents import DEFAULT_LIMITS, Limits, extract
from doclane.documents.tablequery import compute
from doclane.documents.tabular import query_csv, quote_ident
from doclane.errors import DocumentError
from doclane.jobs import DocumentKind


def no_progress(done: int, total: int, stage: str) -> None:
    pass


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "small.csv", [["region", "units"], ["North", 3], ["South", 4]])


def escapes(tmp_path: Path) -> dict[str, tuple[str, type[duckdb.Error], str]]:
    """Statements that would leave the file behind: (SQL, what DuckDB raises, message)."""
    denied, locked = duckdb.PermissionException, duckdb.InvalidInputException
    return {
        "read another file": ("SELECT * FROM read_csv('/etc/passwd')", denied, "disabled"),
        "read text": ("SELECT * FROM read_text('/etc/passwd')", denied, "disabled"),
        "list a directory": ("SELECT * FROM glob('/etc/*')", denied, "disabled"),
        "fetch a URL": ("SELECT * FROM read_csv('http://127.0.0.1:9/a.csv')", denied, "disabled"),
        "write a file": (f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'", denied, "disabled"),
        "attach a database": (f"ATTACH '{tmp_path / 'other.db'}' AS other", denied, "disabled"),
        "install an extension": ("INSTALL httpfs", denied, "disabled"),
        "load an extension": ("LOAD httpfs", denied, "disabled"),
        "turn access back on": ("SET enable_external_access = true", locked, "locked"),
        "unlock": ("SET lock_configuration = false", locked, "locked"),
        "allow more paths": ("SET allowed_paths = ['/etc/passwd']", locked, "locked"),
        "more memory": ("SET memory_limit = '64GB'", locked, "locked"),
        "more threads": ("SET threads = 8", locked, "locked"),
        "spill somewhere": (f"SET temp_directory = '{tmp_path}'", locked, "locked"),
    }


def test_duckdb_can_read_the_file_and_nothing_else(tmp_path: Path, small: Path) -> None:
    attempts = escapes(tmp_path)

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, duckdb.Error | None]:
        raised: dict[str, duckdb.Error | None] = {}
        for name, (sql, _, _) in attempts.items():
            try:
                con.execute(sql).fetchall()
                raised[name] = None
            except duckdb.Error as exc:
                raised[name] = exc
        # Every attempt to loosen the lock came first: the file is still readable, no other.
        assert con.execute("SELECT sum(units) FROM csv").fetchone() == (7,)
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
        return raised

    raised, _ = query_csv(small, work)
    for name, (_, kind, message) in attempts.items():
        assert isinstance(raised[name], kind), (name, raised[name])
        assert message in str(raised[name]), name
    assert sorted(os.listdir(tmp_path)) == ["small.csv"]  # nothing written, attached or spilled


@pytest.mark.parametrize("statement", ["read another file", "write a file", "allow more paths"])
def test_an_escape_fails_the_read(tmp_path: Path, small: Path, statement: str) -> None:
    sql, kind, _ = escapes(tmp_path)[statement]
    with pytest.raises(DocumentError) as caught:
        query_csv(small, lambda con: con.execute(sql).fetchall())
    assert isinstance(caught.value.__cause__, kind)


def test_duckdb_runs_within_the_limits(small: Path) -> None:
    def settings(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        rows = con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'memory_limit',"
            " 'temp_directory', 'enable_external_access', 'lock_configuration',"
            " 'autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
        return dict(rows)

    assert query_csv(small, settings, Limits(table_memory_mb=100))[0] == {
        "threads": "1",
        "memory_limit": "100.0 MiB",
        "temp_directory": "",
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }


def test_what_does_not_fit_in_memory_fails_without_spilling(
    tmp_path: Path, small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where DuckDB spills by default (".tmp")
    many_groups = (
        "SELECT md5(x::VARCHAR) AS m, count(*) FROM range(2000000) t(x) GROUP BY m ORDER BY m"
    )
    with pytest.raises(DocumentError, match="more memory"):
        query_csv(
            small, lambda con: con.execute(many_groups).fetchall(), Limits(table_memory_mb=32)
        )
    assert sorted(os.listdir(tmp_path)) == ["small.csv"]


# Names and values written to break out of the SQL they end up in.
REGION = "region'; DROP TABLE csv; --"
UNITS = "units\"); COPY (SELECT 1) TO '/tmp/pwned.csv'; --"
ROWS = [
    [REGION, UNITS, "name", "value"],
    ["O'Brien", 5, "x' OR '1'='1", '"; DROP VIEW csv; --'],
    ["O'Brien", 7, "a", "b"],
    ["Smith); SELECT 1; --", 11, "a", "b"],
    ['North "East"', 13, "a", "b"],
]


def test_quotes_and_sql_in_a_table_stay_data(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "injection.csv", ROWS)
    facts = extract(path, DocumentKind.CSV, no_progress, lambda: False).facts
    assert f"- {REGION} (VARCHAR)" in facts and f"- {UNITS} (BIGINT)" in facts
    assert "x' OR '1'='1" in facts and "Smith); SELECT 1; --" in facts

    # UNITS in words is "units copy select 1 to tmp pwned csv": a question can name it.
    total = compute(path, "What is the total units copy select 1 to tmp pwned csv?")
    assert total is not None and total.markdown() == f"**total {UNITS}: 36**"
    filtered = compute(path, "Total units copy select 1 to tmp pwned csv in O'Brien")
    assert filtered is not None
    assert filtered.markdown() == f"**total {UNITS} where {REGION} = O'Brien: 12**"
    assert filtered.query.sql == (
        f"SELECT sum({quote_ident(UNITS)}) FROM csv WHERE {quote_ident(REGION)} = ?"
    )
    assert filtered.query.params == ["O'Brien"]
    grouped = compute(path, "How many rows by region drop table csv?")
    assert grouped is not None
    for region, count in [("O'Brien", 2), ("Smith); SELECT 1; --", 1), ('North "East"', 1)]:
        assert f"| {region} | {count} |" in grouped.markdown()
    assert not Path("/tmp/pwned.csv").exists()
    assert compute(path, "How many rows are there?") is not None  # the view is still there


def wide_csv(path: Path, columns: int, rows: int = 3) -> Path:
    """Odd columns are text ("North"/"South"), even ones numbers: amount_i of row r is r+i."""
    names = [f"region_{i}" if i % 2 else f"amount_{i}" for i in range(columns)]
    body = [
        [("North" if r % 2 else "South") if i % 2 else r + i for i in range(columns)]
        for r in range(rows)
    ]
    return write_csv(path, [names, *body])


def test_only_the_first_columns_are_profiled(tmp_path: Path) -> None:
    path = wide_csv(tmp_path / "wide.csv", 120)
    facts = extract(
        path, DocumentKind.CSV, no_progress, lambda: False, Limits(max_table_columns=10)
    ).facts
    lines = facts.splitlines()
    assert lines[0] == "CSV table: 3 rows, 120 columns."
    profiled = [line for line in lines if line.startswith("- ")]
    assert [line.split(" (")[0] for line in profiled] == [
        f"- {'region' if i % 2 else 'amount'}_{i}" for i in range(10)
    ]
    more = [line for line in lines if line.startswith("… and")]
    listed = ", ".join(f"{'region' if i % 2 else 'amount'}_{i}" for i in range(10, 60))
    assert more == [f"… and 110 more columns: {listed}, … (not profiled)"]
    assert lines[-4] == " | ".join(f"{'region' if i % 2 else 'amount'}_{i}" for i in range(10))


def test_a_question_beyond_the_cap(tmp_path: Path) -> None:
    path = wide_csv(tmp_path / "wide.csv", 120)
    limits = Limits(max_table_columns=10)

    def answer(question: str) -> str | None:
        computed = compute(path, question, limits)
        return computed.markdown() if computed else None

    # A column the question names is looked at even beyond the cap, and only that one.
    assert answer("What is the total amount 100?") == "**total amount_100: 303**"
    assert answer("How many rows have amount 100 over 100?") == (
        "**number of rows where amount_100 > 100: 2**"
    )
    assert answer("Total amount 100 by region 101") == (
        "| region_101 | total amount_100 |\n|---|---|\n| South | 202 |\n| North | 101 |"
    )
    assert answer("What is the average of the profit?") is None  # no such column: no guess


WIDE = 10_000
# DuckDB's sniffer holds every column at once, ~60 KiB each: 10,000 columns need more than
# the default 512 MiB (see the next test), whatever the cap on profiled columns.
WIDE_LIMITS = Limits(table_memory_mb=1024)


@pytest.fixture(scope="module")
def very_wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wide_csv(tmp_path_factory.mktemp("wide") / "wide.csv", WIDE)


def test_ten_thousand_columns_are_profiled_up_to_the_cap(very_wide: Path) -> None:
    facts = extract(very_wide, DocumentKind.CSV, no_progress, lambda: False, WIDE_LIMITS).facts
    assert facts.startswith("CSV table: 3 rows, 10,000 columns.")
    assert sum(line.startswith("- ") for line in facts.splitlines()) == 200
    assert "\n… and 9,800 more columns: amount_200, region_201, " in facts
    assert facts.count("(not profiled)") == 1
    assert len(facts) < 40_000  # 9,800 names are counted, not listed


def test_ten_thousand_columns_answer_within_and_beyond_the_cap(very_wide: Path) -> None:
    def total(question: str) -> str | None:
        computed = compute(very_wide, question, WIDE_LIMITS)
        return computed.markdown() if computed else None

    assert total("What is the total amount 4?") == "**total amount_4: 15**"  # 4 + 5 + 6
    assert total("What is the total amount 9998?") == "**total amount_9998: 29,997**"


def test_too_many_columns_for_the_memory_limit_fail_clearly(very_wide: Path) -> None:
    assert DEFAULT_LIMITS.table_memory_mb == 512
    with pytest.raises(DocumentError, match="too many columns"):
        extract(very_wide, DocumentKind.CSV, no_progress, lambda: False)
