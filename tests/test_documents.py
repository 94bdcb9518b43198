"""Extraction on real files: PDF pages, CSV profiles with exact figures, image facts, sniffing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from doclane.documents import extract
from doclane.documents.pdf import clean_text
from doclane.documents.sniff import sniff
from doclane.documents.warmup import PDF_LINE, one_line_pdf, warm_up
from doclane.errors import DocumentError, EmptyFile, UnsupportedFileType
from doclane.jobs import DocumentKind
from tests.documents import inspect_upload, make_csv, make_pdf, make_png, make_report_pdf, png_bytes


def no_progress(done: int, total: int, stage: str) -> None:
    pass


def test_pdf_pages_keep_their_numbers(tmp_path: Path) -> None:
    pdf = make_report_pdf(tmp_path / "r.pdf", page_count=4)
    reports: list[tuple[int, int, str]] = []
    document = extract(pdf, DocumentKind.PDF, lambda *a: reports.append(a), lambda: False)
    assert [page.number for page in document.pages] == [1, 2, 3, 4]
    assert "4.2 million" in document.pages[1].text
    assert "4 pages" in document.facts
    assert (4, 8, "Reading page 4 of 4") in reports  # the text pass: half the work
    assert reports[-1] == (8, 8, "Document read")


def test_pdf_without_text_says_so(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "blank.pdf", [[], []])
    document = extract(pdf, DocumentKind.PDF, no_progress, lambda: False)
    assert document.pages == []
    assert "No text" in document.facts


def test_clean_text_rejoins_hyphens_and_ligatures() -> None:
    assert clean_text("docu\ufffe\r\nment ﬁle") == "document file"


def test_csv_profile_is_exact(tmp_path: Path) -> None:
    csv = make_csv(tmp_path / "orders.csv", rows=1234)
    document = extract(csv, DocumentKind.CSV, no_progress, lambda: False)
    assert "1,234 rows, 3 columns" in document.facts
    total = sum(i * 2.5 for i in range(1, 1235))
    assert f"sum {total:,}" in document.facts
    assert "region (VARCHAR)" in document.facts
    assert "most common: " in document.facts
    assert "min 1, max 1,234" in document.facts


def test_csv_semicolons_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_bytes("name;city;score\nJosé;Málaga;3\nZoë;Köln;4\n".encode("latin-1"))
    document = extract(path, DocumentKind.CSV, no_progress, lambda: False)
    assert "2 rows, 3 columns" in document.facts
    assert "Málaga" in document.facts and "latin-1" in document.facts


def test_image_facts(tmp_path: Path) -> None:
    image = make_png(tmp_path / "a.webp", size=(640, 480), fmt="WEBP")
    assert inspect_upload(image) is DocumentKind.IMAGE
    document = extract(image, DocumentKind.IMAGE, no_progress, lambda: False)
    assert "WEBP" in document.facts and "640 x 480" in document.facts


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.4\n...", DocumentKind.PDF),
        (png_bytes(), DocumentKind.IMAGE),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", DocumentKind.IMAGE),
        (b"GIF89a\x01\x00", DocumentKind.IMAGE),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", DocumentKind.IMAGE),
        (b"a,b,c\n1,2,3\n", DocumentKind.CSV),
        ("name;ville\nJosé;Orléans\n".encode("cp1252"), DocumentKind.CSV),
        (b"BMW,Audi\n1,2\n", DocumentKind.CSV),  # starts with "B", not a bitmap
        (b"MZ\x90\x00\x03\x00\x00\x00", None),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), None),
        (os.urandom(4096), None),
    ],
)
def test_sniff(head: bytes, kind: DocumentKind | None) -> None:
    assert sniff(head) is kind


def test_inspect_rejects_empty_and_unknown(tmp_path: Path) -> None:
    empty = tmp_path / "e.pdf"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFile):
        inspect_upload(empty)
    junk = tmp_path / "j.pdf"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(UnsupportedFileType):
        inspect_upload(junk)
    fake = tmp_path / "f.pdf"
    fake.write_bytes(b"%PDF-1.7\nnot really")
    with pytest.raises(DocumentError):
        inspect_upload(fake)


def test_running_headers_and_footers_are_dropped(tmp_path: Path) -> None:
    pages = [
        ["ACME CONFIDENTIAL", f"Body text of section {n} about turbines.", f"Page {n} of 5"]
        for n in range(1, 6)
    ]
    pages[2].insert(2, "A unique line on page three.")
    document = extract(
        make_pdf(tmp_path / "h.pdf", pages), DocumentKind.PDF, no_progress, lambda: False
    )
    text = "\n".join(page.text for page in document.pages)
    assert "CONFIDENTIAL" not in text and "of 5" not in text
    assert "Body text of section 4 about turbines." in document.pages[3].text
    assert "A unique line on page three." in document.pages[2].text


@pytest.mark.parametrize(("delimiter", "name"), [("\t", "data.tsv"), ("|", "data.txt")])
def test_other_delimiters(tmp_path: Path, delimiter: str, name: str) -> None:
    path = tmp_path / name
    rows = ["city|people", "Oslo|709000", "Bergen|291000", "Tromsø|77000"]
    path.write_text("\n".join(row.replace("|", delimiter) for row in rows) + "\n")
    assert inspect_upload(path) is DocumentKind.CSV
    facts = extract(path, DocumentKind.CSV, no_progress, lambda: False).facts
    assert "3 rows, 2 columns" in facts and "sum 1,077,000" in facts


def test_a_long_pdf_is_read_in_parallel_in_page_order(tmp_path: Path) -> None:
    lines = [[f"This is page {n}.", f"Its number is {n}."] for n in range(1, 151)]
    pdf = make_pdf(tmp_path / "long.pdf", lines)
    reports: list[tuple[int, int, str]] = []
    document = extract(pdf, DocumentKind.PDF, lambda *a: reports.append(a), lambda: False)
    assert [page.number for page in document.pages] == list(range(1, 151))
    assert all(f"This is page {p.number}." in p.text for p in document.pages)
    done = [d for d, _, _ in reports]
    assert done == sorted(done) and reports[-1] == (300, 300, "Document read")
    # Stopped early: what was read is kept, in order, and nothing after a gap.
    stopped = extract(pdf, DocumentKind.PDF, lambda *a: None, lambda: True)
    assert [p.number for p in stopped.pages] == list(range(1, len(stopped.pages) + 1))


def test_a_spare_readers_warm_up_reads_through_the_jobs_code(tmp_path: Path) -> None:
    """The warm-up's errors are swallowed in a spare (it would only start cold), so check here
    that both its documents read, and that its hand-written PDF has the text layer it says."""
    warm_up()
    pdf = tmp_path / "line.pdf"
    pdf.write_bytes(one_line_pdf(PDF_LINE))
    document = extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False)
    assert PDF_LINE.decode() in document.pages[0].text
