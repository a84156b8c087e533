"""What the live feed reads: prediction commits after a position, their predictions, and the
catalogue's registrations and alias moves within a time window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import (
    AliasEvent,
    Model,
    ModelVersion,
    Prediction,
    PredictionCommit,
)


@dataclass(frozen=True)
class FeedPosition:
    """The newest committed commit id, and the last id the sequence handed out (ids between
    the two belong to transactions still in flight, or that rolled back)."""

    committed: int
    allocated: int


@dataclass(frozen=True)
class CommittedGroup:
    id: int
    prediction_ids: list[uuid.UUID]
    shadows: bool = False
    """True: shadow answers to these (primary) predictions were stored, not the predictions."""


@dataclass(frozen=True)
class NamedPrediction:
    """A stored prediction with the model name and version number its filters look at."""

    row: Prediction
    model: str
    version: int


@dataclass(frozen=True)
class CatalogueChange:
    """A version registered (alias None) or an alias moved, read from the catalogue's tables."""

    kind: str
    key: tuple[str, str]
    model_id: uuid.UUID
    model: str
    version_id: uuid.UUID | None
    alias: str | None
    at: datetime


async def feed_position(session: AsyncSession) -> FeedPosition:
    committed = await session.scalar(select(func.coalesce(func.max(PredictionCommit.id), 0)))
    allocated = await session.scalar(
        text(
            "SELECT coalesce(pg_sequence_last_value("
            "pg_get_serial_sequence('prediction_commits', 'id')::regclass), 0)"
        )
    )
    return FeedPosition(committed=committed or 0, allocated=max(allocated or 0, committed or 0))


async def commits_after(
    session: AsyncSession, position: int, missing: Sequence[int], *, limit: int
) -> list[CommittedGroup]:
    """Commits with an id above `position` or among `missing`, in id order."""
    rows = await session.execute(
        select(PredictionCommit.id, PredictionCommit.prediction_ids, PredictionCommit.shadows)
        .where(or_(PredictionCommit.id > position, PredictionCommit.id.in_(list(missing))))
        .order_by(PredictionCommit.id)
        .limit(limit)
    )
    return [
        CommittedGroup(id=row.id, prediction_ids=list(row.prediction_ids), shadows=row.shadows)
        for row in rows
    ]


async def named_predictions(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, NamedPrediction]:
    rows = await session.execute(
        select(Prediction, Model.name, ModelVersion.number)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .join(Model, Model.id == Prediction.model_id)
        .where(Prediction.id.in_(ids))
    )
    return {row[0].id: NamedPrediction(row[0], row[1], row[2]) for row in rows}


async def database_now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()


async def catalogue_changes_since(session: AsyncSession, since: datetime) -> list[CatalogueChange]:
    """Registrations and alias moves stamped at or after `since`, oldest first."""
    versions = await session.execute(
        select(ModelVersion.id, ModelVersion.model_id, ModelVersion.created_at, Model.name)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(ModelVersion.created_at >= since)
    )
    moves = await session.execute(
        select(AliasEvent, Model.name)
        .join(Model, Model.id == AliasEvent.model_id)
        .where(AliasEvent.changed_at >= since)
    )
    changes = [
        CatalogueChange(
            kind="VERSION_REGISTERED",
            key=("version", str(row.id)),
            model_id=row.model_id,
            model=row.name,
            version_id=row.id,
            alias=None,
            at=row.created_at,
        )
        for row in versions
    ]
    changes += [
        CatalogueChange(
            kind="ALIAS_MOVED",
            key=("alias", str(event.id)),
            model_id=event.model_id,
            model=name,
            version_id=event.to_version_id,
            alias=event.alias,
            at=event.changed_at,
        )
        for event, name in moves
    ]
    return sorted(changes, key=lambda change: (change.at, change.kind != "VERSION_REGISTERED"))
