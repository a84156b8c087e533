"""Pooled connections checked on checkout the way HikariCP checks them: one the server closed
is replaced at no cost, and one idle for longer than a short window is pinged first, so a
restarted server is reconnected; one returned moments ago is trusted. SQLAlchemy's
`pool_pre_ping` instead pings every checkout, which over asyncpg is three round trips (BEGIN,
an empty statement, ROLLBACK) per request under any load."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

TRUSTED_FOR_SECONDS = 0.5
"""How long after its return a connection is handed out unpinged (HikariCP's
`aliveBypassWindowMs` is 500 ms): a connection dropped within it is found by its first
statement, which invalidates the pool as any disconnect does."""

_RETURNED_AT = "modelql_returned_at"


def check_connections_on_checkout(engine: AsyncEngine) -> None:
    """Install the checks on the engine's pool (replaces `pool_pre_ping`)."""
    dialect = engine.dialect
    pool = engine.sync_engine.pool
    event.listen(pool, "connect", _mark_returned)
    event.listen(pool, "checkin", _mark_returned)
    event.listen(pool, "checkout", _checker(dialect))


def _mark_returned(dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _checker(dialect: Dialect) -> Any:
    def check(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        """Raises DisconnectionError, on which the pool connects the entry afresh."""
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed the connection")
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < TRUSTED_FOR_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"the connection failed a ping: {error}") from error

    return check
