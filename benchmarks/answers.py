"""Answer quality on real public files, end to end: each question is uploaded with its file to a
real `doclane serve` (worker, default local model, default settings) and the streamed answer is
graded in code against a truth the benchmark computes from the file itself.

    .venv/bin/pip install -e '.[bench]'        # the CSVs' packages (also done on demand)
    .venv/bin/python -m benchmarks.answers [--set fresh] [--kind csv-lookup] [--limit 3]

The files are CSVs shipped inside PyPI packages and PDF manuals shipped by Debian documentation
packages; scanned PDFs, screenshots and drawn images are made from them (benchmarks/eval/).
Missing packages are installed first (pip; apt-get as root). The questions are in
benchmarks/eval/questions.toml, the grading rules in benchmarks/eval/grading.py. A second set,
``--set fresh`` (benchmarks/eval/fresh.toml), asks other users' questions about other files, none
of them in the first set: it measures how well what was tuned on the first set generalises. A
full run (no --kind, no --limit) writes its figures into docs/benchmarks.md between the
<!-- answers --> markers (<!-- answers-fresh --> for the fresh set). --rev measures a committed
revision (exported with `git archive`, the working tree left alone) instead of the working tree;
--json keeps every question's answer and grade.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from tests.server import ServerProcess
from tests.wsclient import follow, upload
from websockets.asyncio.client import connect

from benchmarks.eval.documents import Doc, draw, real, scan, screenshot
from benchmarks.eval.grading import Support, Truth, cited_pages, grade
from benchmarks.eval.sources import Source, install_missing
from benchmarks.eval.truth import truth
from benchmarks.report import write_section
from doclane.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETS = {  # name: (questions, section of docs/benchmarks.md)
    "main": (ROOT / "benchmarks" / "eval" / "questions.toml", "answers"),
    "fresh": (ROOT / "benchmarks" / "eval" / "fresh.toml", "answers-fresh"),
}
KINDS = {
    "csv-aggregate": "CSV aggregate",
    "csv-lookup": "CSV lookup",
    "pdf-fact": "PDF fact",
    "scanned-pdf": "scanned PDF",
    "image": "image",
}
PDF_KINDS = {"pdf-fact", "scanned-pdf"}
JOB_TIMEOUT = 300.0  # seconds for one answer, OCR included


@dataclass
class Case:
    kind: str
    file: str
    ask: str
    truth: Truth
    support: Support
    path: Path


@dataclass
class Result:
    kind: str
    file: str
    ask: str
    expected: str
    answer: str
    seconds: float
    wrong: str | None  # why the answer is wrong; None when right
    by_quote: bool  # right only through the source quote doclane appends
    unsupported: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)  # where the truth stands (PDFs)

    @property
    def cites_right(self) -> bool:
        return bool(set(self.cited) & set(self.pages))


def load(name: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    spec = tomllib.loads(SETS[name][0].read_text())
    return spec["files"], spec["questions"]


def sources(files: dict[str, dict[str, Any]]) -> dict[str, Source]:
    return {
        key: Source(key, entry["path"], entry.get("package", ""), entry.get("deb", ""))
        for key, entry in files.items()
        if "path" in entry
    }


def needed(keys: set[str], files: dict[str, dict[str, Any]]) -> set[str]:
    """The files these documents are made from, and the documents themselves."""
    out = set(keys)
    for key in keys:
        entry = files[key]
        parent = entry.get("scan") or entry.get("screenshot") or entry.get("from")
        if parent:
            out.add(parent)
    return out


def make_documents(
    keys: set[str], files: dict[str, dict[str, Any]], folder: Path
) -> dict[str, Doc]:
    found = sources(files)
    docs = {key: real(key, found[key].locate(), folder) for key in keys if key in found}
    for key in sorted(keys - set(found)):
        entry = files[key]
        if "scan" in entry:
            docs[key] = scan(key, docs[entry["scan"]].path, entry["pages"], folder)
        elif "screenshot" in entry:
            docs[key] = screenshot(key, docs[entry["screenshot"]].path, entry["page"], folder)
        else:
            table = docs[entry["from"]].table
            assert table is not None
            docs[key] = draw(key, entry["draw"], table, folder, entry.get("format", "png"))
    return docs


def select(questions: list[dict[str, Any]], kinds: list[str], limit: int) -> list[dict[str, Any]]:
    chosen, seen = [], Counter[str]()
    for question in questions:
        if kinds and question["kind"] not in kinds:
            continue
        if limit and seen[question["kind"]] >= limit:
            continue
        seen[question["kind"]] += 1
        chosen.append(question)
    return chosen


def cases(questions: list[dict[str, Any]], docs: dict[str, Doc]) -> list[Case]:
    out = []
    for question in questions:
        doc = docs[question["file"]]
        found = truth(question, doc)
        out.append(
            Case(
                question["kind"],
                question["file"],
                question["ask"],
                found,
                Support(doc.text, found.figures),
                doc.path,
            )
        )
    return out


async def ask(server: ServerProcess, case: Case) -> tuple[str, float, str | None]:
    """The final answer, the seconds from upload to the end, and an error if there was none."""
    started = time.perf_counter()
    async with connect(server.ws) as ws:
        try:
            job_id = (await upload(server.http, case.path, case.ask))["data"]["job_id"]
        except AssertionError as exc:  # the upload was refused
            return "", 0.0, f"upload refused: {exc}"
        try:
            events = await follow(ws, {job_id}, timeout=JOB_TIMEOUT)
        except TimeoutError:
            async with httpx.AsyncClient(base_url=server.http) as client:
                await client.delete(f"/api/jobs/{job_id}")
            return "", JOB_TIMEOUT, f"no answer within {JOB_TIMEOUT:.0f} s"
    final = events[-1].event
    seconds = time.perf_counter() - started
    if final["type"] == "job_failed":
        return "", seconds, f"job failed: {final.get('error')}"
    return str(final["ai_response"]), seconds, None


def export(rev: str, folder: Path) -> Path:
    """The ``src`` folder of a git revision, unpacked into ``folder`` (the working tree is left
    alone)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def describe_code(rev: str | None) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    if rev:
        return f"commit {git('rev-parse', '--short', rev)}"
    changed = " with uncommitted changes in src/" if git("status", "--porcelain", "src") else ""
    return f"the working tree at {git('rev-parse', '--short', 'HEAD')}{changed}"


