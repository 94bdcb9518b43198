"""Reconnect pacing for a relay whose backend went away: log once, retry with backoff."""

from __future__ import annotations

import logging

import anyio

FIRST_WAIT = 0.05  # seconds before the first reconnect: a dropped connection is often a blip
LONGEST_WAIT = 5.0


class Outage:
    """Tracks one relay's outages: a warning when the backend goes away and a line when it is
    back (not one per retry), and a wait between tries that doubles up to ``LONGEST_WAIT``."""

    def __init__(self, backend: str, log: logging.Logger) -> None:
        self._backend = backend
        self._log = log
        self._wait = FIRST_WAIT
        self.down = False

    async def failed(self, exc: BaseException) -> None:
        """The backend failed: log it if it is a new outage, then wait before the next try."""
        if not self.down:
            self.down = True
            self._log.warning(
                "event relay lost %s (%s: %s); reconnecting",
                self._backend,
                type(exc).__name__,
                exc,
            )
        await anyio.sleep(self._wait)
        self._wait = min(self._wait * 2, LONGEST_WAIT)

    def recovered(self) -> None:
        if self.down:
            self.down = False
            self._log.warning("event relay reconnected to %s", self._backend)
        self._wait = FIRST_WAIT
