"""The CSV planner, question kind by question kind: real DuckDB over small CSVs written here, and
every expected figure computed independently in Python from the rows the test wrote."""

from __future__ import annotations

import csv
import datetime
import random
import re
import statistics
from collections import Counter
from pathlib import Path

import pytest

from doclane.documents.tablequery import Column, Computed, compute, fmt, plan

FIRMS = ["General Motors", "US Steel", "IBM", "Chrysler"]
YEARS = range(1935, 1955)

Firm = tuple[str, int, float, int]  # firm, year, invest, staff


def write(path: Path, header: list[str], rows: list[tuple[object, ...]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def firms(tmp_path: Path) -> tuple[Path, list[Firm]]:
    """80 rows: 4 firms x 20 years. Staff is 10..30, so 20 is both in the data and a bound."""
    rng = random.Random(7)
    rows = [
        (firm, year, round(rng.uniform(1, 1500), 2), rng.randint(10, 30))
        for firm in FIRMS
        for year in YEARS
    ]
    return write(tmp_path / "firms.csv", ["firm", "year", "invest", "staff"], rows), rows


Day = tuple[datetime.date, str, float, float]  # date, weather, temp_max, precipitation


@pytest.fixture
def days(tmp_path: Path) -> tuple[Path, list[Day]]:
    rng = random.Random(11)
    start = datetime.date(2012, 1, 1)
    rows = [
        (
            start + datetime.timedelta(i),
            rng.choices(["sun", "rain", "fog", "snow"], [6, 4, 2, 1])[0],
            round(rng.uniform(-5, 35), 1),
            round(rng.uniform(0, 30), 1),
        )
        for i in range(900)
    ]
    header = ["date", "weather", "temp_max", "precipitation"]
    return write(tmp_path / "days.csv", header, rows), rows


Car = tuple[str, str, str, str, int]  # make, fuel, doors, cylinders, price

CARS: list[Car] = [
    ("volvo", "gas", "four", "four", 12940),
    ("volvo", "diesel", "four", "six", 22470),
    ("toyota", "gas", "two", "four", 5348),
    ("toyota", "gas", "four", "four", 7898),
    ("toyota", "diesel", "four", "four", 7788),
    ("bmw", "gas", "two", "six", 41315),
    ("honda", "gas", "two", "four", 6479),
]


@pytest.fixture
def cars(tmp_path: Path) -> Path:
    return write(tmp_path / "cars.csv", ["make", "fuel", "doors", "cylinders", "price"], CARS)


def answer(path: Path, question: str) -> str:
    computed = compute(path, question)
    assert computed is not None and computed.has_figures, question
    return computed.markdown()


def test_figures_per_column(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    invest = [r[2] for r in rows]
    assert answer(path, "What is the average invest?") == (
        f"**average invest: {fmt(sum(invest) / len(invest))}**"
    )
    assert answer(path, "What is the total staff?") == (
        f"**total staff: {sum(r[3] for r in rows):,}**"
    )
    assert answer(path, "What is the median invest?") == (
        f"**median invest: {fmt(statistics.median(invest))}**"
    )
    assert answer(path, "How many rows are there?") == f"**number of rows: {len(rows)}**"
    assert answer(path, "How many different firms are there?") == (
        f"**number of distinct firm: {len(set(FIRMS))}**"
    )


def test_figures_per_group(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    table = answer(path, "What is the average invest by firm?")
    assert table.startswith("| firm | average invest |\n|---|---|\n")
    for firm in FIRMS:
        mean = statistics.fmean(r[2] for r in rows if r[0] == firm)
        assert f"| {firm} | {fmt(mean)} |" in table
    highest = answer(path, "What is the highest staff per firm?")
    for firm in FIRMS:
        assert f"| {firm} | {max(r[3] for r in rows if r[0] == firm)} |" in highest


def test_argmax_and_argmin_give_the_row(firms: tuple[Path, list[Firm]]) -> None:
    """The row's label and the value both: the question asked which firm, not how much."""
    path, rows = firms
    top = max(rows, key=lambda r: r[2])
    expected = f"**highest invest: {fmt(top[2])} (firm: {top[0]}, year: {top[1]})**"
    assert answer(path, "Which firm had the highest invest?") == expected
    assert answer(path, "What firm invested the most?") == expected
    ibm = min((r for r in rows if r[0] == "IBM"), key=lambda r: r[2])
    assert answer(path, "In which year was the invest of IBM lowest?") == (
        f"**lowest invest where firm = IBM: {fmt(ibm[2])} (year: {ibm[1]})**"
    )
    # A plain maximum names its row too, and a year is written as a year.
    assert answer(path, "What is the largest invest?") == expected
    assert "1,9" not in answer(path, "What was the smallest invest?")


def test_ties_are_all_named(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    best = max(r[3] for r in rows)
    tied = [r for r in rows if r[3] == best]
    text = answer(path, "Which firm had the most staff?")
    assert text.startswith(f"**highest staff: {best} (")
    named = re.findall(r"firm: ([\w ]+), year: (\d+)", text)
    assert len(named) == min(5, len(tied))
    assert {(firm, int(year)) for firm, year in named} <= {(r[0], r[1]) for r in tied}
    if len(tied) > 5:
        assert text.endswith(f"; and {len(tied) - 5} more rows)**")


def test_ranked_groups(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    totals = {f: sum(r[2] for r in rows if r[0] == f) for f in FIRMS}
    best = max(totals, key=lambda f: totals[f])
    assert answer(path, "Which firm had the highest total invest?") == (
        f"**firm with the highest total invest: {best} ({fmt(totals[best])})**"
    )
    means = {f: statistics.fmean(r[2] for r in rows if r[0] == f) for f in FIRMS}
    ranked = sorted(FIRMS, key=lambda f: -means[f])[:2]
    text = answer(path, "Top 2 firms by average invest")
    assert text == (
        "**top 2 firm by average invest:**\n\n| firm | average invest |\n|---|---|\n"
        + "\n".join(f"| {f} | {fmt(means[f])} |" for f in ranked)
    )


def test_ranked_by_year_and_counted_things(firms: tuple[Path, list[Firm]], cars: Path) -> None:
    path, rows = firms
    totals = {y: sum(r[2] for r in rows if r[1] == y) for y in YEARS}
    best = max(totals, key=lambda y: totals[y])
    assert answer(path, "Which year had the highest total invest?") == (
        f"**year with the highest total invest: {best} ({fmt(totals[best])})**"
    )
    makes = Counter(c[0] for c in CARS)
    assert answer(cars, "Which make has the most cars?") == (
        f"**most common make: toyota ({makes['toyota']} rows)**"
    )
    # One row per firm and year: "the most bonuses" counts something no column holds.
    computed = compute(path, "Which year has the most bonuses for IBM?")
    assert computed is not None and not computed.has_figures


def test_a_number_beside_a_column_is_its_value(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    for question in ("How many rows have a staff of 20?", "How many rows have staff 20?"):
        assert answer(path, question) == (
            f"**number of rows where staff = 20: {sum(r[3] == 20 for r in rows)}**"
        )


def test_top_n_rows(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    top = sorted(rows, key=lambda r: -r[2])[:3]
    assert answer(path, "What are the 3 largest invest values?") == (
        "**3 highest invest:**\n\n| firm | year | invest |\n|---|---|---|\n"
        + "\n".join(f"| {f} | {y} | {fmt(i)} |" for f, y, i, _ in top)
    )
    bottom = sorted(rows, key=lambda r: r[2])[:2]
    text = answer(path, "Which two firms had the lowest invest?")
    assert [line.split(" | ")[-1].rstrip(" |") for line in text.splitlines()[-2:]] == [
        fmt(r[2]) for r in bottom
    ]


def test_comparisons_keep_their_bounds(firms: tuple[Path, list[Firm]]) -> None:
    """over/under are strict, at least/at most/or more/or less include the bound."""
    path, rows = firms
    staff = [r[3] for r in rows]
    cases = {
        "How many rows have a staff over 20?": ("staff > 20", sum(s > 20 for s in staff)),
        "How many rows have a staff of at least 20?": ("staff >= 20", sum(s >= 20 for s in staff)),
        "How many rows have a staff under 20?": ("staff < 20", sum(s < 20 for s in staff)),
        "How many rows have a staff of at most 20?": ("staff <= 20", sum(s <= 20 for s in staff)),
        "How many rows have 20 or more staff?": ("staff >= 20", sum(s >= 20 for s in staff)),
        "How many rows have a staff between 15 and 20?": (
            "staff >= 15 and staff <= 20",
            sum(15 <= s <= 20 for s in staff),
        ),
    }
    assert sum(s == 20 for s in staff) > 0  # the bound is in the data: > and >= differ
    for question, (condition, count) in cases.items():
        assert answer(path, question) == f"**number of rows where {condition}: {count}**"
    invest = [r[2] for r in rows if r[3] > 25]
    assert answer(path, "What is the average invest when staff is above 25?") == (
        f"**average invest where staff > 25: {fmt(statistics.fmean(invest))}**"
    )


def test_years_on_an_integer_year_column(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms

    def total(keep: object) -> str:
        return fmt(sum(r[2] for r in rows if keep(r[1])))  # type: ignore[operator]

    assert answer(path, "What was the total invest in 1950?") == (
        f"**total invest where year = 1950: {total(lambda y: y == 1950)}**"
    )
    assert answer(path, "What was the total invest after 1950?") == (
        f"**total invest where year > 1950: {total(lambda y: y > 1950)}**"
    )
    assert answer(path, "What was the total invest since 1950?") == (
        f"**total invest where year >= 1950: {total(lambda y: y >= 1950)}**"
    )
    assert answer(path, "What was the total invest before 1940?") == (
        f"**total invest where year < 1940: {total(lambda y: y < 1940)}**"
    )
    assert answer(path, "What was the total invest between 1940 and 1945?") == (
        f"**total invest where year >= 1940 and year <= 1945: "
        f"{total(lambda y: 1940 <= y <= 1945)}**"
    )


def test_dates_by_year_month_and_day(days: tuple[Path, list[Day]]) -> None:
    path, rows = days

    def count(keep: object) -> int:
        return sum(1 for r in rows if keep(r))  # type: ignore[operator]

    assert answer(path, "How many days had rain in 2013?") == (
        "**number of rows where weather = rain and date in 2013: "
        f"{count(lambda r: r[1] == 'rain' and r[0].year == 2013)}**"
    )
    march = [r[3] for r in rows if (r[0].year, r[0].month) == (2013, 3)]
    assert answer(path, "What was the total precipitation in March 2013?") == (
        f"**total precipitation where date in 2013-03: {fmt(sum(march))}**"
    )
    assert answer(path, "How many days were there after 2013?") == (
        f"**number of rows where year of date > 2013: {count(lambda r: r[0].year > 2013)}**"
    )
    day = rows[100]
    assert answer(path, f"What was the temp_max on {day[0].isoformat()}?") == (
        f"**temp_max where date = {day[0].isoformat()}: {fmt(day[2])}**"
    )
    hottest = max(rows, key=lambda r: r[2])
    assert answer(path, "On which date was the highest temp_max recorded?").startswith(
        f"**highest temp_max: {fmt(hottest[2])} (date: {hottest[0].isoformat()}"
    )
    table = answer(path, "What is the average temp_max per year?")
    for year in (2012, 2013, 2014):
        mean = statistics.fmean(r[2] for r in rows if r[0].year == year)
        assert f"| {year} | {fmt(mean)} |" in table


def test_most_common_value_and_shares(days: tuple[Path, list[Day]]) -> None:
    path, rows = days
    counts = Counter(r[1] for r in rows)
    (common, most), *_ = counts.most_common()
    assert answer(path, "What is the most common weather?") == (
        f"**most common weather: {common} ({most} rows)**"
    )
    rarest = min(counts, key=lambda w: counts[w])
    assert answer(path, "Which weather is least common?") == (
        f"**least common weather: {rarest} ({counts[rarest]} rows)**"
    )
    fog = counts["fog"]
    assert answer(path, "What percentage of days had fog?") == (
        f"**share of rows where weather = fog: {fmt(round(100 * fog / len(rows), 2))}% "
        f"({fog} of {len(rows)} rows)**"
    )
    rain = sum(r[3] for r in rows if r[1] == "rain")
    whole = sum(r[3] for r in rows)
    assert answer(path, "What share of total precipitation fell on rain days?") == (
        f"**share of total precipitation where weather = rain: "
        f"{fmt(round(100 * rain / whole, 2))}% ({fmt(rain)} of {fmt(whole)})**"
    )
    assert answer(path, "How many days were not sunny?") == (
        f"**number of rows where weather != sun: {len(rows) - counts['sun']}**"
    )


def test_value_in_a_named_row_and_the_most_expensive(cars: Path) -> None:
    bmw = next(c for c in CARS if c[0] == "bmw")
    assert (
        answer(cars, "What is the price of the bmw?") == f"**price where make = bmw: {bmw[4]:,}**"
    )
    volvos = [c for c in CARS if c[0] == "volvo"]
    listed = answer(cars, "What is the price of the volvo?")
    assert listed.startswith(f"**price where make = volvo ({len(volvos)} rows):**")
    for car in volvos:
        assert f"| {car[4]:,} |" in listed
    priciest = max(CARS, key=lambda c: c[4])
    assert answer(cars, "Which make has the most expensive car?") == (
        f"**highest price: {priciest[4]:,} (make: {priciest[0]})**"
    )
    cheapest = min(CARS, key=lambda c: c[4])
    assert answer(cars, "What is the cheapest car?") == (
        f"**lowest price: {cheapest[4]:,} (make: {cheapest[0]})**"
    )
    toyota = [c[4] for c in CARS if c[0] == "toyota" and c[1] == "diesel"]
    assert answer(cars, "What is the average price of a diesel toyota?") == (
        f"**average price where make = toyota and fuel = diesel: {fmt(statistics.fmean(toyota))}**"
    )
    assert answer(cars, "What is the most common make?") == "**most common make: toyota (3 rows)**"


def test_a_value_of_two_columns_counts_beside_its_name(cars: Path) -> None:
    """ "four" is a number of doors and of cylinders: only the name beside it says which."""
    four_doors = sum(1 for c in CARS if c[2] == "four")
    assert answer(cars, "How many cars have four doors?") == (
        f"**number of rows where doors = four: {four_doors}**"
    )
    four_cylinders = sum(1 for c in CARS if c[3] == "four")
    assert answer(cars, "How many cars have cylinders four?") == (
        f"**number of rows where cylinders = four: {four_cylinders}**"
    )
    assert compute(cars, "How many cars have four?") is None


@pytest.mark.parametrize(
    ("header", "question", "column"),
    [
        (["date", "temp_max", "temp_min"], "What is the average temp_max?", "temp_max"),
        (["date", "temp_max", "temp_min"], "What is the average temp max?", "temp_max"),
        (["date", "temp_max", "temp_min"], "What is the average Temp Max?", "temp_max"),
        (["YEAR", "COPPERPRICE", "ALUMPRICE"], "What was the average copper price?", "COPPERPRICE"),
        (["year", "unemp", "infl"], "What was the average unemployment rate?", "unemp"),
        (["YEAR", "SUNACTIVITY"], "What was the average sunspot activity?", "SUNACTIVITY"),
        (
            ["id", "NetGeneration", "netLoss"],
            "What is the average net generation?",
            "NetGeneration",
        ),
        (["firm", "invest", "value"], "What is the average of the investments?", "invest"),
        (["name", "unit", "units"], "What is the average units?", "units"),  # exact beats plural
    ],
)
def test_column_names_are_matched_loosely(
    tmp_path: Path, header: list[str], question: str, column: str
) -> None:
    rows = [(1, 2.5, 4.0), (2, 3.5, 8.0), (3, 6.5, 16.0)]
    if header[0] in ("firm", "name"):
        rows = [("a", 2.5, 4.0), ("b", 3.5, 8.0), ("c", 6.5, 16.0)]
    rows = [row[: len(header)] for row in rows]
    path = write(tmp_path / "t.csv", header, rows)  # type: ignore[arg-type]
    index = header.index(column)
    mean = statistics.fmean(float(r[index]) for r in rows)  # type: ignore[arg-type]
    assert answer(path, question) == f"**average {column}: {fmt(mean)}**"


def test_two_columns_named_equally_well_are_not_guessed(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["Price", "price_", "qty"], [(1, 2, 3), (4, 5, 6)])
    computed = compute(path, "What is the average price?")
    assert computed is None or not computed.has_figures


def test_an_unplannable_question_names_its_columns_and_no_figure(
    firms: tuple[Path, list[Firm]], cars: Path
) -> None:
    path, _ = firms
    for question in (
        "What is the average invest of firms that are not public?",  # a condition not read
        "How many firms are there in Germany?",  # a name that is neither column nor value
        "What is the average invest in the 1990s?",  # a number this cannot read
        "What is the highest invest per employee ratio by firm and 10k?",
    ):
        computed = compute(path, question)
        assert isinstance(computed, Computed) and not computed.has_figures, question
        note = computed.markdown()
        assert note.startswith("No figure was computed for this question; it mentions the "), note
        assert not re.search(r"\d", note), note
    computed = compute(path, "Which firm has the highest invest and staff and year per 10k?")
    assert computed is not None and computed.markdown() == (
        "No figure was computed for this question; it mentions the columns firm, invest, "
        "staff and year."
    )
    # Nothing asked that names a column: no note either.
    assert compute(path, "Summarise this table.") is None
    assert compute(path, "What is the total?") is None  # invest or staff: no guess
    assert answer(cars, "What is the total?") == f"**total price: {sum(c[4] for c in CARS):,}**"


@pytest.mark.parametrize(
    "question",
    [
        "What was the total invest of US Steel between 1940 and 1945?",
        "Which firm had the highest invest after 1950?",
        "What share of rows have a staff over 25 for IBM?",
        "What is the invest of Chrysler in 1941?",
        "What is the most common firm with a staff of at least 29?",
    ],
)
def test_sql_is_one_select_with_every_value_bound(question: str) -> None:
    columns = [
        Column("firm", False, ("US Steel", "IBM", "Chrysler"), "VARCHAR"),
        Column("year", True, (), "BIGINT"),
        Column("invest", True, (), "DOUBLE"),
        Column("staff", True, (), "BIGINT"),
    ]
    query = plan(question, columns)
    assert query is not None, question
    assert ";" not in query.sql and query.sql.startswith(("SELECT ", "WITH g AS (SELECT "))
    body = re.sub(r" LIMIT \d+$", "", query.sql)
    assert not re.search(r"\d{2,}|US Steel|IBM|Chrysler", body), query.sql
    assert all(p in question for p in query.params if isinstance(p, str))
    # Rows come back capped; an aggregate without GROUP BY is one row anyway.
    assert body != query.sql or "GROUP BY" not in query.sql, query.sql


def test_sum_worded_as_adding_up(firms: tuple[Path, list[Firm]]) -> None:
    path, rows = firms
    total = sum(r[3] for r in rows if r[1] == 1940)
    assert answer(path, "How much did staff add up to in 1940?") == (
        f"**total staff where year = 1940: {total:,}**"
    )


def test_top_n_of_a_time_column_ranked_by_another_number(
    firms: tuple[Path, list[Firm]],
) -> None:
    """ "Which 3 years had the highest invest": the years are listed, the invest ranks them."""
    path, rows = firms
    table = answer(path, "Which 3 years had the highest invest?")
    best = sorted(rows, key=lambda r: -r[2])[:3]
    assert table.startswith("**3 highest invest:**")
    for row in best:
        assert f"| {row[1]} |" in table and fmt(row[2]) in table


def test_top_n_things_by_a_number_ranks_by_it(firms: tuple[Path, list[Firm]]) -> None:
    """ "The top 3 firms by invest": invest ranks the rows; it is not a column to group by."""
    path, rows = firms
    table = answer(path, "What are the top 3 firms by staff?")
    assert table.startswith("**3 highest staff:**")
    assert str(max(r[3] for r in rows)) in table


def test_a_column_of_the_row_with_the_highest_other(firms: tuple[Path, list[Firm]]) -> None:
    """ "The staff of the row with the biggest invest": invest picks the row, staff is shown."""
    path, rows = firms
    best = max(rows, key=lambda r: r[2])
    assert answer(path, "What is the staff of the firm with the biggest invest?") == (
        f"**highest invest: {fmt(best[2])} (staff: {best[3]}, firm: {best[0]}, year: {best[1]})**"
    )
