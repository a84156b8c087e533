"""The catalogue's admin use cases (`setAlias`, `setTrafficSplit`): each one transaction,
after which this process routes and answers by the change at once (other processes on the
catalogue notification the change sends at COMMIT)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.services import registration


class CatalogueChanges:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue_changed: Callable[[], None],
    ) -> None:
        """`catalogue_changed` makes this process forget what it knew of the catalogue."""
        self._sessionmaker = sessionmaker
        self._catalogue_changed = catalogue_changed

    async def set_alias(
        self, *, model_name: str, alias: str, number: int, actor: str | None
    ) -> None:
        """Point `alias` at version `number` (the move is kept in the alias history)."""
        async with self._sessionmaker.begin() as session:
            await registration.set_alias(
                session, model_name=model_name, alias=alias, number=number, actor=actor
            )
        self._catalogue_changed()

    async def set_traffic_split(
        self, *, model_name: str, shares: Sequence[tuple[int, float]], actor: str | None
    ) -> None:
        """Replace the model's traffic split by (version number, weight) shares."""
        async with self._sessionmaker.begin() as session:
            await registration.set_traffic_split(
                session, model_name=model_name, shares=shares, actor=actor
            )
        self._catalogue_changed()
