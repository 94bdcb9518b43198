"""The LLM provider interface: capability flags and one async method yielding text pieces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "…"}


class Provider(ABC):
    name: ClassVar[str]
    supports_vision: ClassVar[bool] = False
    uses_local_cpu: ClassVar[bool] = False  # inference runs on this machine's cores

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load what the provider needs (e.g. model weights) before the first request."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what start() acquired."""

    @abstractmethod
    def stream(
        self, messages: list[Message], max_tokens: int, prefix: str = ""
    ) -> AsyncIterator[str]:
        """Yield the answer as it is generated, piece by piece.

        ``prefix`` is the start of an answer an earlier, interrupted run already gave: the model
        continues it and yields only what follows. Closing the iterator early (``aclose()``, or
        cancelling the consumer) stops generation. Raises TransientError for failures worth
        retrying (rate limits, timeouts) and ProcessingError for the others.
        """
