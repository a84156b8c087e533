"""The catalogue's admin use cases (`setAlias`, `setTrafficSplit`, `setShadow`): each one
transaction,
after which this process routes and answers by the change at once (other processes on the
catalogue notification the change sends at COMMIT)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence.prediction_filters import PredictionQuery
from modelql.services import registration, shadow_versions
from modelql.services.comparison import (
    ComparisonRequest,
    ComparisonSource,
    VersionComparisons,
    VersionSelector,
)
from modelql.services.errors import UserInputError
from modelql.services.model_access import ModelLimit, check_model
from modelql.services.shadow_versions import ShadowVersionRef


@dataclass(frozen=True)
class BasedOn:
    """The comparison an alias move rests on: the moved-to version as the candidate."""

    source: ComparisonSource
    sample: int


class CatalogueChanges:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue_changed: Callable[[], None],
        comparisons: VersionComparisons,
    ) -> None:
        """`catalogue_changed` makes this process forget what it knew of the catalogue."""
        self._sessionmaker = sessionmaker
        self._catalogue_changed = catalogue_changed
        self._comparisons = comparisons

    async def set_alias(
        self,
        *,
        model_name: str,
        alias: str,
        number: int,
        actor: str | None,
        limit: ModelLimit | None,
        based_on: BasedOn | None = None,
    ) -> None:
        """Point `alias` at version `number` (the move is kept in the alias history, with the
        summary of the comparison it was based on: version `number` as the candidate); a model
        outside the caller's `limit` is unknown to it."""
        check_model(limit, model_name)
        summary = None
        if based_on is not None:
            summary = await self._comparison_summary(model_name, number, based_on)
        async with self._sessionmaker.begin() as session:
            await registration.set_alias(
                session,
                model_name=model_name,
                alias=alias,
                number=number,
                actor=actor,
                based_on=summary,
            )
        self._catalogue_changed()

    async def _comparison_summary(
        self, model_name: str, number: int, based_on: BasedOn
    ) -> dict[str, object]:
        request = ComparisonRequest(
            model=model_name,
            candidate=VersionSelector(number=number),
            baseline=None,
            query=PredictionQuery(),
            sample=based_on.sample,
            source=based_on.source,
        )
        try:
            return (await self._comparisons.compare(request)).summary()
        except UserInputError as error:  # the paths of the comparison, as setAlias names them
            raise UserInputError(
                [
                    dataclasses.replace(
                        problem,
                        path=("version",) if problem.path[0] == "candidate" else problem.path,
                    )
                    for problem in error.problems
                ]
            ) from None

    async def set_shadow(
        self,
        *,
        model_name: str,
        versions: Sequence[ShadowVersionRef],
        sample: float | None,
        actor: str | None,
        limit: ModelLimit | None,
    ) -> None:
        """Replace the model's shadow versions (empty: none); kept in the shadow history."""
        check_model(limit, model_name)
        async with self._sessionmaker.begin() as session:
            await shadow_versions.set_shadow(
                session, model_name=model_name, versions=versions, sample=sample, actor=actor
            )
        self._catalogue_changed()

    async def set_traffic_split(
        self,
        *,
        model_name: str,
        shares: Sequence[tuple[int, float]],
        actor: str | None,
        limit: ModelLimit | None,
    ) -> None:
        """Replace the model's traffic split by (version number, weight) shares."""
        check_model(limit, model_name)
        async with self._sessionmaker.begin() as session:
            await registration.set_traffic_split(
                session, model_name=model_name, shares=shares, actor=actor
            )
        self._catalogue_changed()
