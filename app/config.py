"""Settings for the API, the workers and the CLI, read from HISTOCR_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Each engine declares its own settings class beside its spec (models/); they are fields here so
# that one Settings object carries the whole configuration of a process.
from models.openai_spec import OpenAISettings
from models.registry import engine_spec
from models.tesseract import TesseractSettings
from models.transformers_engine import TransformersSettings
from models.vllm_engine import VLLMSettings

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-api-key", "sk-xxx", "xxx", "todo"}


class Settings(BaseSettings):
    """One settings object, shared by `app/`, `workers/` and the CLI."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_", env_file=".env", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    storage_dir: Path | None = None

    render_dpi: int = Field(default=300, ge=50, le=1200)
    max_upload_mb: float = Field(default=200.0, gt=0)
    #: One upload request in all (every file and field), checked on Content-Length and counted
    #: while the body streams in; set it at least to max_upload_mb.
    max_request_mb: float = Field(default=1000.0, gt=0)
    max_files_per_upload: int = Field(default=100, ge=1)
    #: Form fields (not files) in one upload request; the upload forms have at most three.
    max_form_fields: int = Field(default=50, ge=1)
    #: Any other request body (JSON, a login form): larger ones are a 413 before any route.
    max_body_kb: int = Field(default=1024, ge=1)
    max_pages_per_document: int = Field(default=2000, ge=1)
    max_image_pixels: int = Field(default=200_000_000, ge=1_000_000)
    preview_max_side: int = Field(default=1600, ge=200)

    stage_max_attempts: int = Field(default=3, ge=1)
    #: A running stage or ingest whose worker sent no heartbeat (every quarter lease) for this
    #: long is taken back; with the sweep below, a dead worker's pages run again within ~40 s.
    stage_lease_s: float = Field(default=30.0, gt=0)
    stage_requeue_after_s: float = Field(default=600.0, gt=0)
    recovery_interval_s: float = Field(default=10.0, gt=0)

    embedded_worker: bool | None = None
    #: Processes of the cpu queue's worker that `serve` starts (ingest, Tesseract, rules).
    embedded_worker_concurrency: int = Field(default=2, ge=1)
    #: Tasks the llm queue's worker runs at once, as threads of one process: each task's pages
    #: are requests in flight, all under the process's HISTOCR_OPENAI_MAX_IN_FLIGHT.
    llm_worker_concurrency: int = Field(default=8, ge=1)
    #: Scheduling priority of worker processes (and the OCR they run), as `nice` takes it: on a
    #: machine that also serves the API, OCR yields the CPU to requests; 0 keeps it equal.
    worker_nice: int = Field(default=10, ge=0, le=19)

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    # Accounts (README "Accounts and security"). Authentication is required for every request
    # when this is true or when the server listens on anything but loopback; otherwise a server
    # with no user yet runs in single-user mode for loopback clients.
    auth_required: bool = False
    #: Mark the session cookie `Secure` (None: when the request came over HTTPS).
    cookie_secure: bool | None = None
    #: Requests per minute one API token may make (per web process).
    token_rate_per_minute: int = Field(default=1200, ge=1)
    #: Failed logins per 5 minutes from one address or for one user name, before a 429.
    login_failures_per_5_min: int = Field(default=10, ge=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'histocr.db').resolve()}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_broker_url(self) -> str:
        """The Celery broker, defaulting to kombu's filesystem transport (no server needed)."""
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        """Where the filesystem transport keeps its messages."""
        return (self.data_dir / "broker").resolve()

    @property
    def image_cache_dir(self) -> Path:
        """Page images encoded for mLLM endpoints (a cache: safe to delete)."""
        return (self.data_dir / "cache" / "images").resolve()

    @property
    def resolved_storage_dir(self) -> Path:
        """Root of the content-addressed file store."""
        return (self.storage_dir or self.data_dir / "files").resolve()

    @property
    def uses_embedded_broker(self) -> bool:
        """True when the broker needs no server (filesystem transport)."""
        return self.resolved_broker_url.startswith("filesystem")

    @property
    def runs_embedded_worker(self) -> bool:
        """Whether `histocr serve` should start a worker of its own."""
        if self.embedded_worker is not None:
            return self.embedded_worker
        return self.uses_embedded_broker

    @property
    def max_upload_bytes(self) -> int:
        """The upload size limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_request_bytes(self) -> int:
        """The size limit of one upload request in bytes."""
        return int(self.max_request_mb * 1024 * 1024)

    tesseract: TesseractSettings = Field(default_factory=TesseractSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    transformers: TransformersSettings = Field(default_factory=TransformersSettings)
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)

    def engine_settings(self, engine: str) -> BaseSettings | None:
        """This machine's settings for an engine (None for an engine that has none)."""
        own = getattr(self, engine, None)
        if isinstance(own, BaseSettings):
            return own
        spec = engine_spec(engine)
        return spec.settings() if spec.settings is not None else None

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> "Settings":
        """Refuse a placeholder API key outside development, where it would fail later."""
        keys = {"HISTOCR_OPENAI_API_KEY": self.openai.api_key}
        for name, endpoint in self.openai.endpoints.items():  # HISTOCR_ENDPOINTS__<NAME>__…
            keys[f"HISTOCR_ENDPOINTS__{name.upper()}__API_KEY"] = endpoint.api_key
        for variable, secret in keys.items():
            key = secret.get_secret_value() if secret else ""
            if self.environment != "development" and key.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{variable} is a placeholder; set the real key")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
