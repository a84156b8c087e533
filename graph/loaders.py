"""DataLoaders built per request: each batches its keys into one call (at most one statement;
none when the in-memory catalogue already holds the answer)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import datetime
from functools import cached_property, partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader as StrawberryDataLoader

from modelql.graph.request_database import RequestDatabase
from modelql.models.metrics import PerformanceRecord
from modelql.persistence import tables
from modelql.services import catalogue, outcomes, prediction_audit, shadow_versions
from modelql.services.drift import DriftPolicy, DriftReport, drift_reports
from modelql.services.estimated_performance import (
    Estimate,
    EstimateRequest,
    EstimationPolicy,
    estimate,
)
from modelql.services.live_performance import live_performance
from modelql.services.model_access import ModelLimit

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

PageKey = tuple[uuid.UUID, int, int | None]
LiveKey = tuple[uuid.UUID, datetime | None, datetime | None, bool]
"""(version id, since, until, with named slices)."""
WindowKey = tuple[uuid.UUID, datetime | None, datetime | None]
"""(version id, since, until)."""
EstimateKey = tuple[uuid.UUID, EstimateRequest]
"""(model id, page size + 1, exclusive upper bound on the version number)."""


class DataLoader(StrawberryDataLoader[K, V]):
    """Strawberry's DataLoader, whose `load` hands each caller its own future over the cached
    one: graphql-core cancels the other fields' tasks when one fails, and a task cancelled
    while awaiting the cached future would cancel it, failing every other field awaiting the
    same key with CancelledError (which escapes the request). Done futures are returned as
    they are.

    `known`, when given, answers a key from memory before any batch: the future it returns is
    done, so the awaiting resolver does not suspend (and the read executor gives it no task)."""

    def __init__(
        self,
        load_fn: Callable[[list[K]], Awaitable[list[V]]],
        *,
        known: Callable[[K], V | None] | None = None,
    ) -> None:
        super().__init__(load_fn=load_fn)
        self._known = known

    def load(self, key: K) -> Awaitable[V]:
        if self._known is not None and (value := self._known(key)) is not None:
            answered: asyncio.Future[V] = self.loop.create_future()  # the loop, looked up once
            answered.set_result(value)
            return answered
        return asyncio.shield(super().load(key))


def _mapping_loader(
    db: RequestDatabase,
    fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]],
    known: Callable[[K], V | None] | None = None,
) -> DataLoader[K, V | None]:
    """Each key's value, None when `fetch` found none (`known`: see `DataLoader`)."""

    async def load(keys: list[K]) -> list[V | None]:
        found = await db.run(lambda session: fetch(session, keys))
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load, known=known)


def _lists_loader(
    db: RequestDatabase,
    fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, list[V]]]],
) -> DataLoader[K, list[V]]:
    """Each key's list, empty when `fetch` found none."""

    async def load(keys: list[K]) -> list[list[V]]:
        found = await db.run(lambda session: fetch(session, keys))
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


def _limited(
    memory: catalogue.Catalogue,
    fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]],
    model_of: Callable[[V], uuid.UUID],
    limit: ModelLimit | None,
) -> Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]]:
    """`fetch`, but what belongs to a model outside `limit` is not found."""
    if limit is None:
        return fetch

    async def limited(session: AsyncSession, keys: Sequence[K]) -> Mapping[K, V]:
        found = await fetch(session, keys)
        models = await memory.models_by_id(session, list({model_of(v) for v in found.values()}))
        return {
            key: value
            for key, value in found.items()
            if (model := models.get(model_of(value))) is not None and limit.allows(model.name)
        }

    return limited


