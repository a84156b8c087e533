"""What the prediction and catalogue feeds share: subscribers, and one catch-up task per
process that reads what changed since its position whenever a notification (or a
reconnection of the listener) says something may have."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence.feed_repository import CatalogueChange, NamedPrediction
from modelql.services.subscribers import Subscriber, Subscriptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_S = 1.0


class Feed(Generic[T]):
    """Subscribers of one kind of event. Idle (no reads at all) while nobody subscribes; the
    first subscriber sets the position, every wake-up reads past it once for all subscribers."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], subscriptions: Subscriptions
    ) -> None:
        self._sessionmaker = sessionmaker
        self._subscriptions = subscriptions
        self._subscribers: set[Subscriber[T]] = set()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        """Subscribers still served (an ended one is skipped at once, even while its reader
        is stuck sending to a client that stopped reading)."""
        return sum(1 for subscriber in self._subscribers if subscriber.ended is None)

    @property
    def running(self) -> bool:
        """Whether the catch-up task runs (only while someone subscribes)."""
        return self._task is not None

    @asynccontextmanager
    async def subscribed(self, subscriber: Subscriber[T]) -> AsyncIterator[Subscriber[T]]:
        """Deliver to `subscriber` what happens from now on, until the block ends."""
        with self._subscriptions.opened(subscriber):
            async with self._started:
                if self._task is None:
                    async with self._sessionmaker() as session:
                        await self._start_position(session)
                    self._task = asyncio.create_task(self._run(), name=type(self).__name__)
                    self._wanted.set()  # what committed while the position was being read
            self._subscribers.add(subscriber)
            try:
                yield subscriber
            finally:
                self._subscribers.discard(subscriber)
                async with self._started:
                    if not self._subscribers:
                        await self.stop()

    def wake(self, _payload: str = "") -> None:
        """Something may have changed (a notification, or the listener reconnected)."""
        if self._task is not None:
            self._wanted.set()

    async def stop(self) -> None:
        """Stop reading once the read in progress is done (cancelling a query midway would
        hand its connection back to the pool in an unknown state)."""
        task, self._task = self._task, None
        if task is not None:
            self._wanted.set()
            await task

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self._task is not asyncio.current_task():
                return
            try:
                async with self._sessionmaker() as session:
                    await self._catch_up(session)
            except Exception as error:
                logger.warning("live feed could not read (%r); retrying", error)
                await asyncio.sleep(RETRY_S)
                self._wanted.set()

    def _fan_out(self, message: object) -> None:
        """Offer each subscriber its part of `message` (nothing when its filter selects none)."""
        for subscriber in list(self._subscribers):
            if subscriber.ended is not None:
                continue
            selected = subscriber.select(message)
            if selected is not None:
                subscriber.offer(selected)

    async def _start_position(self, session: AsyncSession) -> None:
        raise NotImplementedError

    async def _catch_up(self, session: AsyncSession) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class PredictionGroup:
    """One committed group on the predictions feed: predictions just stored by a transaction,
    or (`shadows`) the primary predictions whose shadow answers a transaction just stored."""

    predictions: list[NamedPrediction]
    shadows: bool = False


@dataclass(frozen=True)
class LiveFeeds:
    """The process's feeds and the registry of their subscriptions, as resolvers need them."""

    predictions: Feed[PredictionGroup]
    catalogue: Feed[CatalogueChange]
    subscriptions: Subscriptions
    queue_size: int
    jobs: Feed[uuid.UUID]
