"""Prediction queries (the prediction repository): filters, keyset pages and SQL aggregates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, exists, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from modelql.persistence.tables import LatestOutcome, Model, ModelVersion, Prediction


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
    has_outcome: bool | None = None
    correct: bool | None = None
    model_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        """A time without an offset is UTC (as the API says), so every path compares alike."""
        for name in ("created_after", "created_before"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, name, moment.replace(tzinfo=UTC))

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = self.catalogue_conditions(Prediction.model_id, Prediction.model_version_id)
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
        # An alias of its own: statistics join the latest outcome beside these conditions.
        outcome = aliased(LatestOutcome)
        if self.has_outcome is not None:
            labelled = exists().where(outcome.prediction_id == Prediction.id)
            conditions.append(labelled if self.has_outcome else ~labelled)
        if self.correct is not None:
            conditions.append(
                exists().where(
                    outcome.prediction_id == Prediction.id, outcome.correct.is_(self.correct)
                )
            )
        return conditions

    def catalogue_conditions(
        self, model_id: ColumnElement[uuid.UUID], version_id: ColumnElement[uuid.UUID]
    ) -> list[ColumnElement[bool]]:
        """The model and version conditions on the given id columns."""
        conditions: list[ColumnElement[bool]] = []
        if self.model_id is not None:
            conditions.append(model_id == self.model_id)
        if self.version_id is not None:
            conditions.append(version_id == self.version_id)
        if self.model is not None:
            named = select(Model.id).where(Model.name == self.model).scalar_subquery()
            conditions.append(model_id == named)
        if self.version is not None:
            numbered = select(ModelVersion.id).where(ModelVersion.number == self.version)
            if self.model is not None:
                numbered = numbered.join(Model, Model.id == ModelVersion.model_id).where(
                    Model.name == self.model
                )
            conditions.append(version_id.in_(numbered))
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


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction read-only and see one snapshot throughout (counts and
    pages agree); call before its first statement."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def count_predictions(session: AsyncSession, query: PredictionQuery) -> int:
    statement = select(func.count()).select_from(Prediction).where(*query.conditions())
    return await session.scalar(statement) or 0


async def predictions_after(
    session: AsyncSession, query: PredictionQuery, *, after: datetime | None, limit: int
) -> list[Prediction]:
    """Oldest first by (created_at, id), created strictly after `after`; with the rest of the
    last transaction's predictions when the limit cuts through them, so that every
    transaction's predictions come whole."""
    conditions = query.conditions()
    if after is not None:
        conditions.append(Prediction.created_at > after)
    ordered = (Prediction.created_at, Prediction.id)
    statement = select(Prediction).where(*conditions).order_by(*ordered)
    rows = list((await session.scalars(statement.limit(limit))).all())
    if len(rows) == limit:
        last = rows[-1]
        rest = statement.where(Prediction.created_at == last.created_at, Prediction.id > last.id)
        rows += (await session.scalars(rest)).all()
    return rows


async def sampled_transactions(
    session: AsyncSession, query: PredictionQuery, *, sample: int
) -> list[Prediction]:
    """A random sample of predictions, each with every prediction its version stored in the
    same transaction, oldest first by (created_at, id)."""
    picked = (
        select(Prediction.model_version_id, Prediction.created_at)
        .where(*query.conditions())
        .order_by(func.random())
        .limit(sample)
    )
    statement = (
        select(Prediction)
        .where(tuple_(Prediction.model_version_id, Prediction.created_at).in_(picked))
        .order_by(Prediction.created_at, Prediction.id)
    )
    return list((await session.scalars(statement)).all())


@dataclass(frozen=True)
class RecordedOutcome:
    """The ground truth recorded for a prediction: a label or a value."""

    label: str | None
    value: float | None


async def outcomes_for_predictions(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RecordedOutcome]:
    """The latest recorded outcome of each prediction that has one."""
    rows = await session.execute(
        select(LatestOutcome.prediction_id, LatestOutcome.label, LatestOutcome.value).where(
            LatestOutcome.prediction_id.in_(ids)
        )
    )
    return {prediction_id: RecordedOutcome(label, value) for prediction_id, label, value in rows}
