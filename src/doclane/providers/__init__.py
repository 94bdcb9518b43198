"""LLM providers: one small interface, built-ins chosen by settings."""

from __future__ import annotations

from doclane.providers.base import Message, Provider
from doclane.settings import Settings

__all__ = ["Message", "Provider", "open_provider"]


def open_provider(settings: Settings) -> Provider:
    """The provider the settings name; each is imported only when chosen."""
    if settings.llm_provider == "openai":
        from doclane.providers.openai import OpenAIProvider

        key = settings.openai_api_key
        return OpenAIProvider(
            settings.openai_base_url,
            key.get_secret_value() if key else None,
            settings.openai_model,
            settings.openai_timeout_seconds,
            context_tokens=settings.openai_context_tokens,
            vision=settings.openai_vision,
        )
    from doclane.providers.local import LocalProvider

    return LocalProvider(
        settings.local_model_path,
        settings.local_threads,
        settings.local_context_tokens,
        parallel=settings.worker_concurrency,
    )
