"""The catalogue as the service sees it: immutable versions kept in memory once read, and each
model's routing (aliases, version numbers, default) cached until a notification or a short
staleness bound says it moved. Everything else is read through the catalogue repository."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import RoutingReason, Task
from modelql.persistence import catalogue_repository
from modelql.persistence.catalogue_repository import (
    ArgumentRow,
    MetricRow,
    ModelFilter,
    RouteRow,
)
from modelql.persistence.tables import AliasEvent, Model, ModelVersion, TrafficSplitEvent
from modelql.services.errors import ErrorCode, UserInputError
from modelql.services.freshness import Freshness
from modelql.services.model_directory import MODELS_KEPT, ModelDirectory

__all__ = [
    "DEFAULT_ALIAS",
    "ArgumentRow",
    "Catalogue",
    "MetricRow",
    "ModelFilter",
    "ModelRoute",
    "RouteChoice",
    "Version",
    "alias_histories",
    "split_histories",
    "version_at",
]

DEFAULT_ALIAS = catalogue_repository.DEFAULT_ALIAS
Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Version:
    """A registered model version, read once and kept: versions never change."""

    id: uuid.UUID
    model_id: uuid.UUID
    number: int
    description: str | None
    algorithm: str
    framework: str
    framework_version: str
    artifact_path: str
    artifact_sha256: str
    input_schema: list[dict[str, Any]]
    signature: tuple[FeatureSpec, ...]
    labels: tuple[str, ...] | None
    dataset: dict[str, Any] | None
    trained_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: ModelVersion) -> Version:
        return cls(
            id=row.id,
            model_id=row.model_id,
            number=row.number,
            description=row.description,
            algorithm=row.algorithm,
            framework=row.framework,
            framework_version=row.framework_version,
            artifact_path=row.artifact_path,
            artifact_sha256=row.artifact_sha256,
            input_schema=row.input_schema,
            signature=tuple(FeatureSpec.from_json(spec) for spec in row.input_schema),
            labels=tuple(row.labels) if row.labels is not None else None,
            dataset=row.dataset,
            trained_at=row.trained_at,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """The version that answers a request, and why."""

    version_id: uuid.UUID
    routed_by: RoutingReason


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """What decides which version answers for a model: its aliases, version numbers and
    traffic split."""

    model_id: uuid.UUID
    name: str
    task: Task
    aliases: dict[str, uuid.UUID]
    """Alias -> version id, by alias name."""
    numbers: dict[int, uuid.UUID]
    """Version number -> version id."""
    split: tuple[tuple[uuid.UUID, float], ...]
    """(version id, weight) in version-number order; empty: no split."""
    loaded_at: float
    """Monotonic time the read of this route started."""
    shadows: tuple[uuid.UUID, ...] = ()
    """Versions scoring a sampled share of requests in the shadow, in version-number order."""
    shadow_sample: float = 0.0
    """The share of requests the shadows score, in (0, 1]; 0 without shadows."""

    @classmethod
    def from_row(cls, row: RouteRow, loaded_at: float) -> ModelRoute:
        numbers = {int(number): uuid.UUID(str(version)) for number, version in row.numbers}
        position = {version: number for number, version in numbers.items()}
        split = sorted(
            ((uuid.UUID(str(version)), float(weight)) for version, weight in row.split),
            key=lambda share: position[share[0]],
        )
        return cls(
            model_id=row.id,
            name=row.name,
            task=Task(row.task),
            aliases={alias: uuid.UUID(str(version)) for alias, version in sorted(row.aliases)},
            numbers=numbers,
            split=tuple(split),
            loaded_at=loaded_at,
            shadows=tuple(
                sorted(
                    (uuid.UUID(str(version)) for version, _ in row.shadows),
                    key=lambda version: position[version],
                )
            ),
            shadow_sample=max((float(sample) for _, sample in row.shadows), default=0.0),
        )

    @property
    def default_version_id(self) -> uuid.UUID | None:
        """The version aliased `production`, else the newest one; None without versions."""
        if DEFAULT_ALIAS in self.aliases:
            return self.aliases[DEFAULT_ALIAS]
        return self.numbers[max(self.numbers)] if self.numbers else None

    def aliases_of(self, version_id: uuid.UUID) -> list[str]:
        return [alias for alias, target in self.aliases.items() if target == version_id]

    def number_of(self, version_id: uuid.UUID) -> int:
        return next(number for number, target in self.numbers.items() if target == version_id)

    def choose(
        self, *, number: int | None, alias: str | None, routing_key: str | None = None
    ) -> RouteChoice:
        """The one version-choice rule: the alias (which must agree with a number given with
        it), else the number, else, for a request with a routing key and a model with a
        traffic split, the split's draw for that key, else the default version; a user error
        naming the argument."""
        if alias is not None:
            chosen = self.aliases.get(alias)
            if chosen is None:
                raise UserInputError.single(
                    ("alias",),
                    ErrorCode.VERSION_NOT_FOUND,
                    f"Model {self.name!r} has no alias {alias!r}.",
                )
            if number is not None and self.numbers.get(number) != chosen:
                raise UserInputError.single(
                    ("version",),
                    ErrorCode.VERSION_NOT_FOUND,
                    f"Alias {alias!r} of model {self.name!r} points to version "
                    f"{self.number_of(chosen)}, not {number}; give one of them, or both agreeing.",
                )
            return RouteChoice(chosen, RoutingReason.ALIAS)
        if number is not None:
            if number not in self.numbers:
                raise UserInputError.single(
                    ("version",),
                    ErrorCode.VERSION_NOT_FOUND,
                    f"Model {self.name!r} has no version {number}.",
                )
            return RouteChoice(self.numbers[number], RoutingReason.VERSION)
        if routing_key is not None and self.split:
            return RouteChoice(self.draw(routing_key), RoutingReason.SPLIT)
        default = self.default_version_id
        if default is None:
            raise UserInputError.single(
                ("model",), ErrorCode.VERSION_NOT_FOUND, f"Model {self.name!r} has no version yet."
            )
        return RouteChoice(default, RoutingReason.DEFAULT)

    def draw(self, routing_key: str) -> uuid.UUID:
        """The split's version for a routing key: a point in [0, 1) hashed (sha256, the same
        in every process) from the model and the key, placed on the cumulative weights. The
        same key gets the same version while the split is unchanged."""
        key = f"{self.model_id}\x00{routing_key}".encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(key).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(w for _, w in self.split)
        for version_id, weight in self.split:
            if point < weight:
                return version_id
            point -= weight
        return self.split[-1][0]


async def alias_histories(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AliasEvent]]:
    """Every alias move of each model, newest first (read each time: never kept in memory)."""
    return await catalogue_repository.alias_events_for_models(session, model_ids)


async def split_histories(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TrafficSplitEvent]]:
    """Every traffic split change of each model, newest first (read each time)."""
    return await catalogue_repository.split_events_for_models(session, model_ids)


def version_at(events: Sequence[AliasEvent], alias: str, at: datetime) -> uuid.UUID | None:
    """The version `alias` named at the moment `at` (UTC when naive), by the alias history
    (newest first): None before the alias was first set, or while it was removed."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    for event in events:
        if event.alias == alias and event.changed_at <= at:
            return event.to_version_id
    return None


