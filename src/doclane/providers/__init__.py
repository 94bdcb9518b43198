"""LLM providers: one small interface, built-ins chosen by settings."""

from __future__ import annotations

from doclane.providers.base import Message, Provider
from doclane.settings import Settings

__all__ = ["Message", "Provider", "open_provider"]


def open_provider(settings: Settings) -> Provider:
    # Only "local" exists so far; the Literal type on the setting rejects anything else.
    from doclane.providers.local import LocalProvider

    return LocalProvider(
        settings.local_model_path,
        settings.local_threads,
        settings.local_context_tokens,
        parallel=settings.worker_concurrency,
    )
