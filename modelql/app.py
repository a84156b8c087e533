"""The application factory: FastAPI with the GraphQL router, health probes and a lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.routing import WebSocketRoute

from modelql import metrics, schema_migrations
from modelql.garbage_collection import freeze_startup_objects, thaw
from modelql.graph.context import GraphDependencies
from modelql.graph.endpoint import create_graphql_endpoint
from modelql.graph.errors import (
    DATABASE_UNAVAILABLE_MESSAGE,
    AuthenticationError,
    DatabaseUnavailableError,
    ErrorCode,
    RateLimitedError,
)
from modelql.graph.limits import Limits
from modelql.graph.persisted_queries import (
    ManifestError,
    PersistedQueries,
    PersistedQueryError,
    PersistedQueryMode,
    load_manifest,
)
from modelql.graph.response_cache import ResponseCache
from modelql.graph.schema import SchemaOptions, build_schema
from modelql.live import live_feeds
from modelql.metrics import PrometheusCacheMetrics, PrometheusPredictionMetrics
from modelql.middleware import (
    BodySizeLimitMiddleware,
    LoopbackHostMiddleware,
    RequestTrackingMiddleware,
    graphql_error_body,
)
from modelql.models.artifacts import ArtifactStore
from modelql.persistence.database import create_engine, create_sessionmaker, libpq_url
from modelql.persistence.notifications import (
    CATALOGUE_CHANNEL,
    KEYS_CHANNEL,
    OUTCOMES_CHANNEL,
    PREDICTIONS_CHANNEL,
    Listener,
)
from modelql.services.api_keys import KeyCache
from modelql.services.catalogue import Catalogue
from modelql.services.catalogue_changes import CatalogueChanges
from modelql.services.comparison import VersionComparisons
from modelql.services.drift import DriftPolicy
from modelql.services.errors import ModelUnavailableError
from modelql.services.freshness import Freshness
from modelql.services.generations import Dataset, Generations
from modelql.services.inference import ModelCache
from modelql.services.outcomes import OutcomeRecorder
from modelql.services.prediction_pipeline import PredictionPipelines
from modelql.services.predictions import PredictionService
from modelql.services.rate_limits import RateLimiter
from modelql.settings import AuthMode, Settings

logger = logging.getLogger("modelql")
STATIC_DIR = Path(__file__).parent / "static"


class NotMigratedError(RuntimeError):
    """The database is not at the migration head and migrating was not allowed."""


@dataclass
class Runtime:
    """What the lifespan builds and the probes inspect."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    catalogue: Catalogue
    model_cache: ModelCache
    pipelines: PredictionPipelines
    prediction_metrics: PrometheusPredictionMetrics | None = None


def persisted_queries(settings: Settings) -> PersistedQueries:
    """The persisted-query mode; its allow-list read from the file (ManifestError if the file
    is unusable, or missing in mode `only`)."""
    mode = PersistedQueryMode(settings.persisted_queries)
    if mode is PersistedQueryMode.ONLY and settings.persisted_queries_file is None:
        raise ManifestError("MODELQL_PERSISTED_QUERIES=only needs MODELQL_PERSISTED_QUERIES_FILE.")
    file = settings.persisted_queries_file
    listed = load_manifest(file) if file is not None else {}
    return PersistedQueries(mode, listed, max_registered=settings.persisted_queries_max)


def schema_options(settings: Settings) -> SchemaOptions:
    return SchemaOptions(
        query_cache_size=settings.query_cache_size,
        max_query_depth=settings.max_query_depth,
        max_query_tokens=settings.max_query_tokens,
        max_query_aliases=settings.max_query_aliases,
        introspection=settings.introspection_enabled,
    )


async def ensure_migrated(engine: AsyncEngine, database_url: str, *, migrate: bool) -> None:
    """Bring the database to head when allowed; otherwise refuse to run on an old schema."""
    head = schema_migrations.head_revision()
    current = await schema_migrations.current_revision(engine)
    if current == head:
        return
    if not migrate:
        raise NotMigratedError(
            f"The database is at migration {current or 'none'}, the code needs {head}. "
            "Run `modelql migrate` (or set MODELQL_AUTO_MIGRATE=true)."
        )
    logger.info("migrating database from %s to %s", current or "empty", head)
    await asyncio.to_thread(schema_migrations.upgrade_to_head, database_url)


