"""The catalogue feed: versions registered and aliases moved, read from the catalogue's own
tables (the notification only says "look"), each delivered once.

Rows are stamped with their transaction's start time, and transactions commit out of that
order, so each read looks back `window_s` before the newest time seen and skips what it has
delivered already (remembered for as long as the window reaches)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import feed_repository
from modelql.persistence.feed_repository import CatalogueChange
from modelql.services.feed import Feed
from modelql.services.subscribers import Subscriptions


def selector(model: str | None) -> Callable[[CatalogueChange], CatalogueChange | None]:
    """A subscriber's selection: changes of `model` (None: of every model)."""

    def select(change: CatalogueChange) -> CatalogueChange | None:
        return change if model in (None, change.model) else None

    return select


class CatalogueFeed(Feed[CatalogueChange]):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions,
        *,
        window_s: float = 60.0,
    ) -> None:
        super().__init__(sessionmaker, subscriptions)
        self._window = timedelta(seconds=window_s)
        self._newest: datetime | None = None
        self._delivered: dict[tuple[str, str], datetime] = {}

    async def _start_position(self, session: AsyncSession) -> None:
        """From now on: what is already in the window counts as delivered."""
        self._newest = await feed_repository.database_now(session)
        changes = await feed_repository.catalogue_changes_since(session, self._since())
        self._delivered = {change.key: change.at for change in changes}

    async def _catch_up(self, session: AsyncSession) -> None:
        for change in await feed_repository.catalogue_changes_since(session, self._since()):
            if change.key in self._delivered:
                continue
            self._delivered[change.key] = change.at
            self._newest = max(self._newest or change.at, change.at)
            self._fan_out(change)
        since = self._since()
        self._delivered = {key: at for key, at in self._delivered.items() if at >= since}

    def _since(self) -> datetime:
        assert self._newest is not None, "the position is set before the first read"
        return self._newest - self._window
