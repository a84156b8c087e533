"""Catalogue queries (the catalogue repository). Batched functions take many keys and issue one
statement each."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.model_limit import ModelLimit
from modelql.persistence.tables import (
    AliasEvent,
    Model,
    ModelAlias,
    ModelVersion,
    PerformanceMetric,
    ShadowVersion,
    TrafficShare,
    TrafficSplitEvent,
    TrainingArgument,
)

DEFAULT_ALIAS = "production"

ArgumentRow = Row[uuid.UUID, str, str, Any]
MetricRow = Row[uuid.UUID, str, str, str, float, int]
Event = TypeVar("Event", AliasEvent, TrafficSplitEvent)
RouteRow = Row[
    uuid.UUID, str, str, list[list[Any]], list[list[Any]], list[list[Any]], list[list[Any]]
]


@dataclass(frozen=True)
class ModelFilter:
    task: str | None = None
    tag: str | None = None
    search: str | None = None
    limit: ModelLimit | None = None
    """The caller's model limit (None: every model)."""


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
    if where.limit is not None:
        statement = statement.where(limited_names(Model.name, where.limit))
    if where.search:
        pattern = f"%{_escape_like(where.search)}%"
        statement = statement.where(
            or_(Model.name.ilike(pattern), Model.description.ilike(pattern))
        )
    return list((await session.scalars(statement)).all())


def limited_names(column: Any, limit: ModelLimit) -> ColumnElement[bool]:
    """The condition that the model name in `column` is within `limit`."""
    return or_(*(column.like(pattern, escape="\\") for pattern in limit.like_patterns()))


async def model_names(session: AsyncSession) -> list[str]:
    """Every model's name."""
    return list((await session.scalars(select(Model.name))).all())


async def models_in_name_order(session: AsyncSession, *, limit: int) -> list[Model]:
    """The first `limit` models by name, detached from the session so that they can be kept."""
    rows = list((await session.scalars(select(Model).order_by(Model.name).limit(limit))).all())
    for row in rows:
        session.expunge(row)
    return rows


async def models_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Model]:
    rows = await session.scalars(select(Model).where(Model.id.in_(ids)))
    return {row.id: row for row in rows}


async def models_by_name(session: AsyncSession, names: Sequence[str]) -> dict[str, Model]:
    rows = await session.scalars(select(Model).where(Model.name.in_(names)))
    return {row.name: row for row in rows}


async def versions_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[ModelVersion]:
    return list((await session.scalars(select(ModelVersion).where(ModelVersion.id.in_(ids)))).all())


async def routes(
    session: AsyncSession,
    *,
    names: Sequence[str] | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> list[RouteRow]:
    """Each model's id, name, task, [alias, version id] pairs, [number, version id] pairs and
    traffic split as [version id, weight] pairs and shadow versions as [version id, sample]
    pairs, in one statement; the named models, those with
    the given ids, or every model."""
    numbers = (
        select(func.jsonb_agg(func.jsonb_build_array(ModelVersion.number, ModelVersion.id)))
        .where(ModelVersion.model_id == Model.id)
        .scalar_subquery()
    )
    aliases = (
        select(func.jsonb_agg(func.jsonb_build_array(ModelAlias.alias, ModelAlias.version_id)))
        .where(ModelAlias.model_id == Model.id)
        .scalar_subquery()
    )
    split = (
        select(func.jsonb_agg(func.jsonb_build_array(TrafficShare.version_id, TrafficShare.weight)))
        .where(TrafficShare.model_id == Model.id)
        .scalar_subquery()
    )
    shadows = (
        select(
            func.jsonb_agg(func.jsonb_build_array(ShadowVersion.version_id, ShadowVersion.sample))
        )
        .where(ShadowVersion.model_id == Model.id)
        .scalar_subquery()
    )
    empty = literal([], JSONB)
    statement = select(
        Model.id,
        Model.name,
        Model.task,
        func.coalesce(aliases, empty, type_=JSONB).label("aliases"),
        func.coalesce(numbers, empty, type_=JSONB).label("numbers"),
        func.coalesce(split, empty, type_=JSONB).label("split"),
        func.coalesce(shadows, empty, type_=JSONB).label("shadows"),
    )
    if names is not None:
        statement = statement.where(Model.name.in_(names))
    if ids is not None:
        statement = statement.where(Model.id.in_(ids))
    return list((await session.execute(statement)).all())


async def alias_events_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AliasEvent]]:
    """Every alias move of each model, newest first."""
    return await _history_for_models(session, AliasEvent, model_ids)


async def split_events_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TrafficSplitEvent]]:
    """Every traffic split change of each model, newest first."""
    return await _history_for_models(session, TrafficSplitEvent, model_ids)


async def _history_for_models(
    session: AsyncSession, event: type[Event], model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Event]]:
    statement = (
        select(event)
        .where(event.model_id.in_(model_ids))
        .order_by(event.changed_at.desc(), event.id.desc())
    )
    grouped: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for row in await session.scalars(statement):
        grouped[row.model_id].append(row)
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
