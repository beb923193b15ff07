"""Process configuration, read once from ``SLUICE_*`` environment variables.

A `Settings` object is built at start and passed down; nothing reads the environment later.
An invalid value stops the process with one line naming the setting (see `load_settings`).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_worker_concurrency() -> int:
    return max(2, min(32, 2 * (os.cpu_count() or 1)))


class SandboxSetting(enum.StrEnum):
    AUTO = "auto"
    BWRAP = "bwrap"
    PROCESS = "process"
    NONE = "none"


class ContainerType(enum.StrEnum):
    APP = "APP"
    WORKER = "WORKER"
    WORKER_AND_APP = "WORKER_AND_APP"

    @property
    def runs_app(self) -> bool:
        return self is not ContainerType.WORKER

    @property
    def runs_worker(self) -> bool:
        return self is not ContainerType.APP


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


PositiveSeconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLUICE_", case_sensitive=False, extra="ignore", frozen=True
    )

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset starts the embedded server."
    )
    direct_database_url: SecretStr | None = Field(
        default=None,
        description="A direct PostgreSQL URL (not through a transaction-pooling PgBouncer) for "
        "LISTEN, session advisory locks and migrations; unset: SLUICE_DATABASE_URL.",
    )
    database_prepared_statements: bool = Field(
        default=True,
        description="Let frequent statements be prepared on the server; turn off behind a "
        "PgBouncer in transaction mode older than 1.21 (or without max_prepared_statements).",
    )
    data_dir: Path = Field(
        default=Path(".sluice"), description="Where the embedded server keeps its data."
    )
    container_type: ContainerType = ContainerType.WORKER_AND_APP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    migrate_on_start: bool = True

    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    database_timeout_seconds: PositiveSeconds = Field(
        default=3.0,
        description="How long a request waits for a database connection before it is "
        "answered 503 (and a new connection may take to open).",
    )

    lease_ttl_seconds: PositiveSeconds = 30.0
    heartbeat_interval_seconds: PositiveSeconds = 10.0
    poll_interval_seconds: PositiveSeconds = 2.0
    maintenance_interval_seconds: PositiveSeconds = 5.0

    worker_concurrency: int = Field(default_factory=_default_worker_concurrency, ge=1, le=1024)
    worker_grace_seconds: float = Field(default=30.0, ge=0)

    sandbox: SandboxSetting = SandboxSetting.AUTO
    sandbox_max_uses: int = Field(default=100, ge=1)
    step_timeout_seconds: PositiveSeconds = 30.0
    step_cpu_seconds: int = Field(default=30, ge=1)
    step_memory_mb: int = Field(default=512, ge=32)
    step_output_bytes: int = Field(default=1024 * 1024, ge=1024)
    step_max_processes: int = Field(default=64, ge=1)
    step_max_open_files: int = Field(default=256, ge=16)
    template_cpu_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description="CPU time one template render may use; over it, the step fails.",
    )
    template_max_output_chars: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Characters one template may render to (its JSON, for a value).",
    )
    template_memory_mb: int = Field(
        default=64,
        ge=16,
        description="Memory a render process may take beyond its own at start-up.",
    )
    template_processes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Render processes per worker process (started when first needed).",
    )
    cache_dir: Path | None = Field(
        default=None, description="Worker cache; unset: <SLUICE_DATA_DIR>/cache."
    )

    job_max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: PositiveSeconds = 1.0
    retry_max_seconds: PositiveSeconds = 300.0

    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys secrets are encrypted under, comma-separated, newest first; "
        "unset with the embedded database: a key generated into <SLUICE_DATA_DIR>/secrets.key. "
        "Never logged.",
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for project administration; never logged."
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(
        default=64,
        ge=2,
        le=1000,
        description="Deepest nesting of arrays and objects a JSON body may have (400 beyond).",
    )
    max_json_number_digits: int = Field(
        default=1000,
        ge=16,
        le=4000,
        description="Most digits in a row a number of a JSON body may have (400 beyond).",
    )
    http_header_timeout_seconds: PositiveSeconds = Field(
        default=10.0,
        description="How long a client may take to send a request's headers (from its "
        "connection, or its first byte on a kept-alive one) before the connection is closed.",
    )
    http_body_timeout_seconds: PositiveSeconds = Field(
        default=30.0,
        description="How long a client may take to send a request's body before it is "
        "answered 408.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token GET /metrics requires when set; never logged.",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Base URL clients reach the app at (resume URLs); unset: http://host:port.",
    )

    idempotency_window_seconds: PositiveSeconds = Field(
        default=86_400.0,
        description="How long a webhook's Idempotency-Key keeps answering with the run it "
        "started, per flow.",
    )
    max_call_depth: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="How deep call_flow steps may nest: a run this many calls below a "
        "webhook's cannot call another flow.",
    )
    max_live_runs: int = Field(
        default=10_000,
        ge=1,
        description="Live (queued, running, paused) runs a project may have; a webhook over "
        "it is answered 429, a call_flow step over it fails.",
    )
    sync_timeout_seconds: PositiveSeconds = 30.0
    run_timeout_seconds: PositiveSeconds = 3600.0
    paused_run_ttl: PositiveSeconds = Field(
        default=7 * 86_400.0,
        description="Seconds a run may wait on a resume webhook or a child run before TIMEOUT.",
    )
    http_allow_private: bool = False

    metrics_max_flows: int = Field(
        default=100,
        ge=0,
        description="Project/flow pairs a worker process labels its run and step metrics with; "
        "later pairs are counted under project and flow '_other'.",
    )

    otel_enabled: bool | None = Field(
        default=None,
        description="OpenTelemetry tracing (the otel extra): true or false; unset: on when "
        "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. "
        "OTEL_SDK_DISABLED=true turns it off.",
    )
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR)$")
    console_secret: SecretStr | None = Field(
        default=None,
        description="Signs console sessions; set the same value on every app process. Unset: "
        "derived from SLUICE_SECRETS_KEY or SLUICE_ADMIN_API_KEY.",
    )
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    log_format: LogFormat = Field(
        default=LogFormat.TEXT, description="Log lines as text (for a terminal) or JSON objects."
    )
    access_log: bool = Field(default=False, description="One log line per HTTP request.")

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @model_validator(mode="after")
    def _check_relations(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"SLUICE_POOL_MIN_SIZE ({self.pool_min_size}) exceeds "
                f"SLUICE_POOL_MAX_SIZE ({self.pool_max_size})"
            )
        if self.heartbeat_interval_seconds >= self.lease_ttl_seconds:
            raise ValueError(
                f"SLUICE_HEARTBEAT_INTERVAL_SECONDS ({self.heartbeat_interval_seconds}) must be "
                f"shorter than SLUICE_LEASE_TTL_SECONDS ({self.lease_ttl_seconds}), "
                "or leases expire between heartbeats"
            )
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError(
                f"SLUICE_RETRY_BASE_SECONDS ({self.retry_base_seconds}) exceeds "
                f"SLUICE_RETRY_MAX_SECONDS ({self.retry_max_seconds})"
            )
        return self


class SettingsError(Exception):
    """A setting has an invalid value; the message is one line fit for a terminal."""


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and explicit overrides, e.g. CLI flags)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if field:
            name = f"SLUICE_{field.upper()}"
            value = os.environ.get(name)
            secret = any(word in field for word in ("database_url", "api_key", "token", "key"))
            shown = "" if value is None or secret else f" (got {value!r})"
            problems.append(f"{name}{shown}: {message}")
        else:
            problems.append(message)
    return "invalid configuration: " + "; ".join(problems)
