"""The things a question can ask for, found in a text: dates, versions, people's names,
places, licences, links, numbers, and what an abbreviation stands for; and whether a text says
a given value, in the same words or as the same figure in another form.

A thing counts only when the question does not already say it: "Version 1.04" answers "which
version?", not "what changed in version 1.04?".
"""

from __future__ import annotations

import re

from doclane.numberguard import shows, values
from doclane.questions import Asks, abbreviation
from doclane.textunits import STOPWORDS, WORD

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_STREET = re.compile(
    r"\b\d+[A-Za-z]?\s(?:[A-Z][a-z]+\s){1,3}(?:Road|Rd|Street|St|Avenue|Ave|Boulevard|Blvd|"
    r"Lane|Ln|Drive|Dr|Way|Place|Pl|Square|Sq|Court|Ct|Terrace|Parkway|Highway|Hwy|Row|"
    r"Crescent|Close|Strasse|Straße)\b"
)
# A town as addresses write it: "Novato, CA 94945", "London SW19 7NB", "75008 Paris".
_TOWN = re.compile(
    r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s[A-Z]{2}\b(?:\s\d{5})?"
    r"|\b[A-Z][a-z]+\s[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"
    r"|\b\d{5}\s[A-Z][a-z]+\b"
)
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?"

# Each kind of thing as a text writes it.
_FINDS: dict[Asks, re.Pattern[str]] = {
    Asks.DATE: re.compile(
        rf"\b(?:(?:{_MONTHS})\.?\s+(?:\d{{1,2}}(?:st|nd|rd|th)?,?\s+)?\d{{4}}"
        rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?,?\s+\d{{4}}"
        r"|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|(?:1[6-9]|20)\d{2})\b"
    ),
    Asks.VERSION: re.compile(r"(?<![\w.])[vV]?\d+(?:\.\d+)+[a-z]?(?![\w]|\.\d)"),
    Asks.PERSON: re.compile(
        r"\b[A-Z][a-z]+(?:-[A-Z][a-z]+)?(?:\s[A-Z]\.)*(?:\s(?:van|von|de|da|di|le|la)\b)?"
        r"(?:\s[A-Z][a-z]+(?:-[A-Z][a-z]+)?){1,2}\b"
    ),
    Asks.PLACE: re.compile(f"{_STREET.pattern}|{_TOWN.pattern}"),
    # A licence's name: "GNU Free Documentation License, Version 1.3", "GPL-2.0", "MIT".
    Asks.LICENCE: re.compile(
        r"\b(?:(?:GNU|[A-Z][\w.-]*)\s+){1,4}Licen[cs]e\b(?:,?\s+[Vv]ersion\s+[\d.]+)?"
        r"|\b(?:A?GPL|LGPL|MIT|BSD|Apache|MPL|EPL|ISC|CC[- ]BY(?:-[A-Z]{2})*|CC0|Unlicense)"
        r"(?:[- ]?v?\d[\d.]*)?\+?(?![\w-])"
    ),
    Asks.LINK: re.compile(
        r"\bhttps?://[^\s<>()]+|\bwww\.[^\s<>()]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    ),
    Asks.NUMBER: re.compile(
        r"(?<![\w.])(?:[A-Z]+-?)?(?:" + _NUMBER + r")%?(?![\w]|\.\d)"
        r"|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
        r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
        r"eighty|ninety|hundred|thousand|million|billion|dozen)\b",
        re.I,
    ),
}
# How documents say the thing asked for: they make a match more certain.
CUES: dict[Asks, re.Pattern[str]] = {
    Asks.PERSON: re.compile(r"\b(?:by|author|authors|written|edited|prepared|signed)\b", re.I),
    Asks.VERSION: re.compile(r"\b(?:version|release|revision|edition|v\d)", re.I),
    Asks.DATE: re.compile(rf"\b(?:{_MONTHS})\b|\bdated?\b", re.I),
}
_STREET_WORDS = re.compile(r"\b(?:street|address)\b", re.I)
_CITY_WORDS = re.compile(r"\b(?:city|town|located|where)\b", re.I)
STANDS_FOR = re.compile(r"\bstands? for\b|\bshort for\b|\bmeans\b|\babbreviat", re.I)
_SMALL_WORDS = frozenset("and of for the in to on a an with using".split())


def holds(kind: Asks, text: str, question: str, common: set[str] | None = None) -> bool:
    """Whether ``text`` holds a thing of the asked kind that the question does not say.
    ``common``: words written in lower case in the document, which no name is made of."""
    if kind is Asks.EXPANSION:
        return _expands(text, abbreviation(question))
    return bool(things(kind, text, question, common))


def things(kind: Asks, text: str, question: str, common: set[str] | None = None) -> list[str]:
    """The things of the asked kind in ``text`` that the question does not say."""
    if kind is Asks.EXPANSION:
        return []
    pattern = _place_pattern(question) if kind is Asks.PLACE else _FINDS[kind]
    said = question.lower()
    found = []
    for match in pattern.finditer(text):
        value = match[0]
        if value.lower() in said:
            continue
        if kind is Asks.VERSION and not text[: match.start()].strip():
            continue  # "6.2 Sharing IDL files": a section's number
        if kind is Asks.PERSON and not _looks_like_name(value, question, common or set()):
            continue
        found.append(value)
    return found


def says(text: str, value: str) -> bool:
    """Whether ``text`` says ``value``: as words, or as the same figure in another form."""
    if " ".join(value.lower().split()) in " ".join(text.lower().split()):
        return True
    figures = re.findall(_NUMBER, value)
    if len(figures) != 1 or not re.fullmatch(rf"\W*(?:{_NUMBER})\W*", value):
        return False
    wanted = {v.value for v in values(figures[0])}
    return any(
        any(shows(v, w) for v in values(said) for w in wanted) for said in re.findall(_NUMBER, text)
    )


def _looks_like_name(value: str, question: str, common: set[str]) -> bool:
    """A person's name: no word of the question, none the document writes in lower case
    elsewhere, none that names a street or an organisation ("Grant Avenue", "Artifex
    Software")."""
    words = [w.strip(".") for w in value.split()]
    asked = {w.lower() for w in WORD.findall(question)}
    return not any(
        w.lower() in asked or w.lower() in STOPWORDS or w.lower() in common or w in _NOT_NAMES
        for w in words
        if len(w) > 1
    )


_NOT_NAMES = frozenset(
    (
        "Road Street Avenue Lane Drive Boulevard Square Hill Park Suite Building Floor "
        "Software Systems System Inc Ltd Limited Corporation Company Group Foundation "
        "University College Institute Press Department Library Project Manual Guide Reference "
        "Language Program Programming Problem Document Version Release Chapter Section Table "
        "Figure Appendix Introduction Contents Index Abstract Overview Services Motors"
    ).split()
)


def _place_pattern(question: str) -> re.Pattern[str]:
    """A street for "the street address", a town for "which city", either for "where"."""
    if _STREET_WORDS.search(question):
        return _STREET
    if _CITY_WORDS.search(question):
        return _TOWN
    return _FINDS[Asks.PLACE]


def _expands(text: str, abbreviation: str) -> bool:
    """Whether ``text`` spells out ``abbreviation``: "Conjunctive Normal Form (CNF)", "IDL
    stands for …"."""
    return expansion(text, abbreviation) is not None


def expansion(text: str, abbreviation: str) -> str | None:
    """What ``text`` says ``abbreviation`` stands for, or None."""
    if not abbreviation:
        return None
    said = rf"\b{re.escape(abbreviation)}\b[\"\u201d']?\s+(?:stands? for|is short for)\s+"
    if match := re.search(said, text, re.I):
        rest = text[match.end() :].strip(' "\u201c')
        return re.split(r"[\"\u201d.,;:()]", rest)[0].strip() or None
    letters = abbreviation.upper()
    if len(letters) < 2:
        return None
    # "… linear programming (LP) …": the words just before it, whatever their case.
    for match in re.finditer(rf"\(\s*{re.escape(abbreviation)}\s*\)", text):
        before = [
            m
            for m in re.finditer(r"[A-Za-z][\w-]*", text[: match.start()])
            if m[0].lower() not in _SMALL_WORDS
        ][-len(letters) :]
        if "".join(m[0][0] for m in before).upper() == letters and len(before) == len(letters):
            return text[before[0].start() : before[-1].end()]
    found = [m for m in re.finditer(r"[A-Za-z][\w-]*", text) if m[0].lower() not in _SMALL_WORDS]
    initials = "".join(m[0][0].upper() for m in found)
    capitals = "".join(m[0][0] if m[0][0].isupper() else "\u00b7" for m in found)
    at = capitals.find(letters)
    if at < 0 or initials[at : at + len(letters)] != letters:
        return None
    return text[found[at].start() : found[at + len(letters) - 1].end()]
