"""kill -9 the embedded server 20 times while it works: no job lost, none completed twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crashloop import crash_loop

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_twenty_kills_lose_nothing(tmp_path: Path) -> None:
    report = await crash_loop(tmp_path / "data", kills=20, jobs=6)
    assert report.jobs == 6
    assert report.lost == 0
    assert report.duplicated_completions == 0
    assert report.seq_mismatches == 0
    assert report.reruns >= 3  # the kills did interrupt jobs mid-run
