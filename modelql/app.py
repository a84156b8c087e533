"""The application factory: FastAPI with the GraphQL router, health probes and a lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.routing import Route, WebSocketRoute

from modelql import metrics, schema_migrations
from modelql.garbage_collection import freeze_startup_objects, thaw
from modelql.graph.endpoint import create_graphql_endpoint
from modelql.graph.errors import (
    DATABASE_UNAVAILABLE_MESSAGE,
    AuthenticationError,
    DatabaseUnavailableError,
    ErrorCode,
    RateLimitedError,
)
from modelql.graph.persisted_queries import (
    ManifestError,
    PersistedQueries,
    PersistedQueryError,
    PersistedQueryMode,
    load_manifest,
)
from modelql.graph.response_cache import ResponseCache
from modelql.graph.schema import SchemaOptions, build_schema
from modelql.metrics import PrometheusCacheMetrics
from modelql.middleware import (
    BodySizeLimitMiddleware,
    LoopbackHostMiddleware,
    RequestTrackingMiddleware,
    graphql_error_body,
)
from modelql.runtime import Runtime
from modelql.services.shared_answers import SharedAnswers, SharedObserver
from modelql.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"


def persisted_queries(settings: Settings) -> PersistedQueries:
    """The persisted-query mode; its allow-list read from the file (ManifestError if the file
    is unusable, or missing in mode `only`)."""
    mode = PersistedQueryMode(settings.persisted_queries)
    if mode is PersistedQueryMode.ONLY and settings.persisted_queries_file is None:
        raise ManifestError("MODELQL_PERSISTED_QUERIES=only needs MODELQL_PERSISTED_QUERIES_FILE.")
    file = settings.persisted_queries_file
    listed = load_manifest(file) if file is not None else {}
    return PersistedQueries(
        mode,
        listed,
        max_registered=settings.persisted_queries_max,
        max_length=settings.max_query_length,
    )


def schema_options(settings: Settings) -> SchemaOptions:
    return SchemaOptions(
        query_cache_size=settings.query_cache_size,
        max_query_depth=settings.max_query_depth,
        max_query_tokens=settings.max_query_tokens,
        max_query_aliases=settings.max_query_aliases,
        introspection=settings.introspection_enabled,
    )


UPLOAD_OVERHEAD_BYTES = 1024 * 1024
"""What a multipart request carries besides its file (the document, the variables, the map)."""


def shared_answers(settings: Settings, observer: SharedObserver | None) -> SharedAnswers | None:
    """The Redis layer of the response cache, when `MODELQL_CACHE_URL` names one."""
    if not settings.cache_url:
        return None
    return SharedAnswers(
        settings.cache_url,
        prefix=settings.cache_prefix,
        timeout_s=settings.cache_timeout_ms / 1000,
        observer=observer,
    )


def create_app(settings: Settings, *, database_url: str) -> FastAPI:
    """The ASGI application; `database_url` is the external or the started embedded database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thresholds = None
        shared: SharedAnswers | None = None
        try:
            runtime = Runtime.build(settings, database_url=database_url)
            try:
                await runtime.start()
                app.state.runtime = runtime
                app.state.graph_dependencies = runtime.graph_dependencies
                if settings.response_cache:
                    observer = PrometheusCacheMetrics() if settings.metrics else None
                    shared = shared_answers(settings, observer)
                    if shared is not None:
                        runtime.generations.follow(shared.changed)
                        app.state.shared_answers = shared
                    endpoint.responses = ResponseCache(
                        schema=schema._schema,
                        prepare=schema.documents,
                        generations=runtime.generations,
                        max_bytes=settings.response_cache_max_bytes,
                        ttl_s=settings.response_cache_ttl_s,
                        plan_cache_size=settings.query_cache_size,
                        observer=observer,
                        shared=shared,
                    )
                thresholds = freeze_startup_objects() if settings.gc_freeze else None
                yield
            finally:
                await runtime.stop()  # queued predictions answered before the collector thaws
                if shared is not None:
                    await shared.close()
        finally:
            if thresholds is not None:
                thaw(thresholds)
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
    app.router.routes.append(Route("/graphql", endpoint, methods=["GET", "POST"]))
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
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # an upload a little over the job limit reaches the use case, which names the limit
        max_upload_bytes=settings.job_max_bytes + UPLOAD_OVERHEAD_BYTES,
    )
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
        unloadable = await runtime.load_default_versions()
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
