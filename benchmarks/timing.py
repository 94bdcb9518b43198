"""Timing for benchmarks: every figure is set against a baseline measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_times(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each run; the runs take turns within every repeat, so a slow spell of the
    machine hits them all alike instead of skewing the ratio."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best
