"""Catalogue look-ups. Batched functions take many keys and issue one statement each."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, and_, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.tables import (
    AliasEvent,
    Model,
    ModelAlias,
    ModelVersion,
    PerformanceMetric,
    TrainingArgument,
)

DEFAULT_ALIAS = "production"

ArgumentRow = Row[tuple[uuid.UUID, str, str, Any]]
MetricRow = Row[tuple[uuid.UUID, str, str, str, float, int]]


@dataclass(frozen=True)
class ModelFilter:
    task: str | None = None
    tag: str | None = None
    search: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_models(
    session: AsyncSession, *, limit: int, after_name: str | None, where: ModelFilter
) -> list[Model]:
    """Models ordered by name, the page after `after_name`; ask for one more to see a next page."""
    statement = select(Model).order_by(Model.name).limit(limit)
    if after_name is not None:
        statement = statement.where(Model.name > after_name)
    if where.task is not None:
        statement = statement.where(Model.task == where.task)
    if where.tag is not None:
        statement = statement.where(Model.tags.any_() == where.tag)
    if where.search:
        pattern = f"%{_escape_like(where.search)}%"
        statement = statement.where(
            or_(Model.name.ilike(pattern), Model.description.ilike(pattern))
        )
    return list((await session.scalars(statement)).all())


async def models_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Model]:
    rows = await session.scalars(select(Model).where(Model.id.in_(ids)))
    return {row.id: row for row in rows}


async def models_by_name(session: AsyncSession, names: Sequence[str]) -> dict[str, Model]:
    rows = await session.scalars(select(Model).where(Model.name.in_(names)))
    return {row.name: row for row in rows}


async def versions_by_id(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ModelVersion]:
    rows = await session.scalars(select(ModelVersion).where(ModelVersion.id.in_(ids)))
    return {row.id: row for row in rows}


async def versions_page_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID], *, limit: int, before_number: int | None
) -> dict[uuid.UUID, list[ModelVersion]]:
    """Up to `limit` versions per model, newest first, below `before_number` when given."""
    position = (
        func.row_number()
        .over(partition_by=ModelVersion.model_id, order_by=ModelVersion.number.desc())
        .label("position")
    )
    condition = ModelVersion.model_id.in_(model_ids)
    if before_number is not None:
        condition = and_(condition, ModelVersion.number < before_number)
    ranked = select(ModelVersion, position).where(condition).subquery()
    versions = select(ModelVersion).from_statement(
        select(ranked)
        .where(ranked.c.position <= limit)
        .order_by(ranked.c.model_id, ranked.c.number.desc())
    )
    pages: dict[uuid.UUID, list[ModelVersion]] = defaultdict(list)
    for version in await session.scalars(versions):
        pages[version.model_id].append(version)
    return pages


async def versions_by_number(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], ModelVersion]:
    statement = select(ModelVersion).where(
        tuple_(ModelVersion.model_id, ModelVersion.number).in_(keys)
    )
    return {(row.model_id, row.number): row for row in await session.scalars(statement)}


async def versions_by_alias(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], ModelVersion]:
    statement = (
        select(ModelAlias.model_id, ModelAlias.alias, ModelVersion)
        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
        .where(tuple_(ModelAlias.model_id, ModelAlias.alias).in_(keys))
    )
    return {
        (model_id, alias): version for model_id, alias, version in await session.execute(statement)
    }


def _default_versions_statement(
    model_ids: Sequence[uuid.UUID] | None,
) -> Select[tuple[ModelVersion]]:
    """Each model's `production` version, else its newest; every model when `model_ids` is None."""
    production = (
        select(literal(1))
        .where(
            ModelAlias.version_id == ModelVersion.id,
            ModelAlias.alias == DEFAULT_ALIAS,
        )
        .exists()
    )
    statement = (
        select(ModelVersion)
        .ext(distinct_on(ModelVersion.model_id))
        .order_by(ModelVersion.model_id, production.desc(), ModelVersion.number.desc())
    )
    if model_ids is None:
        return statement
    return statement.where(ModelVersion.model_id.in_(model_ids))


async def default_versions(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ModelVersion]:
    """Each model's default version: the one aliased `production`, else the newest."""
    rows = await session.scalars(_default_versions_statement(model_ids))
    return {row.model_id: row for row in rows}


async def all_default_versions(session: AsyncSession) -> list[ModelVersion]:
    """The default version of every model, for warming the model cache."""
    return list((await session.scalars(_default_versions_statement(None))).all())


async def aliases_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ModelAlias]]:
    statement = (
        select(ModelAlias).where(ModelAlias.model_id.in_(model_ids)).order_by(ModelAlias.alias)
    )
    grouped: dict[uuid.UUID, list[ModelAlias]] = defaultdict(list)
    for alias in await session.scalars(statement):
        grouped[alias.model_id].append(alias)
    return grouped


async def alias_events_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AliasEvent]]:
    """Every alias move of each model, newest first."""
    statement = (
        select(AliasEvent)
        .where(AliasEvent.model_id.in_(model_ids))
        .order_by(AliasEvent.changed_at.desc(), AliasEvent.id.desc())
    )
    grouped: dict[uuid.UUID, list[AliasEvent]] = defaultdict(list)
    for event in await session.scalars(statement):
        grouped[event.model_id].append(event)
    return grouped


async def alias_names_for_versions(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    statement = (
        select(ModelAlias.version_id, ModelAlias.alias)
        .where(ModelAlias.version_id.in_(version_ids))
        .order_by(ModelAlias.alias)
    )
    grouped: dict[uuid.UUID, list[str]] = defaultdict(list)
    for version_id, alias in await session.execute(statement):
        grouped[version_id].append(alias)
    return grouped


async def training_arguments_for_versions(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ArgumentRow]]:
    """Arguments as plain rows (name, kind, value): hyperparameters first, then data ones."""
    statement = (
        select(
            TrainingArgument.version_id,
            TrainingArgument.name,
            TrainingArgument.kind,
            TrainingArgument.value,
        )
        .where(TrainingArgument.version_id.in_(version_ids))
        .order_by(TrainingArgument.kind.desc(), TrainingArgument.name)
    )
    grouped: dict[uuid.UUID, list[ArgumentRow]] = defaultdict(list)
    for row in await session.execute(statement):
        grouped[row.version_id].append(row)
    return grouped


async def metrics_for_versions(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MetricRow]]:
    """Metrics as plain rows (split, slice, metric, value, num_samples), in registration order:
    hundreds per version, so no ORM objects are built for them."""
    statement = (
        select(
            PerformanceMetric.version_id,
            PerformanceMetric.split,
            PerformanceMetric.slice,
            PerformanceMetric.metric,
            PerformanceMetric.value,
            PerformanceMetric.num_samples,
        )
        .where(PerformanceMetric.version_id.in_(version_ids))
        .order_by(PerformanceMetric.id)
    )
    grouped: dict[uuid.UUID, list[MetricRow]] = defaultdict(list)
    for row in await session.execute(statement):
        grouped[row.version_id].append(row)
    return grouped
