"""Runtime configuration, read once from the environment and passed down."""

from __future__ import annotations

import functools
import ipaddress
import logging
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class AuthMode(StrEnum):
    REQUIRED = "required"
    DISABLED = "disabled"


class Settings(BaseSettings):
    """Every setting ModelQL reads; environment variables are `MODELQL_<NAME>` unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="MODELQL_", env_file=".env", extra="ignore", env_parse_none_str="none"
    )

    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MODELQL_DATABASE_URL"),
        description="External PostgreSQL; unset starts an embedded cluster in data_dir.",
    )
    data_dir: Path = Path(".modelql")
    pgdata: Path | None = Field(default=None, description="Embedded cluster data directory.")
    embedded_backend: Literal["auto", "wheel", "system"] = "auto"
    artifact_root: Path | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    auto_migrate: bool | None = Field(
        default=None, description="Migrate on start; default: yes when embedded, no otherwise."
    )
    train_demo_if_empty: bool = True

    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    """Kept connections, and more opened only for a burst (each is opened and closed again:
    a connection costs PostgreSQL a process and the service a handshake)."""
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)

    max_batch_size: int = Field(default=1_000, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_page_size: int = Field(default=100, ge=1)
    max_query_depth: int = Field(default=15, ge=1)
    max_query_tokens: int = Field(default=3_000, ge=10)
    max_query_length: int = Field(default=65_536, ge=100)
    max_query_aliases: int = Field(default=50, ge=1)
    execution_timeout_s: float = Field(default=15.0, gt=0)
    query_cache_size: int = Field(default=256, ge=1)
    direct_execution: bool = Field(
        default=True,
        description="Run the prediction mutations without graphql-core's executor (same answers).",
    )
    pipeline_max_rows: int = Field(
        default=2_000, ge=1, description="Most rows one group commit scores and stores."
    )
    pipeline_groups_in_flight: int = Field(
        default=2,
        ge=1,
        description="Groups of one version scored and stored at once (the next leaves while one "
        "commits).",
    )
    pipeline_max_wait_ms: float = Field(
        default=0.0, ge=0, description="Wait for more requests before a group leaves; 0: none."
    )
    inference_cache_rows: int = Field(
        default=10_000,
        ge=0,
        description="Scored rows kept per process (all versions together) so that a repeated "
        "input skips the estimator, for versions worth it; 0: no inference cache.",
    )
    gc_freeze: bool = Field(
        default=True,
        description="Leave start-up objects out of garbage collections once serving "
        "(modelql/garbage_collection.py).",
    )
    catalogue_max_staleness_s: float = Field(
        default=1.0, gt=0, description="Longest a moved alias or revoked key may go unseen."
    )
    persisted_queries: Literal["off", "on", "only"] = Field(
        default="on",
        description="Automatic persisted queries (on), none (off), or only the documents of "
        "persisted_queries_file (only).",
    )
    persisted_queries_file: Path | None = Field(
        default=None, description="Allow-list: an Apollo persisted-query manifest or a map."
    )
    persisted_queries_max: int = Field(
        default=10_000, ge=1, description="Documents registered by clients kept per process."
    )
    response_cache: bool = Field(
        default=True, description="Keep error-free query answers until what they read changes."
    )
    response_cache_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0, description="Bound of the kept answers (JSON bytes)."
    )
    response_cache_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest an answer is kept (changes made behind ModelQL's back, by SQL).",
    )
    cache_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: replicas share kept answers there (for at most 1 s).",
    )
    cache_prefix: str = Field(
        default="modelql:cache:", description="Prefix of every Redis key the shared cache writes."
    )
    cache_timeout_ms: float = Field(
        default=100.0,
        gt=0,
        description="Longest wait for Redis; past it, answers come from memory for a second.",
    )

    drift_psi_threshold: float = Field(
        default=0.2, gt=0, description="A feature drifted when its PSI exceeds this."
    )
    drift_min_sample: int = Field(
        default=30, ge=1, description="Fewer live predictions than this: no drift score."
    )
    drift_max_sample: int = Field(
        default=10_000, ge=1, description="Most recent predictions a drift report compares."
    )
    estimation_reference_size: int = Field(
        default=5_000,
        ge=1,
        description="Most recent labelled predictions an estimate calibrates on (ESTIMATED).",
    )
    estimation_min_reference: int = Field(
        default=100,
        ge=1,
        description="Fewer labelled predictions in the reference window: no estimate.",
    )
    estimation_max_sample: int = Field(
        default=100_000, ge=1, description="Most recent predictions an estimate reads."
    )
    partition_interval: Literal["day", "week"] = Field(
        default="week", description="The time one partition of the predictions covers."
    )
    job_source_dir: Path | None = Field(
        default=None,
        description="Directory prediction jobs may read server-side files from; unset: none.",
    )
    job_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    job_chunk_rows: int = Field(default=10_000, ge=1, le=100_000)
    job_part_rows: int = Field(default=100_000, ge=1)
    job_workers: int = Field(
        default=1, ge=0, description="Job tasks a process works at once; 0: this process none."
    )
    job_heartbeat_timeout_s: float = Field(default=30.0, gt=0)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Drop partitions of predictions entirely older than this; unset: keep all.",
    )
    job_retention_days: int | None = Field(
        default=7,
        ge=1,
        description="Drop the uploaded files and parts of prediction jobs finished longer ago "
        "(the jobs and their predictions stay); none: keep them.",
    )
    archive_url: str | None = Field(
        default=None,
        min_length=1,
        description="Archive each partition to Parquet here (a directory or an S3-compatible "
        "URL) before it is dropped; one whose archive fails is kept.",
    )
    alert_evaluation_s: float = Field(
        default=15.0,
        gt=0,
        description="Alert rules are evaluated once per this period (by one replica).",
    )
    alert_allow_private_webhooks: bool = Field(
        default=False,
        description="Let alert webhooks reach loopback and private addresses.",
    )
    shadow_queue: int = Field(
        default=10_000,
        ge=0,
        description="Primary rows waiting for shadow scoring per process; beyond, requests "
        "are shed (not shadowed, counted); 0: no shadow scoring.",
    )
    shadow_drain_s: float = Field(
        default=10.0, ge=0, description="Longest a graceful stop waits for the shadow queue."
    )
    subscriber_queue_size: int = Field(
        default=100, ge=1, description="Messages a subscription may fall behind before it ends."
    )
    max_subscriptions_per_connection: int = Field(default=10, ge=1)
    max_subscriptions_per_key: int = Field(
        default=50, ge=1, description="Open subscriptions one API key may hold in one process."
    )

    auth_mode: AuthMode = AuthMode.DISABLED
    rate_limit: str = Field(
        default="100/second", description="Default budget per API key; empty: unlimited."
    )
    rate_limit_storage: str = Field(
        default="memory://", description="memory:// (per process) or redis://host:6379/0."
    )
    insecure: bool = Field(
        default=False, description="Serve without auth off loopback and for any Host header."
    )
    graphiql: bool | None = Field(default=None, description="Default: on outside production.")
    introspection: bool | None = Field(default=None, description="Default: on outside production.")

    metrics: bool = Field(default=True, description="Serve Prometheus metrics on /metrics.")

    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON lines; default: when stderr is not a terminal."
    )

    @property
    def embedded(self) -> bool:
        """True when ModelQL runs its own PostgreSQL cluster."""
        return self.database_url is None

    @property
    def pgdata_dir(self) -> Path:
        return self.pgdata or self.data_dir / "pgdata"

    @property
    def artifact_dir(self) -> Path:
        return self.artifact_root or self.data_dir / "artifacts"

    @property
    def should_auto_migrate(self) -> bool:
        return self.embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def loopback_hosts_only(self) -> bool:
        """Without authentication (and without --insecure), only loopback Host headers."""
        return self.auth_mode is AuthMode.DISABLED and not self.insecure

    @property
    def graphiql_enabled(self) -> bool:
        return (
            self.environment is not Environment.PRODUCTION
            if self.graphiql is None
            else self.graphiql
        )

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is None:
            return self.environment is not Environment.PRODUCTION
        return self.introspection


class UnsafeExposureError(RuntimeError):
    """Serving without authentication on an address other machines can reach."""


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Cached: the middleware asks for every request's client address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse auth mode `disabled` off loopback unless `insecure`, which logs a warning."""
    if settings.auth_mode is AuthMode.REQUIRED or is_loopback(settings.host):
        return
    if not settings.insecure:
        raise UnsafeExposureError(
            f"Refusing to serve on {settings.host} with MODELQL_AUTH_MODE=disabled: anyone who "
            "can reach it could predict and read every stored prediction. Set "
            "MODELQL_AUTH_MODE=required and create keys with `modelql keys create`, or pass "
            "--insecure if this network is trusted."
        )
    logging.getLogger("modelql").warning(
        "serving on %s WITHOUT authentication (--insecure)", settings.host
    )
