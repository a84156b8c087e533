"""PostgreSQL LISTEN/NOTIFY: the channels ModelQL speaks on, sending inside a transaction (so
a notification leaves at COMMIT, once per transaction), and one dedicated listening connection
per process that reconnects on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import cast

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

CATALOGUE_CHANNEL = "modelql_catalogue"
"""A version was registered, an alias or a traffic split moved; the payload is the model name."""
KEYS_CHANNEL = "modelql_keys"
"""An API key was created or revoked; the payload is the key's name."""
PREDICTIONS_CHANNEL = "modelql_predictions"
"""Predictions committed, or shadow answers to committed predictions (`prediction_commits`
rows marked `shadows`); the payload is their `prediction_commits` ids, comma-separated."""
OUTCOMES_CHANNEL = "modelql_outcomes"
"""Outcomes recorded (once per transaction; no payload)."""
JOBS_CHANNEL = "modelql_jobs"
"""A prediction job changed (and maybe stored predictions); the payload is its id."""


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Queue a notification in the session's transaction; PostgreSQL sends it at COMMIT."""
    await session.execute(select(func.pg_notify(channel, payload)))


async def notify_catalogue_changed(session: AsyncSession, model_name: str) -> None:
    """Announce, on COMMIT of the session's transaction, that the model's routing may have
    moved (a version registered, an alias moved, a traffic split set)."""
    await notify(session, CATALOGUE_CHANNEL, model_name)


Callback = Callable[[str], None]


class Listener:
    """LISTENs on its channels over a connection of its own (never a pooled one); after a
    drop it reconnects with backoff and runs the `on_connect` callbacks, because whatever was
    sent while it was away is lost and caches must assume the worst."""

    def __init__(self, dsn: str, *, health_check_s: float = 0.5) -> None:
        self._dsn = dsn
        self._health_check_s = health_check_s
        self._callbacks: dict[str, list[Callback]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected = asyncio.Event()
        self.connected_since: float | None = None
        """Monotonic time of the current connection; None while disconnected."""

    def on(self, channel: str, callback: Callback) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    def on_connect(self, callback: Callable[[], None]) -> None:
        self._on_connect.append(callback)

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start listening; waits up to `wait_s` for the first connection."""
        self._task = asyncio.create_task(self._run(), name="modelql-listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._connected.wait()

    async def stop(self) -> None:
        """Ends the listener; it also checks `_stopping`, so that a cancellation a library
        swallows cannot keep it running."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # unlike `await task`, keeps the caller cancellable

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    self._dsn, timeout=5, server_settings={"application_name": "modelql-listener"}
                )
                for channel in self._callbacks:
                    await connection.add_listener(channel, self._dispatch)
                self.connected_since = time.monotonic()
                self._connected.set()
                logger.info("listening for catalogue and key changes")
                for callback in self._on_connect:
                    callback()
                backoff = 0.1
                while not self._stopping:
                    await asyncio.sleep(self._health_check_s)
                    # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a
                    # cancellation that arrives as the query completes, and stop() then
                    # waited forever for a listener that went on listening.
                    async with asyncio.timeout(self._health_check_s):
                        await connection.fetchval("SELECT 1")
            except Exception as error:  # a dying server surfaces as many types; never stop
                if self.connected_since is not None:
                    logger.warning("listener connection lost (%r); reconnecting", error)
            finally:
                self.connected_since = None
                self._connected.clear()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, _connection: object, _pid: int, channel: str, payload: object) -> None:
        text = cast(str, payload)  # a NOTIFY payload is text: asyncpg's stubs say object
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(text)
            except Exception:
                logger.exception("notification callback failed on %s", channel)
