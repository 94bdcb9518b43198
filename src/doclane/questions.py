"""What a question asks for: the kind of thing (a version, a person, a date, a place, a number,
an abbreviation's expansion, a licence, a link), its words less those that only name that kind,
whether it asks about the document itself ("this manual's version"), and, for "the cheapest" or
"the highest", which end of a list.

Reading a question is pattern work on its words alone; things.py finds the things of each kind
in a document's text, grounding.py ranks the document's units with both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from doclane.textunits import stem, terms

_DOCUMENT_NOUNS = (
    r"(?:document|manual|guide|book|paper|report|file|reference|article|notes?|memo|letter|"
    r"text|publication|handbook|specification|invoice|receipt|list|table|image|picture|photo|"
    r"scan|page|form|sheet|statement|bill|contract|chart|brochure|leaflet|pdf)"
)
_ABOUT_ITSELF = re.compile(
    rf"\b(?:this|the)\s+(?:[\w-]+\s+){{0,3}}?{_DOCUMENT_NOUNS}\b"
    r"|\bwho (?:wrote|is the author)\b|\bthis\b",
    re.IGNORECASE,
)
# "this price list", "this color management document": the document itself, no subject.
_THIS_DOCUMENT = re.compile(rf"\bthis\s+(?:[\w-]+\s+){{0,3}}?{_DOCUMENT_NOUNS}\b", re.I)
_OTHER_WORK = re.compile(r"\bthe (?:book|article|paper|film|song|novel)\s+[A-Z]")


class Asks(Enum):
    """What kind of thing a question asks for."""

    EXPANSION = "expansion"  # what an abbreviation stands for
    LICENCE = "licence"
    LINK = "link"  # a web or e-mail address
    DATE = "date"
    VERSION = "version"
    PERSON = "person"
    PLACE = "place"
    NUMBER = "number"


_ASKS: list[tuple[Asks, re.Pattern[str]]] = [
    (
        Asks.EXPANSION,
        re.compile(
            r"\bstands? for\b|\bshort for\b|\babbreviat|\bacronym|\bexpansion\b"
            # "what does DER mean": an abbreviation (capitals) meaning something
            r"|\b(?:does|do)\s+[\"“']?(?-i:[A-Z][A-Z0-9]+)[\"”']?\s+mean\b",
            re.I,
        ),
    ),
    (Asks.LICENCE, re.compile(r"\blicen[cs]\w*|\bcopyleft\b|\bterms of use\b", re.I)),
    (
        Asks.LINK,
        re.compile(
            r"\bweb ?site\b|\burl\b|\bhome ?page\b|\be-?mail\b|\bweb address\b|\blink\b"
            r"|\bweb page\b|\bdownload(?:ed)? from\b",
            re.I,
        ),
    ),
    (
        Asks.DATE,
        re.compile(
            r"\bwhen\b|\bdate[ds]?\b|\b(?:what|which) (?:year|month|day)\b|\bin what year\b"
            r"|\bhow old is (?:this|the)\b",
            re.I,
        ),
    ),
    (Asks.VERSION, re.compile(r"\b(?:version|release|revision|edition)\b", re.I)),
    (
        Asks.PERSON,
        re.compile(
            r"\bwho\b|\bauthor|\bwrote\b|\bwritten by\b|\bwhose\b|\bby whom\b|\bsigned\b", re.I
        ),
    ),
    (
        Asks.PLACE,
        re.compile(
            r"\bwhere\b|\baddress\b|\bcity\b|\btown\b|\bcountry\b|\blocated\b|\blocation\b"
            r"|\bstreet\b|\bheadquarter|\bpost ?code\b|\bzip\b|\bpostal\b",
            re.I,
        ),
    ),
    (
        Asks.NUMBER,
        re.compile(
            r"\bhow (?:many|much|long|old|big|large|far|often|tall|high|wide|heavy|deep)\b"
            r"|\bnumber\b|\bcount\b|\bprice\b|\bcosts?\b|\b(?:sub)?total\b|\bamount\b|\brate\b"
            r"|\bpercent|\bshare of\b|\bsum\b|\bsize of\b|\bup to what\b|\bvalue\b|\bfigure\b"
            r"|\blimit\b|\bmaximum\b|\bminimum\b|\bdefaults?\b|\bquantity\b|\bdue\b"
            r"|\bbalance\b",
            re.I,
        ),
    ),
]

_ASKED_ABBREVIATION = re.compile(
    r"\b(?:does|is|do)\s+(?:the\s+)?(?:abbreviation\s+|acronym\s+|name\s+)?[\"“']?"
    r"([A-Za-z][\w-]*)[\"”']?\s+(?:stand|short|mean\b)",
    re.I,
)

_LOWEST = re.compile(
    r"\b(?:cheapest|least expensive|lowest|smallest|minimum|fewest|least|shortest|earliest)\b",
    re.I,
)
_HIGHEST = re.compile(
    r"\b(?:most expensive|dearest|priciest|highest|largest|biggest|maximum|greatest|most|"
    r"longest|latest)\b",
    re.I,
)


def extreme(question: str) -> Literal["lowest", "highest"] | None:
    """For "the cheapest", "the highest": which end of a list the question asks for (None when
    it names neither, or both)."""
    lowest, highest = _LOWEST.search(question), _HIGHEST.search(question)
    if bool(lowest) == bool(highest):
        return None
    return "lowest" if lowest else "highest"


def asks(question: str) -> Asks | None:
    """The kind of thing ``question`` asks for, or None when it asks for no particular kind."""
    for kind, pattern in _ASKS:
        if pattern.search(question):
            return kind
    return None


# Words that say what kind of thing is asked for, not what it is about: "the author of this
# document" names nothing the document must mention.
_KIND_WORDS = frozenset(
    stem(w)
    for w in (
        "who author authors wrote written writer whose signed when date dated year month day "
        "version release revision edition where address city town country located location "
        "street headquarters number count price cost costs total amount rate percent "
        "percentage sum size quantity due balance value figure stand stands short abbreviation "
        "acronym name called licence license licensed terms website site url homepage email "
        "mail link"
    ).split()
)
_SUBJECT = re.compile(
    r"\b(?:what|which)\s+(?:kind|type|sort)\s+of\s+.+?\s+(?:is|are|was)\s+(?:an?\s+|the\s+)?"
    r"(\S+?)\??$|\bwhat\s+(?:is|are|was)\s+(?:an?\s+|the\s+)?(\S+?)\??$",
    re.I,
)


@dataclass
class Question:
    """A question as grounding reads it."""

    text: str
    kind: Asks | None
    terms: set[str]
    content: set[str]  # its terms, less those that only name the kind asked for
    kind_words: set[str]  # … and those
    about_itself: bool  # asks about the document (its version, author, date)
    abbreviation: str  # for "what does X stand for"
    subject: str  # for "what kind of Y is X": X, which a definition says "X is …" of


def read_question(text: str) -> Question:
    kind = asks(text)
    subject = _SUBJECT.search(text.strip())
    return Question(
        text,
        kind,
        set(terms(text)),
        set(terms(_THIS_DOCUMENT.sub(" ", text))) - _KIND_WORDS,
        set(terms(text)) & _KIND_WORDS,
        bool(_ABOUT_ITSELF.search(text)) and not _OTHER_WORK.search(text),
        abbreviation(text) if kind is Asks.EXPANSION else "",
        unhyphen(subject[1] or subject[2]) if subject else "",
    )


def unhyphen(text: str) -> str:
    """Text compared with a word broken at a line end ("de-fault") whole again."""
    return re.sub(r"(?<=[a-z])-(?=[a-z])", "", text.lower())


def abbreviation(question: str) -> str:
    """The abbreviation "what does X stand for" asks about ("" if none)."""
    match = _ASKED_ABBREVIATION.search(question)
    return match[1] if match else ""
