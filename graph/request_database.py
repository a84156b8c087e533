"""The read session a request's resolvers share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")


class RequestDatabase:
    """One read session per request, used by one task at a time (AsyncSession is not task-safe)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` on the shared session; a failure discards the session so the request's
        other fields get a fresh one instead of an aborted transaction."""
        async with self._lock:
            if self._session is None:
                self._session = self._sessionmaker()
            try:
                return await work(self._session)
            except BaseException:
                session, self._session = self._session, None
                with contextlib.suppress(Exception):
                    await session.close()
                raise

    async def close(self) -> None:
        """Close the session (waiting for work in progress); the next `run` opens another."""
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None