async def run(selected: list[Case], rev: str | None, verbose: bool) -> list[Result]:
    settings = Settings()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        # The server's own defaults, not the tests' short answers.
        # One user asking question after question: the per-user upload limit is not measured.
        env = {
            "DOCLANE_MAX_ANSWER_TOKENS": str(settings.max_answer_tokens),
            "DOCLANE_UPLOADS_PER_MINUTE": "100000",
        }
        if rev:  # the server imports that revision's doclane, ahead of the installed one
            env["PYTHONPATH"] = str(export(rev, Path(folder)))
        server = ServerProcess(Path(folder) / "data", env).start()
        try:
            for number, case in enumerate(selected, 1):
                answer, seconds, error = await ask(server, case)
                wrong = error or grade(answer, case.truth)
                own_words = error or grade(without_quote(answer), case.truth)
                result = Result(
                    case.kind,
                    case.file,
                    case.ask,
                    case.truth.describe(),
                    answer,
                    round(seconds, 1),
                    wrong,
                    wrong is None and own_words is not None,
                    case.support.unsupported(answer, case.ask),
                    sorted(cited_pages(answer)) if case.kind in PDF_KINDS else [],
                    sorted(case.truth.pages),
                )
                results.append(result)
                show(number, len(selected), result, verbose)
        finally:
            server.stop()
    return results


def without_quote(answer: str) -> str:
    """The answer without the "> Source, p. N: …" quote doclane adds to a document's answer."""
    return "\n".join(line for line in answer.splitlines() if not line.startswith("> Source"))


def show(number: int, total: int, result: Result, verbose: bool) -> None:
    mark = "right" if result.wrong is None else "WRONG"
    print(f"[{number}/{total}] {mark} {result.kind} {result.file}: {result.ask}", flush=True)
    if result.wrong or result.unsupported or verbose:
        print(f"    expected: {result.expected}")
        if result.wrong:
            print(f"    why: {result.wrong}")
        if result.unsupported:
            print(f"    unsupported numbers: {', '.join(result.unsupported)}")
        print("    answer: " + " ".join(result.answer.split())[:400])


@dataclass
class Row:
    label: str
    questions: int
    right: int
    by_quote: int  # right only through the source quote
    unsupported: int
    cited: int  # PDF answers citing any page
    cited_right: int  # … among them, the truth's page
    seconds: float

    def cells(self) -> str:
        accuracy = f"{100 * self.right / self.questions:.0f}%" if self.questions else "-"
        pages = f"{self.cited_right} of {self.cited}" if self.cited else "-"
        return (
            f"| {self.label} | {self.questions} | {self.right} | {accuracy} | {self.by_quote} | "
            f"{self.unsupported} | {pages} | {self.seconds:.1f} |"
        )


