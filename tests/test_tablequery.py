"""Questions about a CSV answered by SQL over every row: exact figures, never guesses."""

from __future__ import annotations

import datetime
import random
import zipfile
from pathlib import Path

import pytest
import xlsxwriter

from doclane.documents import extract
from doclane.documents.tablequery import Column, compute, fmt, plan
from doclane.errors import DocumentError
from doclane.jobs import DocumentKind
from tests.documents import inspect_upload

Sales = tuple[Path, list[tuple[str, str, int, float]]]


@pytest.fixture
def sales(tmp_path: Path) -> Sales:
    """5,000 sales with known aggregates; semicolons, quoted fields, a zip-code-like column."""
    rng = random.Random(3)
    regions = ["North", "South", "East", "North East"]
    rows = [
        (
            f"{rng.randint(0, 99999):05d}",
            rng.choice(regions),
            rng.randint(1, 9),
            round(rng.uniform(1, 500), 2),
        )
        for _ in range(5000)
    ]
    lines = ["zip;region;units;price"] + [f'{z};"{r}";{u};{p}' for z, r, u, p in rows]
    path = tmp_path / "sales.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, rows


def answer(path: Path, question: str) -> str:
    computed = compute(path, question)
    assert computed is not None, question
    return computed.markdown()


def test_counts_sums_averages_extremes(
    sales: Sales,
) -> None:
    path, rows = sales
    assert answer(path, "How many rows are there?") == f"**number of rows: {len(rows):,}**"
    total_units = sum(u for _, _, u, _ in rows)
    assert answer(path, "How many units were sold?") == f"**total units: {total_units:,}**"
    assert fmt(sum(p for *_, p in rows)) in answer(path, "What is the total price?")
    mean = sum(p for *_, p in rows) / len(rows)
    assert fmt(mean) in answer(path, "What is the average price?")
    assert fmt(max(p for *_, p in rows)) in answer(path, "What is the highest price?")
    assert fmt(min(p for *_, p in rows)) in answer(path, "Lowest price?")


def test_filters_and_groups(sales: Sales) -> None:
    path, rows = sales
    north_east = sum(1 for _, r, _, _ in rows if r == "North East")
    text = answer(path, "How many sales were in North East?")
    assert text == f"**number of rows where region = North East: {north_east:,}**"
    over = sum(1 for *_, p in rows if p > 250)
    assert f": {over:,}**" in answer(path, "How many sales have a price over 250?")
    table = answer(path, "Total units by region")
    for region in {"North", "South", "East", "North East"}:
        units = sum(u for _, r, u, _ in rows if r == region)
        assert f"| {region} | {units:,} |" in table


def test_text_stays_text(sales: Sales) -> None:
    path, _ = sales
    facts = extract(path, DocumentKind.CSV, lambda *_: None, lambda: False).facts
    assert "zip (VARCHAR)" in facts and "units (BIGINT)" in facts
    # A zip code is not a number to add up: with two numeric columns and none named, no guess.
    assert compute(path, "What is the total?") is None
    assert compute(path, "Summarise this table.") is None


def test_plan_builds_parameterised_sql() -> None:
    columns = [Column("city", False, ("Paris'; DROP TABLE x; --",)), Column("amount", True)]
    query = plan("total amount in paris'; drop table x; --", columns)
    assert query is not None
    assert query.sql == 'SELECT sum("amount") FROM csv WHERE "city" = ?'
    assert query.params == ["Paris'; DROP TABLE x; --"]


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("over 1e308", 1e308),
        ("over 1,250,000", 1_250_000.0),
        ("at least 2.5E3", 2_500.0),
        ("under -2.5e-3", -0.0025),
        ("below .5", 0.5),
        ("over 1,000.50.", 1_000.5),
    ],
)
def test_numbers_are_read_whole(said: str, number: float) -> None:
    query = plan(f"How many rows have a price {said}", [Column("price", True)])
    assert query is not None and query.params == [number]


@pytest.mark.parametrize(
    "said", ["over 1e309", "under -1e400", "over 1,5", "over 10k", "over 1.2.3"]
)
def test_a_number_that_cannot_be_read_is_no_answer(said: str) -> None:
    """Not a filter on infinity, nor a figure that ignores the condition: no answer at all."""
    assert plan(f"How many rows have a price {said}?", [Column("price", True)]) is None


def test_huge_numbers_over_the_file(sales: Sales) -> None:
    path, _ = sales
    assert answer(path, "How many sales have a price over 1e308?") == (
        "**number of rows where price > 1e+308: 0**"
    )
    # No figure for a number past infinity: a note that names the column, and no number.
    computed = compute(path, "How many sales have a price over 1e309?")
    assert computed is not None and not computed.has_figures
    assert computed.markdown() == (
        "No figure was computed for this question; it mentions the column price."
    )


def test_a_spreadsheet_is_read_as_its_first_sheet(tmp_path: Path) -> None:
    path = tmp_path / "sales.xlsx"
    with xlsxwriter.Workbook(str(path)) as workbook:
        sheet = workbook.add_worksheet("Sales")
        sheet.write_row(0, 0, ["day", "region", "units"])
        for row in range(1, 101):
            sheet.write_datetime(
                row,
                0,
                datetime.datetime(2025, 1, 1) + datetime.timedelta(row),
                workbook.add_format({"num_format": "yyyy-mm-dd"}),
            )
            sheet.write_row(row, 1, ["North" if row % 2 else "South", row])
        workbook.add_worksheet("Notes").write(0, 0, "ignored")
    assert inspect_upload(path) is DocumentKind.CSV
    facts = extract(path, DocumentKind.CSV, lambda *_: None, lambda: False).facts
    assert "100 rows, 3 columns" in facts and "units (BIGINT)" in facts
    assert answer(path, "What is the total units in North?") == (
        f"**total units where region = North: {sum(range(1, 101, 2)):,}**"
    )
    zip_but_not_a_sheet = tmp_path / "a.xlsx"
    with zipfile.ZipFile(zip_but_not_a_sheet, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="not a spreadsheet"):
        inspect_upload(zip_but_not_a_sheet)
