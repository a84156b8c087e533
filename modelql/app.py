"""The application factory: FastAPI with the GraphQL router, health probes and a lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graph.context import GraphDependencies
from graph.errors import (
    DATABASE_UNAVAILABLE_MESSAGE,
    AuthenticationError,
    DatabaseUnavailableError,
    ErrorCode,
)
from graph.limits import Limits
from graph.router import create_graphql_router
from graph.schema import SchemaOptions, build_schema
from modelql import migrations
from modelql.middleware import (
    BodySizeLimitMiddleware,
    RequestTrackingMiddleware,
    graphql_error_body,
)
from modelql.settings import AuthMode, Settings
from models.artifacts import ArtifactStore
from persistence.database import create_engine, create_sessionmaker
from services import catalogue
from services.errors import ModelUnavailableError
from services.inference import ModelCache

logger = logging.getLogger("modelql")


class NotMigratedError(RuntimeError):
    """The database is not at the migration head and migrating was not allowed."""


@dataclass
class Runtime:
    """What the lifespan builds and the probes inspect."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    model_cache: ModelCache


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
    head = migrations.head_revision()
    current = await migrations.current_revision(engine)
    if current == head:
        return
    if not migrate:
        raise NotMigratedError(
            f"The database is at migration {current or 'none'}, the code needs {head}. "
            "Run `modelql migrate` (or set MODELQL_AUTO_MIGRATE=true)."
        )
    logger.info("migrating database from %s to %s", current or "empty", head)
    await asyncio.to_thread(migrations.upgrade_to_head, database_url)


async def load_default_versions(runtime: Runtime) -> list[str]:
    """Load every model's default version (at start-up, so the first prediction does not pay
    for it; by the readiness probe, to see they still load); returns the ids that failed."""
    async with runtime.sessionmaker() as session:
        versions = await catalogue.all_default_versions(session)
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
        runtime = Runtime(engine=engine, sessionmaker=sessionmaker, model_cache=model_cache)
        try:
            await ensure_migrated(engine, database_url, migrate=settings.should_auto_migrate)
            await load_default_versions(runtime)
            app.state.runtime = runtime
            app.state.graph_dependencies = GraphDependencies(
                sessionmaker=sessionmaker,
                model_cache=model_cache,
                limits=Limits(
                    max_page_size=settings.max_page_size, max_batch_size=settings.max_batch_size
                ),
                auth_required=settings.auth_mode is AuthMode.REQUIRED,
            )
            yield
        finally:
            model_cache.close()
            await engine.dispose()

    app = FastAPI(
        title="ModelQL",
        summary="GraphQL over a model catalogue and a prediction store.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    schema = build_schema(schema_options(settings))
    router = create_graphql_router(
        schema,
        graphiql=settings.graphiql_enabled,
        execution_timeout_s=settings.execution_timeout_s,
    )
    app.include_router(router, prefix="/graphql")
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTrackingMiddleware)
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


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    return graphql_error_response(
        DATABASE_UNAVAILABLE_MESSAGE, ErrorCode.SERVICE_UNAVAILABLE, 503, {"Retry-After": "5"}
    )


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
        revision = await migrations.current_revision(runtime.engine)
        checks["migrations"] = "ok" if revision == migrations.head_revision() else revision
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
