"""Sessions for requests that only read hold no transaction open: no BEGIN, no ROLLBACK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from modelql.persistence.database import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
)


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds a single connection, so every session gets the same one."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def _state_after_a_read(
    sessions: async_sessionmaker[AsyncSession], observer: AsyncEngine
) -> str:
    """The backend's state (pg_stat_activity) after one statement, its session still open."""
    async with sessions() as session:
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        async with observer.connect() as connection:
            state = await connection.scalar(
                text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
            )
    return str(state)


async def test_a_read_session_leaves_no_transaction_open(
    one_connection: AsyncEngine, engine: AsyncEngine
) -> None:
    reads = create_read_sessionmaker(one_connection)
    assert await _state_after_a_read(reads, engine) == "idle"


async def test_a_write_session_reads_in_a_transaction(
    one_connection: AsyncEngine, engine: AsyncEngine
) -> None:
    writes = create_sessionmaker(one_connection)
    assert await _state_after_a_read(writes, engine) == "idle in transaction"


async def test_a_connection_a_read_session_returns_is_transactional_again(
    one_connection: AsyncEngine, engine: AsyncEngine
) -> None:
    assert await _state_after_a_read(create_read_sessionmaker(one_connection), engine) == "idle"
    writes = create_sessionmaker(one_connection)
    assert await _state_after_a_read(writes, engine) == "idle in transaction"
