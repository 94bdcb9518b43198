"""Grounding: the line of a document that answers a question, found by doclane itself, with its
page; whether it is sure enough to open the answer; and which of the model's sentences agree
with it."""

from __future__ import annotations

from doclane.documents import Document, Page
from doclane.grounding import figures_lead, ground
from doclane.jobs import DocumentKind

PROSE = (
    "The toolkit reads a description of the interfaces and writes the code that converts data\n"
    "between the two languages, so that a program written in one can call the other. This\n"
    "section explains how the generated code is organised and how it is compiled and linked.\n"
)


def manual() -> Document:
    """A 30-page manual: title page, licence page, then prose that mentions other releases."""
    pages = [
        Page(1, "Widgetkit user's manual\nVersion 2.7\nMaria Lindqvist\nNordic Institute\n"),
        Page(
            2,
            "Copyright 2019 Nordic Institute.\nPermission is granted to copy and distribute this "
            "document under the terms of the GNU Free Documentation License, Version 1.3 or any\n"
            "later version published by the Free Software Foundation.\n",
        ),
    ]
    for number in range(3, 31):
        text = PROSE * 4
        if number == 9:
            text += "With release 1.9, the parser was rewritten in C for speed.\n"
        if number == 23:
            text += (
                "A widget name is a string of 1 up to 64 characters, which must be unique in\n"
                "its window.\n"
            )
        if number == 27:
            text += "DOM stands for Document Object Model, as the standard calls it.\n"
        pages.append(Page(number, text))
    return Document(DocumentKind.PDF, "PDF document, 30 pages.", pages)


def test_the_title_page_answers_questions_about_the_document() -> None:
    document = manual()
    found = ground(document, "Which version of Widgetkit does this manual describe?")
    assert found is not None and found.leads
    assert (found.page, found.text, found.values) == (1, "Version 2.7", ("2.7",))
    author = ground(document, "Who wrote this manual?")
    assert (
        author is not None
        and author.leads
        and (author.page, author.text)
        == (
            1,
            "Maria Lindqvist",
        )
    )
    licence = ground(document, "Under which licence may this document be copied?")
    assert licence is not None and licence.leads and licence.page == 2
    assert "GNU Free Documentation License" in licence.text


def test_a_fact_deep_in_the_document_is_quoted_with_its_page() -> None:
    document = manual()
    found = ground(document, "How many characters long can a widget name be?")
    assert found is not None and found.leads and found.page == 23
    assert found.text.startswith("A widget name is a string of 1 up to 64 characters")
    assert found.quote() == f"> Source, p. 23: {found.text}"
    release = ground(document, "With which release was the parser rewritten in C?")
    assert release is not None and release.leads and release.page == 9
    dom = ground(document, "What does DOM stand for?")
    assert dom is not None and dom.leads and dom.page == 27
    assert dom.values == ("Document Object Model",)


def test_an_abbreviation_spelled_out_by_its_initials() -> None:
    text = (
        "The problem is specified in the Conjunctive Normal Form (CNF), a conjunction of clauses."
        "\nA linear programming (LP) problem is a special case.\n"
    )
    document = Document(DocumentKind.PDF, "", [Page(1, text)])
    cnf = ground(document, "What does CNF stand for?")
    assert cnf is not None and cnf.leads and cnf.values == ("Conjunctive Normal Form",)
    lp = ground(document, "What does LP stand for?")
    assert lp is not None and lp.values == ("linear programming",)


def test_what_an_abbreviation_means_is_its_expansion() -> None:
    """ "What does DER mean" asks what "DER" stands for, not for any line that says "mean"."""
    pages = [Page(n, PROSE * 3) for n in range(1, 12)]
    pages[1] = Page(2, "A library for Distinguished Encoding Rules (DER) manipulation.\n")
    pages[9] = Page(10, "It means that the element was not present in the der encoding.\n")
    document = Document(DocumentKind.PDF, "", pages)
    der = ground(document, "What does DER mean?")
    assert der is not None and der.leads and der.page == 2
    assert der.values == ("Distinguished Encoding Rules",)


def test_a_maximum_in_prose_is_no_row_of_an_unrelated_list() -> None:
    """ "The maximum value for ekb" is a sentence's fact, not the last line of a formula."""
    formula = "T_1 = E_k 1\nT_2 = T_1 MUL 2\nT_3 = T_2 MUL 3\nT_4 = T_3 MUL 4\n"
    pages = [Page(n, PROSE * 3) for n in range(1, 12)]
    pages[4] = Page(5, PROSE + "The maximum value for ekb is 1024, and ekb = 0 means 1024.\n")
    pages[8] = Page(9, formula)
    found = ground(Document(DocumentKind.PDF, "", pages), "What is the maximum value for ekb?")
    assert found is not None and found.leads and found.page == 5 and "1024" in found.values