async def load_default_versions(runtime: Runtime) -> list[str]:
    """Load every model's default version (at start-up, so the first prediction does not pay
    for it; by the readiness probe, to see they still load); returns the ids that failed."""
    async with runtime.sessionmaker() as session:
        versions = await runtime.catalogue.default_versions(session)
    unloadable = []
    for version in versions:
        try:
            await runtime.model_cache.predictor(version)
        except ModelUnavailableError:  # the model cache has logged why, loudly
            unloadable.append(str(version.id))
    return unloadable


def create_app(settings: Settings, *, database_url: str) -> FastAPI:
    """The ASGI application; `database_url` is the external or the started embedded database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        settings.artifact_dir.mkdir(parents=True, exist_ok=True)
        model_cache = ModelCache(ArtifactStore(settings.artifact_dir))
        sessionmaker = create_sessionmaker(engine)
        listener = Listener(libpq_url(database_url))

        def freshness() -> Freshness:
            return Freshness(
                max_staleness_s=settings.catalogue_max_staleness_s,
                listening_since=lambda: listener.connected_since,
            )

        catalogue = Catalogue(freshness())
        keys = KeyCache(sessionmaker, freshness())
        generations = Generations(listening_since=lambda: listener.connected_since)
        listener.on(CATALOGUE_CHANNEL, lambda _model: catalogue.forget_routes())
        listener.on(CATALOGUE_CHANNEL, lambda _model: generations.changed(Dataset.CATALOGUE))
        listener.on(PREDICTIONS_CHANNEL, lambda _commits: generations.changed(Dataset.STORE))
        listener.on(OUTCOMES_CHANNEL, lambda _: generations.changed(Dataset.STORE))
        listener.on(KEYS_CHANNEL, lambda _name: keys.forget())
        listener.on_connect(catalogue.forget_routes)
        listener.on_connect(keys.forget)
        listener.on_connect(generations.everything_changed)
        prediction_metrics = PrometheusPredictionMetrics() if settings.metrics else None
        feeds = live_feeds(settings, sessionmaker, listener, keys)
        pipelines = PredictionPipelines(
            engine=engine,
            model_cache=model_cache,
            max_group_rows=settings.pipeline_max_rows,
            max_wait_s=settings.pipeline_max_wait_ms / 1000,
            groups_in_flight=settings.pipeline_groups_in_flight,
            observer=prediction_metrics,
            on_commit=lambda: generations.changed(Dataset.STORE),
        )
        runtime = Runtime(
            engine=engine,
            sessionmaker=sessionmaker,
            catalogue=catalogue,
            model_cache=model_cache,
            pipelines=pipelines,
            prediction_metrics=prediction_metrics,
        )
        try:
            await ensure_migrated(engine, database_url, migrate=settings.should_auto_migrate)
            await listener.start()
            await load_default_versions(runtime)
            app.state.runtime = runtime
            app.state.graph_dependencies = GraphDependencies(
                sessionmaker=sessionmaker,
                catalogue=catalogue,
                predictions=PredictionService(
                    sessionmaker=sessionmaker,
                    catalogue=catalogue,
                    pipelines=pipelines,
                    max_batch_size=settings.max_batch_size,
                    observer=prediction_metrics,
                ),
                outcomes=OutcomeRecorder(
                    sessionmaker=sessionmaker,
                    catalogue=catalogue,
                    generations=generations,
                    max_batch_size=settings.max_batch_size,
                ),
                catalogue_changes=CatalogueChanges(
                    sessionmaker=sessionmaker, catalogue=catalogue, generations=generations
                ),
                keys=keys,
                comparisons=VersionComparisons(
                    sessionmaker=sessionmaker, catalogue=catalogue, model_cache=model_cache
                ),
                limits=Limits(max_page_size=settings.max_page_size),
                feeds=feeds,
                auth_required=settings.auth_mode is AuthMode.REQUIRED,
                rate_limiter=RateLimiter(
                    settings.rate_limit_storage, default=settings.rate_limit or None
                ),
                max_batch_size=settings.max_batch_size,
                drift_policy=DriftPolicy(
                    psi_threshold=settings.drift_psi_threshold,
                    min_sample=settings.drift_min_sample,
                    max_sample=settings.drift_max_sample,
                ),
            )
            if settings.response_cache:
                endpoint.responses = ResponseCache(
                    schema=schema._schema,
                    prepare=schema.documents,
                    generations=generations,
                    max_bytes=settings.response_cache_max_bytes,
                    ttl_s=settings.response_cache_ttl_s,
                    max_staleness_s=settings.catalogue_max_staleness_s,
                    plan_cache_size=settings.query_cache_size,
                    observer=PrometheusCacheMetrics() if settings.metrics else None,
                )
            thresholds = freeze_startup_objects() if settings.gc_freeze else None
            try:
                yield
                await pipelines.drain()
            finally:
                if thresholds is not None:
                    thaw(thresholds)
        finally:
            await listener.stop()
            await feeds.predictions.stop()
            await feeds.catalogue.stop()
            model_cache.close()
            await engine.dispose()
            metrics.process_exiting()

    app = FastAPI(
        title="ModelQL",
        summary="GraphQL over a model catalogue and a prediction store.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    persisted = persisted_queries(settings)
    schema = build_schema(replace(schema_options(settings), allowed_documents=persisted.allowed))
    endpoint = create_graphql_endpoint(
        schema,
        persisted=persisted,
        graphiql=settings.graphiql_enabled,
        execution_timeout_s=settings.execution_timeout_s,
        max_query_length=settings.max_query_length,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        ide_assets_url="/static/vendor/",
        direct_execution=settings.direct_execution,
        plan_cache_size=settings.query_cache_size,
    )
    app.add_route("/graphql", endpoint, methods=["GET", "POST"])
    app.router.routes.append(WebSocketRoute("/graphql", endpoint))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
    app.add_exception_handler(RateLimitedError, _rate_limited)
    app.add_exception_handler(PersistedQueryError, _persisted_query_refused)
    app.add_api_route("/dashboard", dashboard, methods=["GET"], include_in_schema=False)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    if settings.metrics:
        app.add_api_route("/metrics", metrics.metrics_endpoint, methods=["GET"])
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.loopback_hosts_only:
        app.add_middleware(LoopbackHostMiddleware)
    observe = metrics.RequestMetrics().observe if settings.metrics else None
    app.add_middleware(RequestTrackingMiddleware, observe=observe)
    return app


def graphql_error_response(
    message: str, code: ErrorCode, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An HTTP error shaped like a GraphQL response, for failures before GraphQL runs."""
    return JSONResponse(
        graphql_error_body(message, str(code)), status_code=status_code, headers=headers
    )


