"""Audit queries over stored predictions: filters, keyset pages and SQL aggregates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.tables import Model, ModelVersion, Prediction


@dataclass(frozen=True)
class PredictionQuery:
    """Which predictions to look at; every field narrows the set, None means any."""

    model: str | None = None
    version: int | None = None
    label: str | None = None
    caller: str | None = None
    request_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    model_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.model_id is not None:
            conditions.append(Prediction.model_id == self.model_id)
        if self.version_id is not None:
            conditions.append(Prediction.model_version_id == self.version_id)
        if self.model is not None:
            named = select(Model.id).where(Model.name == self.model).scalar_subquery()
            conditions.append(Prediction.model_id == named)
        if self.version is not None:
            numbered = select(ModelVersion.id).where(ModelVersion.number == self.version)
            if self.model is not None:
                numbered = numbered.join(Model, Model.id == ModelVersion.model_id).where(
                    Model.name == self.model
                )
            conditions.append(Prediction.model_version_id.in_(numbered))
        if self.label is not None:
            conditions.append(Prediction.label == self.label)
        if self.caller is not None:
            conditions.append(Prediction.caller == self.caller)
        if self.request_id is not None:
            conditions.append(Prediction.request_id == self.request_id)
        if self.created_after is not None:
            conditions.append(Prediction.created_at >= self.created_after)
        if self.created_before is not None:
            conditions.append(Prediction.created_at < self.created_before)
        if self.min_confidence is not None:
            conditions.append(Prediction.confidence >= self.min_confidence)
        if self.max_confidence is not None:
            conditions.append(Prediction.confidence <= self.max_confidence)
        return conditions


Keyset = tuple[datetime, uuid.UUID]


async def list_predictions(
    session: AsyncSession, query: PredictionQuery, *, limit: int, after: Keyset | None
) -> list[Prediction]:
    """Newest first by (created_at, id), strictly after the keyset `after`; never OFFSET."""
    statement = (
        select(Prediction)
        .where(*query.conditions())
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(tuple_(Prediction.created_at, Prediction.id) < after)
    return list((await session.scalars(statement)).all())


async def predictions_by_id(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Prediction]:
    rows = await session.scalars(select(Prediction).where(Prediction.id.in_(ids)))
    return {row.id: row for row in rows}


@dataclass(frozen=True)
class PredictionStatistics:
    count: int
    label_counts: list[tuple[str, int]]
    mean_latency_ms: float | None
    p95_latency_ms: float | None
    mean_value: float | None
    first_at: datetime | None
    last_at: datetime | None


async def prediction_statistics(
    session: AsyncSession, query: PredictionQuery
) -> PredictionStatistics:
    """Aggregates computed by PostgreSQL over the filtered predictions (two statements)."""
    where = and_(True, *query.conditions())
    totals = (
        await session.execute(
            select(
                func.count(),
                func.avg(Prediction.latency_ms),
                func.percentile_cont(0.95).within_group(Prediction.latency_ms),
                func.avg(Prediction.value),
                func.min(Prediction.created_at),
                func.max(Prediction.created_at),
            ).where(where)
        )
    ).one()
    label_count = func.count().label("count")
    labels = await session.execute(
        select(Prediction.label, label_count)
        .where(where, Prediction.label.is_not(None))
        .group_by(Prediction.label)
        .order_by(label_count.desc(), Prediction.label)
    )
    count, mean_latency, p95_latency, mean_value, first_at, last_at = totals
    return PredictionStatistics(
        count=count,
        label_counts=[(label, number) for label, number in labels],
        mean_latency_ms=mean_latency,
        p95_latency_ms=p95_latency,
        mean_value=mean_value,
        first_at=first_at,
        last_at=last_at,
    )
