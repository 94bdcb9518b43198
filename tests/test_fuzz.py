"""Fuzz the HTTP API from its own OpenAPI schema with schemathesis: no input yields a 5xx.

The CLI runs against a real server (schemathesis' pytest plugin does not support this pytest),
in its deterministic mode with a bounded number of examples, so the run is deterministic and short.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server import ServerProcess

pytestmark = pytest.mark.slow


def test_no_server_errors(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server({"DOCLANE_RUN_WORKER": "false"})
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.http}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--generation-deterministic",
            "--request-timeout",
            "30",
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    tally = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert tally is not None and int(tally[1]) >= 100 and tally[1] == tally[2], result.stdout