class Loaders:
    """Every relation a list can fan out to, batched for the lifetime of one request; each
    loader is built when a resolver first asks for it (a request uses a few of them)."""

    def __init__(
        self,
        db: RequestDatabase,
        memory: catalogue.Catalogue,
        drift_policy: DriftPolicy,
        estimation_policy: EstimationPolicy | None = None,
        *,
        limit: ModelLimit | None = None,
    ) -> None:
        """`limit`: the caller's; every object of another model is not found (the ones
        reached from these, by id, belong to the same model)."""
        self._db = db
        self._memory = memory
        self._drift_policy = drift_policy
        self._estimation_policy = estimation_policy or EstimationPolicy()
        self._limit = limit

    def _limited_mapping(
        self,
        fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]],
        model_of: Callable[[V], uuid.UUID],
        known: Callable[[K], V | None] | None = None,
    ) -> DataLoader[K, V | None]:
        limited = _limited(self._memory, fetch, model_of, self._limit)
        return _mapping_loader(self._db, limited, known)

    @cached_property
    def model_by_id(self) -> DataLoader[uuid.UUID, tables.Model | None]:
        return self._limited_mapping(self._memory.models_by_id, lambda row: row.id)

    @cached_property
    def model_by_name(self) -> DataLoader[str, tables.Model | None]:
        return self._limited_mapping(self._memory.models_by_name, lambda row: row.id)

    @cached_property
    def version_by_id(self) -> DataLoader[uuid.UUID, catalogue.Version | None]:
        # Versions never change once read; a limited caller's go through the model check.
        known = self._memory.known_version if self._limit is None else None
        return self._limited_mapping(self._memory.versions, lambda row: row.model_id, known)

    @cached_property
    def route_by_model_id(self) -> DataLoader[uuid.UUID, catalogue.ModelRoute | None]:
        return self._limited_mapping(self._memory.routes_by_id, lambda row: row.model_id)

    @cached_property
    def alias_events_by_model(self) -> DataLoader[uuid.UUID, list[tables.AliasEvent]]:
        return _lists_loader(self._db, catalogue.alias_histories)

    @cached_property
    def split_events_by_model(self) -> DataLoader[uuid.UUID, list[tables.TrafficSplitEvent]]:
        return _lists_loader(self._db, catalogue.split_histories)

    @cached_property
    def shadow_events_by_model(self) -> DataLoader[uuid.UUID, list[tables.ShadowEvent]]:
        return _lists_loader(self._db, shadow_versions.shadow_events_for_models)

    @cached_property
    def shadows_by_prediction(self) -> DataLoader[uuid.UUID, list[tables.ShadowPrediction]]:
        return _lists_loader(self._db, shadow_versions.shadows_of_predictions)

    @cached_property
    def training_arguments(self) -> DataLoader[uuid.UUID, list[catalogue.ArgumentRow]]:
        return _lists_loader(self._db, self._memory.training_arguments)

    @cached_property
    def metrics(self) -> DataLoader[uuid.UUID, list[catalogue.MetricRow]]:
        return _lists_loader(self._db, self._memory.metrics)

    @cached_property
    def prediction_by_id(self) -> DataLoader[uuid.UUID, tables.PredictionRow | None]:
        return self._limited_mapping(prediction_audit.predictions_by_id, lambda row: row.model_id)

    @cached_property
    def outcome_history(self) -> DataLoader[uuid.UUID, list[outcomes.OutcomeRow]]:
        return _lists_loader(self._db, outcomes.histories)

    @cached_property
    def live_performance(self) -> DataLoader[LiveKey, list[PerformanceRecord]]:
        return DataLoader(load_fn=lambda keys: self._load_live(self._db, self._memory, keys))

    @cached_property
    def input_drift(self) -> DataLoader[WindowKey, DriftReport]:
        return DataLoader(
            load_fn=lambda keys: self._load_drift(self._db, self._memory, self._drift_policy, keys)
        )

    @cached_property
    def estimates(self) -> DataLoader[EstimateKey, Estimate]:
        return DataLoader(
            load_fn=lambda keys: self._load_estimates(
                self._db, self._memory, self._estimation_policy, keys
            )
        )

    @cached_property
    def versions_page(self) -> DataLoader[PageKey, list[catalogue.Version]]:
        return DataLoader(
            load_fn=lambda keys: self._load_version_pages(self._db, self._memory, keys)
        )

    @staticmethod
    async def _load_version_pages(
        db: RequestDatabase, memory: catalogue.Catalogue, keys: list[PageKey]
    ) -> list[list[catalogue.Version]]:
        """From memory: the models' routes number their versions (no statement while the
        routes are fresh and the versions known)."""
        by_page: dict[tuple[int, int | None], list[uuid.UUID]] = defaultdict(list)
        for model_id, limit, before in keys:
            by_page[(limit, before)].append(model_id)
        pages: dict[PageKey, list[catalogue.Version]] = {}
        for (limit, before), model_ids in by_page.items():
            found = await db.run(
                partial(
                    memory.version_pages, model_ids=model_ids, limit=limit, before_number=before
                )
            )
            for model_id in model_ids:
                pages[(model_id, limit, before)] = found.get(model_id, [])
        return [pages[key] for key in keys]

    @staticmethod
    async def _load_live(
        db: RequestDatabase, memory: catalogue.Catalogue, keys: list[LiveKey]
    ) -> list[list[PerformanceRecord]]:
        """One statement per distinct window, whatever the number of versions and fields
        (named slices are computed for all when any field asks for them)."""
        by_window: dict[tuple[datetime | None, datetime | None], list[LiveKey]] = defaultdict(list)
        for key in keys:
            by_window[(key[1], key[2])].append(key)
        found: dict[LiveKey, list[PerformanceRecord]] = {}
        for (since, until), window_keys in by_window.items():
            version_ids = list({key[0] for key in window_keys})
            named = any(key[3] for key in window_keys)
            records = await db.run(
                partial(
                    live_performance,
                    catalogue=memory,
                    version_ids=version_ids,
                    since=since,
                    until=until,
                    named_slices=named,
                )
            )
            for key in window_keys:
                found[key] = records.get(key[0], [])
        return [found[key] for key in keys]

    @staticmethod
    async def _load_drift(
        db: RequestDatabase,
        memory: catalogue.Catalogue,
        policy: DriftPolicy,
        keys: list[WindowKey],
    ) -> list[DriftReport]:
        """Two statements per distinct window, whatever the number of versions."""
        by_window: dict[tuple[datetime | None, datetime | None], list[uuid.UUID]] = defaultdict(
            list
        )
        for version_id, since, until in keys:
            by_window[(since, until)].append(version_id)
        found: dict[WindowKey, DriftReport] = {}
        for (since, until), version_ids in by_window.items():
            reports = await db.run(
                partial(
                    drift_reports,
                    catalogue=memory,
                    version_ids=version_ids,
                    since=since,
                    until=until,
                    policy=policy,
                )
            )
            for version_id in version_ids:
                found[(version_id, since, until)] = reports[version_id]
        return [found[key] for key in keys]

    @staticmethod
    async def _load_estimates(
        db: RequestDatabase,
        memory: catalogue.Catalogue,
        policy: EstimationPolicy,
        keys: list[EstimateKey],
    ) -> list[Estimate]:
        """Two statements per distinct (version, request): the reference and the analysed
        predictions; every field asking for the same estimate shares them."""
        found: dict[EstimateKey, Estimate] = {}
        for key in dict.fromkeys(keys):
            found[key] = await db.run(
                partial(
                    estimate, catalogue=memory, version_id=key[0], request=key[1], policy=policy
                )
            )
        return [found[key] for key in keys]
