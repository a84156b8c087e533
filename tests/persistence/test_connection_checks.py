"""Pooled connections are checked on checkout: a connection the server dropped is replaced
without the caller seeing an error, and only a connection idle for a while costs a ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from modelql.persistence import connection_checks
from modelql.persistence.database import create_engine


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds a single connection, so every checkout gets the same one."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
def pings(one_connection: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The connections the engine's dialect is asked to ping, in order (still pinged)."""
    seen: list[Any] = []
    ping = one_connection.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        seen.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(one_connection.dialect, "do_ping", counted)
    return seen


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)


async def _terminate(observer: AsyncEngine, backend: int) -> None:
    async with observer.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})


async def test_a_connection_returned_moments_ago_is_not_pinged(
    one_connection: AsyncEngine, pings: list[Any]
) -> None:
    first = await _backend(one_connection)
    assert await _backend(one_connection) == first
    assert pings == []


async def test_a_connection_idle_past_the_window_is_pinged_once_per_checkout(
    one_connection: AsyncEngine, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend(one_connection)
    monkeypatch.setattr(connection_checks, "TRUSTED_FOR_SECONDS", 0.0)
    assert await _backend(one_connection) == first
    assert await _backend(one_connection) == first
    assert len(pings) == 2


async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    one_connection: AsyncEngine, engine: AsyncEngine, pings: list[Any]
) -> None:
    first = await _backend(one_connection)
    await _terminate(engine, first)
    await asyncio.sleep(0.2)  # the driver reads the server's goodbye
    second = await _backend(one_connection)
    assert second != first
    assert pings == [], "a closed connection is seen without a round trip"


async def test_a_dropped_connection_idle_past_the_window_fails_its_ping_and_is_replaced(
    one_connection: AsyncEngine,
    engine: AsyncEngine,
    pings: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await _backend(one_connection)
    monkeypatch.setattr(connection_checks, "TRUSTED_FOR_SECONDS", 0.0)
    # As if the connection were cut without a goodbye: only a ping can find out.
    monkeypatch.setattr(asyncpg.Connection, "is_closed", lambda self: False)
    await _terminate(engine, first)
    await asyncio.sleep(0.2)
    second = await _backend(one_connection)
    assert second != first
    assert len(pings) >= 1