def summarise(results: list[Result]) -> list[Row]:
    def row(label: str, group: list[Result]) -> Row:
        pdf = [r for r in group if r.kind in PDF_KINDS and r.cited]
        seconds = sum(r.seconds for r in group) / len(group) if group else 0.0
        return Row(
            label,
            len(group),
            sum(r.wrong is None for r in group),
            sum(r.by_quote for r in group),
            sum(bool(r.unsupported) for r in group),
            len(pdf),
            sum(r.cites_right for r in pdf),
            seconds,
        )

    rows = [row(label, [r for r in results if r.kind == kind]) for kind, label in KINDS.items()]
    return [r for r in rows if r.questions] + [row("**all**", results)]


HEADER = (
    "| kind | questions | right | accuracy | right only through the quote "
    "| answers with an unsupported number | cited pages right | s per answer |\n"
    "|---|---|---|---|---|---|---|---|"
)


def report(results: list[Result], code: str, write: bool, name: str = "main") -> None:
    table = "\n".join([HEADER, *(row.cells() for row in summarise(results))])
    reasons = Counter(_reason(r) for r in results if r.wrong)
    print()
    print(table)
    print("\nwhy answers were wrong:", dict(reasons.most_common()))
    if not write:
        return
    load_average = os.getloadavg()[0]
    if name == "fresh":
        write_section(
            "answers-fresh",
            f"""### A second set: other files, other wording

`benchmarks/answers.py --set fresh`, {datetime.date.today()}, {code}, {os.cpu_count()} cores
(load average {load_average:.1f} at the end): {len(results)} questions
(`benchmarks/eval/fresh.toml`) about files the first set does not use (other statsmodels and
vega CSVs, among them test files with dates, a wide table and yyyymmdd dates; the libtasn1,
bzip2, Nettle, shared-mime-info and CRC manuals of Debian packages, scans and screenshots of
them; a bulletin table, a five-column table and a filled-in form drawn from real rows), worded
as users word them ("priciest", "fewest", "how much in total", top 3, percentages, distinct
counts, months and years). Graded as above.

{table}
""",
        )
        return
    write_section(
        "answers",
        f"""## Answer accuracy

`benchmarks/answers.py`, {datetime.date.today()}, {code}, {os.cpu_count()} cores (load
average {load_average:.1f} at the end), default settings and model: {len(results)} questions about
real public files (`benchmarks/eval/questions.toml`): CSVs shipped in PyPI packages (statsmodels,
vega_datasets), PDF manuals shipped in Debian documentation packages, scans made from those
manuals' pages, screenshots and drawn pictures (a price list, an invoice, a receipt, a table) of
real CSV rows. Each file is uploaded with its question to a running `doclane serve`; the answer
is graded in code against a truth computed from the file when the benchmark runs. *Right*: the
answer contains the truth (numbers in any usual format or rounding; names as words; naming
another candidate first is wrong). *Right only through the quote*: right answers whose truth
stands only in the source quote doclane appends (`> Source, p. N: …`), not in the model's words.
*Unsupported number*: one that is neither in the document, nor in the question, nor a figure
computed from the document. *Cited pages right*: PDF answers that cite a page, and among them
those citing a page the truth stands on. Goal: ≥ 90% right, no unsupported number.

{table}
""",
    )


def _reason(result: Result) -> str:
    assert result.wrong is not None
    if result.wrong.startswith(("job failed", "upload refused", "no answer")):
        return result.wrong.split(":")[0]
    return "names another candidate first" if "candidate" in result.wrong else "truth missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="main", choices=sorted(SETS), help="which questions")
    parser.add_argument("--kind", action="append", choices=sorted(KINDS), default=[])
    parser.add_argument("--limit", type=int, default=0, help="at most this many per kind")
    parser.add_argument("--json", type=Path, help="write every question's result here")
    parser.add_argument("--no-install", action="store_true", help="do not install packages")
    parser.add_argument("--verbose", action="store_true", help="show every answer")
    parser.add_argument("--truths", action="store_true", help="print the truths and stop")
    parser.add_argument(
        "--rev", help="measure this git revision's code (e.g. HEAD) instead of the working tree"
    )
    args = parser.parse_args()

    files, questions = load(args.set)
    chosen = select(questions, args.kind, args.limit)
    keys = needed({q["file"] for q in chosen}, files)
    if not args.no_install:
        install_missing([s for key, s in sources(files).items() if key in keys])
    with tempfile.TemporaryDirectory() as folder:
        docs = make_documents(keys, files, Path(folder))
        selected = cases(chosen, docs)
        print(f"{len(selected)} questions", flush=True)
        if args.truths:
            for case in selected:
                print(f"{case.kind} {case.file}: {case.ask} -> {case.truth.describe()}")
            return
        code = describe_code(args.rev)
        print(f"measuring {code}", flush=True)
        results = anyio.run(run, selected, args.rev, args.verbose)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    report(results, code, write=not args.kind and not args.limit, name=args.set)


if __name__ == "__main__":
    main()