async def _unauthenticated(request: Request, error: Exception) -> JSONResponse:
    request.state.request_log.outcome = "unauthenticated"
    return graphql_error_response(
        str(error), ErrorCode.UNAUTHENTICATED, 401, {"WWW-Authenticate": 'Bearer realm="modelql"'}
    )


async def _rate_limited(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RateLimitedError)
    request.state.request_log.outcome = "rate_limited"
    return graphql_error_response(
        str(error),
        ErrorCode.RATE_LIMITED,
        429,
        {"Retry-After": str(error.retry_after_s)},
    )


async def _persisted_query_refused(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PersistedQueryError)
    request.state.request_log.outcome = "error" if error.status == 200 else "rejected"
    return graphql_error_response(str(error), error.code, error.status)


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    return graphql_error_response(
        DATABASE_UNAVAILABLE_MESSAGE, ErrorCode.SERVICE_UNAVAILABLE, 503, {"Retry-After": "5"}
    )


async def dashboard() -> FileResponse:
    """The dashboard page (plain ES modules and CSS under /static/dashboard/, no build step)."""
    return FileResponse(STATIC_DIR / "dashboard" / "index.html")


async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """The database answers, its schema is at head and every default version is loaded."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, object] = {}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        revision = await schema_migrations.current_revision(runtime.engine)
        checks["migrations"] = "ok" if revision == schema_migrations.head_revision() else revision
        unloadable = await load_default_versions(runtime)
        checks["models"] = "ok" if not unloadable else {"unloadable_versions": unloadable}
    except (TimeoutError, OSError, ConnectionError) as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    except Exception as error:
        checks.setdefault("database", f"error: {type(error).__name__}")
    ready = all(value == "ok" for value in checks.values()) and len(checks) == 3
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