class Catalogue:
    """The in-memory side of the catalogue, shared by every request of a process.

    Versions are kept forever once read. Routes and the model directory are kept while their
    `Freshness` says so: a notification invalidates them when an alias moves or a model or
    version is registered, and while the listener is down they expire after a short bound."""

    def __init__(self, freshness: Freshness) -> None:
        self._versions: dict[uuid.UUID, Version] = {}
        self._metrics: dict[uuid.UUID, list[MetricRow]] = {}
        self._training_arguments: dict[uuid.UUID, list[ArgumentRow]] = {}
        self._routes_by_name: dict[str, ModelRoute] = {}
        self._routes_by_id: dict[uuid.UUID, ModelRoute] = {}
        self._directory: ModelDirectory | None = None
        self._freshness = freshness

    async def model_page(
        self, session: AsyncSession, *, limit: int, after_name: str | None, where: ModelFilter
    ) -> list[Model]:
        """Models ordered by name, the page after `after_name`: from memory when it can say
        exactly what the query would, else the query."""
        page = (await self._models(session)).page(limit=limit, after_name=after_name, where=where)
        if page is None:
            return await catalogue_repository.list_models(
                session, limit=limit, after_name=after_name, where=where
            )
        return page

    async def models_by_id(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Model]:
        directory = await self._models(session)
        if directory.complete:
            return directory.by_ids(ids)
        return await catalogue_repository.models_by_id(session, ids)

    async def models_by_name(self, session: AsyncSession, names: Sequence[str]) -> dict[str, Model]:
        directory = await self._models(session)
        if directory.complete and not any("\x00" in name for name in names):
            return directory.by_name(names)
        return await catalogue_repository.models_by_name(session, names)

    async def versions(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Version]:
        """Versions by id: from memory, the missing ones in one statement."""
        missing = [version_id for version_id in ids if version_id not in self._versions]
        if missing:
            for row in await catalogue_repository.versions_by_id(session, missing):
                self._versions[row.id] = Version.from_row(row)
        return {
            version_id: self._versions[version_id]
            for version_id in ids
            if version_id in self._versions
        }

    async def metrics(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[MetricRow]]:
        """Each version's offline metrics: registered with it and never changed, so read once."""
        return await _read_once(
            self._metrics, catalogue_repository.metrics_for_versions, session, ids
        )

    async def training_arguments(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ArgumentRow]]:
        """Each version's training arguments: registered with it and never changed."""
        return await _read_once(
            self._training_arguments,
            catalogue_repository.training_arguments_for_versions,
            session,
            ids,
        )

    def known_version(self, version_id: uuid.UUID) -> Version | None:
        """The version from memory; None when it has not been read yet."""
        return self._versions.get(version_id)

    def known_route(self, name: str) -> ModelRoute | None:
        """The named model's route from memory; None when missing or stale."""
        return self._fresh_route(self._routes_by_name.get(name))

    async def version_pages(
        self,
        session: AsyncSession,
        model_ids: Sequence[uuid.UUID],
        *,
        limit: int,
        before_number: int | None,
    ) -> dict[uuid.UUID, list[Version]]:
        """Up to `limit` versions per model, newest first, below `before_number` when given:
        the numbers from the models' routes, the versions from memory."""
        routes = await self.routes_by_id(session, model_ids)
        wanted = {
            model_id: [
                version_id
                for number, version_id in sorted(route.numbers.items(), reverse=True)
                if before_number is None or number < before_number
            ][:limit]
            for model_id, route in routes.items()
        }
        found = await self.versions(session, [v for ids in wanted.values() for v in ids])
        return {
            model_id: [found[version_id] for version_id in ids if version_id in found]
            for model_id, ids in wanted.items()
        }

    async def routes_by_name(
        self, session: AsyncSession, names: Sequence[str]
    ) -> dict[str, ModelRoute]:
        """Each named model's route; stale or missing ones re-read in one statement."""
        routes = {
            name: route
            for name in names
            if (route := self._fresh_route(self._routes_by_name.get(name)))
        }
        missing = [name for name in names if name not in routes]
        if missing:
            read_at = self._freshness.now()
            rows = await catalogue_repository.routes(session, names=missing)
            routes.update((route.name, route) for route in self._keep(rows, read_at))
        return routes

    async def routes_by_id(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, ModelRoute]:
        """Each model's route by model id; stale or missing ones re-read in one statement."""
        routes = {
            model_id: route
            for model_id in ids
            if (route := self._fresh_route(self._routes_by_id.get(model_id)))
        }
        missing = [model_id for model_id in ids if model_id not in routes]
        if missing:
            read_at = self._freshness.now()
            rows = await catalogue_repository.routes(session, ids=missing)
            routes.update((route.model_id, route) for route in self._keep(rows, read_at))
        return routes

    async def default_versions(self, session: AsyncSession) -> list[Version]:
        """The default version of every model (to warm the model cache, and for readiness)."""
        read_at = self._freshness.now()
        routes = self._keep(await catalogue_repository.routes(session), read_at)
        ids = [version_id for route in routes if (version_id := route.default_version_id)]
        return list((await self.versions(session, ids)).values())

    def forget_routes(self) -> None:
        """Drop every cached route and the model directory (an alias moved, or a model or
        version was registered somewhere)."""
        self._freshness.invalidate()
        self._routes_by_name.clear()
        self._routes_by_id.clear()
        self._directory = None

    async def _models(self, session: AsyncSession) -> ModelDirectory:
        """Every model, re-read in one statement when the kept directory is stale."""
        directory = self._directory
        if directory is None or not self._freshness.fresh(directory.loaded_at):
            read_at = self._freshness.now()
            rows = await catalogue_repository.models_in_name_order(session, limit=MODELS_KEPT + 1)
            directory = self._directory = ModelDirectory.of(rows, read_at)
        return directory

    def _fresh_route(self, route: ModelRoute | None) -> ModelRoute | None:
        return route if route is not None and self._freshness.fresh(route.loaded_at) else None

    def _keep(self, rows: Iterable[RouteRow], read_at: float) -> list[ModelRoute]:
        routes = [ModelRoute.from_row(row, read_at) for row in rows]
        for route in routes:
            self._routes_by_name[route.name] = route
            self._routes_by_id[route.model_id] = route
        return routes


async def _read_once(
    kept: dict[uuid.UUID, list[Row]],
    fetch: Callable[[AsyncSession, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, list[Row]]]],
    session: AsyncSession,
    ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, list[Row]]:
    """Rows of immutable versions by version id: from `kept`, the missing ones in one call."""
    missing = [version_id for version_id in ids if version_id not in kept]
    if missing:
        found = await fetch(session, missing)
        for version_id in missing:
            kept[version_id] = list(found.get(version_id, ()))
    return {version_id: kept[version_id] for version_id in ids}
