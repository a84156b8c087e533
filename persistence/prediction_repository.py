"""Prediction queries (the prediction repository): keyset pages, counts and samples of the
predictions a `PredictionQuery` selects, and their latest outcomes."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Uuid, any_, bindparam, func, null, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.database import execute_core
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.tables import (
    PREDICTION_ROW_COLUMNS,
    IdempotencyRecord,
    LatestOutcome,
    Prediction,
    PredictionRow,
)

Keyset = tuple[datetime, uuid.UUID]

BUILT_STATEMENTS = 256
"""Statements kept built, per kind, by everything they are built from (SQLAlchemy statements
are immutable): building one costs more than PostgreSQL spends on a page, and after a write
the same pages are asked for again."""


async def list_predictions(
    session: AsyncSession,
    query: PredictionQuery,
    *,
    limit: int,
    after: Keyset | None,
    unread: frozenset[str] = frozenset(),
) -> list[PredictionRow]:
    """Newest first by (created_at, id), strictly after the keyset `after`; never OFFSET. The
    keyset's time also bounds created_at on its own: PostgreSQL prunes partitions on that, not
    on the row comparison. Read as rows on the session's connection: the ORM's execution
    and an entity per row cost twice what PostgreSQL's answer does. The columns named in
    `unread` are neither read nor decoded: null in every row."""
    result = await execute_core(session, _page_statement(query, limit, after, unread))
    return [PredictionRow._make(row) for row in result]


@functools.lru_cache(maxsize=BUILT_STATEMENTS)
def _page_statement(
    query: PredictionQuery, limit: int, after: Keyset | None, unread: frozenset[str]
) -> Select[Any]:
    columns = (
        null().label(column.name) if column.name in unread else column
        for column in PREDICTION_ROW_COLUMNS
    )
    statement = (
        select(*columns)
        .where(*query.conditions())
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(
            Prediction.created_at <= after[0], tuple_(Prediction.created_at, Prediction.id) < after
        )
    return statement


async def predictions_by_id(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PredictionRow]:
    """Read as rows, as pages are, by one statement built once (`= ANY(array)`: the same SQL
    for any number of ids)."""
    found = await execute_core(session, _by_id_statement(), {"ids": list(ids)})
    rows = map(PredictionRow._make, found)
    return {row.id: row for row in rows}


@functools.cache
def _by_id_statement() -> Select[Any]:
    ids = bindparam("ids", type_=ARRAY(Uuid()))
    return select(*PREDICTION_ROW_COLUMNS).where(Prediction.id == any_(ids))


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction read-only and see one snapshot throughout (counts and
    pages agree); call before its first statement."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def count_predictions(session: AsyncSession, query: PredictionQuery) -> int:
    return await session.scalar(_count_statement(query)) or 0


@functools.lru_cache(maxsize=BUILT_STATEMENTS)
def _count_statement(query: PredictionQuery) -> Select[int]:
    return select(func.count()).select_from(Prediction).where(*query.conditions())


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


async def idempotency_record(
    session: AsyncSession, *, caller: str, key: str
) -> IdempotencyRecord | None:
    """The record of a caller's idempotency key; None when the key was never used."""
    return await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.caller == caller, IdempotencyRecord.key == key
        )
    )


async def predictions_of_record(session: AsyncSession, record_id: uuid.UUID) -> list[PredictionRow]:
    """The predictions stored under an idempotency record, in batch order."""
    statement = (
        select(*PREDICTION_ROW_COLUMNS)
        .where(Prediction.idempotency_record_id == record_id)
        .order_by(Prediction.batch_index)
    )
    return [PredictionRow._make(row) for row in await execute_core(session, statement)]
