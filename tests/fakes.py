"""A scripted LLM provider: implements the Provider interface, for testing what the worker
does around the model (retries, time limits, cancellation, resumption) on cue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anyio

from doclane.errors import DoclaneError
from doclane.providers import Message, Provider


@dataclass
class Step:
    """One call's behaviour: raise ``error`` before any output, or yield ``pieces``."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " world", "."])
    delay: float = 0.0  # between pieces
    error: DoclaneError | None = None


class ScriptedProvider(Provider):
    name = "scripted"

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.prefixes: list[str] = []  # the prefix each call was given
        self.messages: list[list[Message]] = []  # what each call was given to read
        self.closed_at: list[float] = []  # when each call's stream was closed

    async def stream(
        self,
        messages: list[Message],
        max_tokens: int,
        prefix: str = "",
        images: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        step = self.steps.pop(0) if self.steps else Step()
        self.prefixes.append(prefix)
        self.messages.append(messages)
        try:
            if step.error is not None:
                raise step.error
            for piece in step.pieces:
                await anyio.sleep(step.delay)
                yield piece
        finally:
            self.closed_at.append(anyio.current_time())
