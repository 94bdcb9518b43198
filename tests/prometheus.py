"""Read a Prometheus exposition the way Prometheus does (parsed, not grepped)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def settled_samples(
    http: httpx.AsyncClient, urls: list[str], done: Callable[[list[Samples]], bool]
) -> list[Samples]:
    """Each URL's samples once ``done`` holds of them all, or as they are after 10 s (for the
    caller's assertions to say what differs). A worker counts a job run once the run has
    ended, which may be just after its last event reached the client."""
    deadline = anyio.current_time() + 10
    while True:
        found = [samples((await http.get(url)).text) for url in urls]
        if done(found) or anyio.current_time() > deadline:
            return found
        await anyio.sleep(0.1)
