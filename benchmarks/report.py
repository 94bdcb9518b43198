"""docs/benchmarks.md: each benchmark rewrites its own section, between HTML comment markers."""

from __future__ import annotations

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by the script it names.\n"


def write_section(key: str, body: str) -> None:
    """Replace the section marked ``<!-- key -->`` … ``<!-- /key -->`` (or append it)."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = REPORT.read_text() if REPORT.exists() else HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = f"{text.rstrip()}\n\n{section}\n"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)
    print(f"wrote {REPORT}")