def test_columns_read_apart_with_blank_lines_are_put_back_in_rows() -> None:
    """Tesseract read each column alone, a blank line between figures: the labels under their
    header, then each column's header and figures. The rows are rebuilt; a row's figure is the
    column the question names best ("smokers with cancer", not "smoker, no cancer")."""
    cities = ["Beijing", "Shanghai", "Harbin", "Taiyuan"]
    cancer, no_cancer = ["126", "908", "402", "60"], ["100", "688", "308", "99"]
    text = "Smoking study\n\nCity\n\n" + "\n".join(cities) + "\n\n"
    text += "Smoker, cancer\n" + "\n\n".join(cancer) + "\n\n"
    text += "Smoker, no cancer\n" + "\n\n".join(no_cancer)
    document = Document(DocumentKind.IMAGE, "", [Page(1, text)])
    harbin = ground(document, "How many smokers with cancer were there in Harbin?")
    assert harbin is not None and harbin.leads and "Harbin" in harbin.text
    assert "402" in harbin.values
    most = ground(document, "Which city had the most smokers with cancer?")
    assert most is not None and most.values == ("Shanghai",)
    fewest = ground(document, "Which city had the fewest smokers with no cancer?")
    assert fewest is not None and fewest.values == ("Taiyuan",)


def test_nothing_leads_when_the_document_does_not_say() -> None:
    document = manual()
    assert ground(document, "What is the price of the Ferrari?") is None
    assert ground(document, "Summarise this document.") is None


# Text recognition's reading of a drawn price list, and of a table it read column by column.
PRICE_LIST = (
    "Riverside Motors - Price list\n\nMake Body style Doors Price (USD)\n"
    "Audi sedan four 13,950.00\nBmw sedan two 16,430.00\nMazda hatchback two 5,195.00\n"
    "Volvo sedan four 12,940.00"
)
COLUMNS = (
    "Crime and poverty by state\n\nState\nAlabama\nAlaska\nArizona\nArkansas\n\n"
    "Murders per 100,000\n7.1\n3.2\n5.5\n6.3\n\nPoverty %\n17.5\n9\n16.5\n18.8"
)
INVOICE = (
    "Harbour Fleet Services - INVOICE\n\nInvoice number INV-20931\n\nItem Qty Unit price\n"
    "Subaru hatchback 2 5,118.00\nVolkswagen sedan 3 7,775.00\nSubtotal\n\nVAT 20%\n\n"
    "Total due\n\nAmount\n10,236.00\n23,325.00\n33,561.00\n6,712.20\n40,273.20"
)


def image(text: str) -> Document:
    return Document(DocumentKind.IMAGE, "Image file.", [Page(1, text)])


def test_a_row_of_a_list_and_its_extremes() -> None:
    prices = image(PRICE_LIST)
    volvo = ground(prices, "How much does the Volvo cost?")
    assert volvo is not None and volvo.leads and volvo.text == "Volvo sedan four 12,940.00"
    assert volvo.quote(DocumentKind.IMAGE) == "> Source, in the image: Volvo sedan four 12,940.00"
    cheapest = ground(prices, "Which is the cheapest car on this list?")
    assert cheapest is not None and cheapest.text.startswith("Mazda")
    dearest = ground(prices, "Which make is the most expensive?")
    assert dearest is not None and dearest.text.startswith("Bmw")
    assert dearest.values == ("Bmw",)
    # A table's header names no one.
    ceo = ground(prices, "Who is the CEO of Riverside Motors?")
    assert ceo is None or not ceo.leads


def test_a_table_read_column_by_column_is_put_back_in_rows() -> None:
    arizona = ground(image(COLUMNS), "What is the poverty rate of Arizona?")
    assert arizona is not None and arizona.leads
    assert arizona.text == "State: Arizona; Murders per 100,000: 5.5; Poverty %: 16.5"
    highest = ground(image(COLUMNS), "Which state has the highest poverty?")
    assert highest is not None and highest.text.startswith("State: Arkansas")
    # A column of figures alone stands beside the lines read just before it.
    total = ground(image(INVOICE), "What is the total due on this invoice?")
    assert total is not None and total.leads and total.text == "Total due: ; Amount: 40,273.20"
    vat = ground(image(INVOICE), "What is the VAT?")
    assert vat is not None and "6,712.20" in vat.text


def test_a_sentence_agrees_only_when_it_says_what_the_line_says() -> None:
    volvo = ground(image(PRICE_LIST), "How much does the Volvo cost?")
    assert volvo is not None
    assert volvo.agrees("The Volvo costs $12,940.")
    assert not volvo.agrees("The Volvo costs $35,867 with a standard fuel economy.")
    assert not volvo.agrees("Volvo sedan four 12,940.00.")  # only repeats the line
    author = ground(manual(), "Who wrote this manual?")
    assert author is not None
    assert author.agrees("The manual was written by Maria Lindqvist.")
    assert not author.agrees("The manual was written by Hugging Face.")
    figures = figures_lead("**total amount: 2,050**", "What is the total amount?")
    assert figures.agrees("The orders add up to 2,050.")
    assert not figures.agrees("The answer involves a mix of math and logic.")
    assert not figures.agrees("Computed exactly over every row: total amount: 2,050")
