"""The number guard: which figures a document supports, in the forms people write them, and the
stream check that holds back what may still grow into a number."""

from __future__ import annotations

import random

import pytest

from doclane.numberguard import UNVERIFIED, NumberGuard, Support, check

DOCUMENT = (
    "Volvo sedan four 12,940.00\n"
    "Revenue reached 1,234.5 million; the rate was 3% and growth 12.94 points.\n"
    "Preis: 7.775,00 EUR. Invoice date 2024-01-31. Version 3.6.12, released May 1, 2002.\n"
)
SUPPORT = Support([DOCUMENT, "How much does the Volvo cost in 2023?"], pages=[1, 2, 7])


@pytest.mark.parametrize(
    "said",
    [
        "12,940.00",  # as written
        "12940",  # without separators or decimals
        "12,940",
        "12.940,00",  # as Europe writes it
        "1,234.5",
        "1234.50",
        "1,235",  # rounded, keeping at least two significant digits
        "12.9",  # 12.94 rounded
        "7,775",  # 7.775,00 read the European way
        "3%",
        "3.0%",
        "2024-01-31",  # a date in any usual form
        "31/01/2024",
        "01/31/2024",
        "31.01.2024",
        "3.6.12",  # a version as written
        "2023",  # the question's own number
    ],
)
def test_supported_figures_pass(said: str) -> None:
    text = f"It is {said} here."
    assert check(text, SUPPORT) == (text, [])


@pytest.mark.parametrize(
    "said",
    [
        "67,999.53",
        "12,941",
        "13,000",  # too coarse a rounding of 12,940 to count as it
        "1.3",  # one significant digit: no rounding of 1,234.5
        "4%",
        "2024-02-01",
        "01/02/2024",
        "3.6.13",
        "1999",
    ],
)
def test_unsupported_figures_are_marked(said: str) -> None:
    assert check(f"It is {said} here.", SUPPORT) == (f"It is {UNVERIFIED} here.", [said])


def test_pages_dates_and_list_numbers() -> None:
    text = "See p. 7 and pages 1-2, not p. 9 or [Page 12].\n1. First\n2. Second"
    checked, removed = check(text, SUPPORT)
    assert checked == (
        f"See p. 7 and pages 1-2, not p. {UNVERIFIED} or [Page {UNVERIFIED}].\n1. First\n2. Second"
    )
    assert removed == ["9", "12"]
    # A date in words is checked whole: the document has May 1, 2002, not May 3, 2004.
    assert check("On May 1, 2002 and 1 May 2002.", SUPPORT)[1] == []
    assert check("On May 3, 2004.", SUPPORT) == (f"On {UNVERIFIED}.", ["May 3, 2004"])
    # Digits inside words are no figures.
    assert check("x86, H2O, the 1st and MP3", SUPPORT)[1] == []


def stream(guard: NumberGuard, pieces: list[str]) -> list[str]:
    """What the guard sends for each piece, and at the end."""
    return [guard.feed(piece) for piece in pieces] + [guard.close()]


def test_a_number_split_across_pieces_is_checked_whole() -> None:
    pieces = ["The Volvo costs 1", "2,9", "40.0", "0, not 67,", "999", ".53 nor 12", ",941", "."]
    sent = stream(NumberGuard(SUPPORT), pieces)
    assert "".join(sent) == f"The Volvo costs 12,940.00, not {UNVERIFIED} nor {UNVERIFIED}."
    # Nothing sent was ever a piece of a number: no chunk ends inside one.
    text = ""
    for chunk in sent:
        text += chunk
        assert "67" not in text or UNVERIFIED in text
        assert not text[-1:].isdigit() or chunk is sent[-1]


def test_any_split_sends_the_same_text() -> None:
    text = (
        "Revenue was 1,234.5 million (p. 2), not 1,334.5; the Volvo costs 12.940,00 EUR, "
        "the invoice is dated 31/01/2024 and 2024-02-01 is wrong, see p. 9. 1. Done"
    )
    whole, _ = check(text, SUPPORT)
    assert UNVERIFIED in whole
    rng = random.Random(5)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 40)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert "".join(stream(NumberGuard(SUPPORT), pieces)) == whole


def test_a_resumed_stream_reads_what_it_continues() -> None:
    """A re-run continues the answer a crashed run persisted: "p." there makes the next number
    a page."""
    guard = NumberGuard(SUPPORT, before="The price is on p.")
    assert "".join(stream(guard, [" 7", " and p.", " 8."])) == f" 7 and p. {UNVERIFIED}."


def test_what_is_held_is_only_the_last_word() -> None:
    guard = NumberGuard(SUPPORT)
    assert guard.feed("The total is 12,9") == "The total is"
    assert guard.held == " 12,9"
    assert guard.feed("40.00 dollars") == " 12,940.00"
    # A run with no space (a URL, a hash) is not held back for ever.
    assert guard.feed("x" * 200) == " dollars" + "x" * 200
