"""Engine and session factories for PostgreSQL over asyncpg."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVarTuple

import asyncpg
import orjson
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.selectable import TypedReturnsRows

from modelql.persistence.connection_checks import check_connections_on_checkout

RowTypes = TypeVarTuple("RowTypes")


def async_url(url: str | URL) -> URL:
    """The same database URL with the asyncpg driver, whatever driver it named."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg")


def libpq_url(url: str | URL) -> str:
    """The same database URL as asyncpg.connect and libpq take it (no driver suffix)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 20,
    max_overflow: int = 0,
    statement_timeout_ms: int = 0,
) -> AsyncEngine:
    """An engine whose pooled connections are checked on checkout (so a restarted server is
    reconnected: `persistence/connection_checks.py`) and with a statement timeout."""
    # JIT compilation costs tens of milliseconds per statement and pays off only for long
    # analytical queries; the statistics queries here are short (roll-ups).
    server_settings = {"application_name": "modelql", "jit": "off"}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings, "timeout": 5},
        json_deserializer=orjson.loads,
    )
    check_connections_on_checkout(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (the tables declare no relationships,
    so nothing is ever lazy-loaded: loaders and services query explicitly)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: each statement commits on its own, so a read
    costs no BEGIN and no ROLLBACK round trip (under READ COMMITTED each statement saw its own
    snapshot anyway). The engine's pool is shared; a returned connection leaves autocommit."""
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


async def execute_core(
    session: AsyncSession,
    statement: TypedReturnsRows[*RowTypes],
    parameters: Mapping[str, object] | None = None,
) -> CursorResult[*RowTypes]:
    """A statement selecting columns (not entities) run on the session's connection, in its
    transaction, around the ORM's execution: the same rows for about a third less CPU."""
    connection = await session.connection()
    return await connection.execute(statement, parameters)


def is_rejected_value(error: BaseException) -> bool:
    """True when PostgreSQL refused a value the client sent (SQLSTATE class 22, data exception:
    a NUL character in text, a timestamp or integer out of range, ...)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            return str(getattr(current.orig, "sqlstate", "") or "").startswith("22")
        if isinstance(current, asyncpg.PostgresError):
            return str(current.sqlstate or "").startswith("22")
        current = current.__cause__ or current.__context__
    return False


def is_connection_failure(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database could not be reached, or no
    pooled connection became free in time."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, PoolTimeoutError):
            return True
        if isinstance(
            current,
            OSError
            | ConnectionError
            | TimeoutError
            | asyncpg.PostgresConnectionError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.CannotConnectNowError
            | asyncpg.AdminShutdownError
            # what a connection reports when the server died in the middle of its operation
            | asyncpg.InternalClientError,
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session, inside the session's transaction, begun on the
    server: SQLAlchemy's asyncpg adapter sends BEGIN only with its own first statement, so
    statements sent straight to the driver before that would each commit on their own."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    if not raw.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")
    return raw
