"""Outcomes (ground truth) on the write side, straight over the asyncpg connection of the
transaction, and the batched read of each prediction's outcome history."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import LatestOutcome, PredictionOutcome


@dataclass(frozen=True, slots=True)
class Target:
    """A prediction an outcome is recorded for, locked until the transaction ends."""

    id: uuid.UUID
    model_version_id: uuid.UUID
    label: str | None
    value: float | None
    request_id: str
    batch_index: int


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One recorded outcome."""

    id: uuid.UUID
    prediction_id: uuid.UUID
    label: str | None
    value: float | None
    observed_at: datetime
    recorded_at: datetime
    caller: str | None
    latest: bool = False


@dataclass(frozen=True, slots=True)
class NewOutcome:
    id: uuid.UUID
    prediction_id: uuid.UUID
    label: str | None
    value: float | None
    observed_at: datetime | None
    caller: str | None


async def lock_targets(
    connection: asyncpg.Connection,
    ids: Sequence[uuid.UUID],
    references: Sequence[tuple[str, int]],
) -> list[Target]:
    """The predictions with these ids or (request id, batch index) pairs, locked in id order so
    that concurrent recorders of the same prediction take turns. Both kinds of reference become
    ids first: `id = ANY(...) OR (request_id, batch_index) IN (...)` could only be answered by
    reading every partition whole."""
    rows = await connection.fetch(
        "SELECT id, model_version_id, label, value, request_id, batch_index FROM predictions "
        "WHERE id IN (SELECT unnest($1::uuid[]) UNION ALL "
        "SELECT p.id FROM predictions p JOIN unnest($2::text[], $3::int4[]) AS r(request_id, "
        "batch_index) ON p.request_id = r.request_id AND p.batch_index = r.batch_index) "
        "ORDER BY id FOR NO KEY UPDATE",
        list(ids),
        [request_id for request_id, _ in references],
        [index for _, index in references],
    )
    return [Target(**dict(row)) for row in rows]


async def latest_for(
    connection: asyncpg.Connection, prediction_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, OutcomeRow]:
    """The outcome that counts now for each of these predictions that has one."""
    rows = await connection.fetch(
        "SELECT o.id, o.prediction_id, o.label, o.value, o.observed_at, o.recorded_at, o.caller "
        "FROM latest_outcomes lo JOIN prediction_outcomes o ON o.id = lo.outcome_id "
        "WHERE lo.prediction_id = ANY($1::uuid[])",
        list(prediction_ids),
    )
    return {row["prediction_id"]: OutcomeRow(**dict(row), latest=True) for row in rows}


async def append(
    connection: asyncpg.Connection, outcomes: Sequence[NewOutcome]
) -> list[OutcomeRow]:
    """Store outcomes (observed now unless said otherwise) with their prediction's time, the
    other half of its key; the stored rows, in order."""
    rows = await connection.fetch(
        "INSERT INTO prediction_outcomes "
        "(id, prediction_id, predicted_at, label, value, observed_at, caller) "
        "SELECT u.id, u.prediction_id, p.created_at, u.label, u.value, "
        "coalesce(u.observed_at, now()), u.caller "
        "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::timestamptz[], "
        "$6::text[]) AS u(id, prediction_id, label, value, observed_at, caller) "
        "JOIN predictions p ON p.id = u.prediction_id "
        "RETURNING id, prediction_id, label, value, observed_at, recorded_at, caller",
        [outcome.id for outcome in outcomes],
        [outcome.prediction_id for outcome in outcomes],
        [outcome.label for outcome in outcomes],
        [outcome.value for outcome in outcomes],
        [outcome.observed_at for outcome in outcomes],
        [outcome.caller for outcome in outcomes],
    )
    by_id = {row["id"]: OutcomeRow(**dict(row), latest=True) for row in rows}
    return [by_id[outcome.id] for outcome in outcomes]


async def make_latest(connection: asyncpg.Connection, outcomes: Sequence[OutcomeRow]) -> None:
    """Make these outcomes (at most one per prediction) the ones that count."""
    await connection.execute(
        "INSERT INTO latest_outcomes (prediction_id, outcome_id, model_version_id, predicted_at, "
        "predicted_label, predicted_value, label, value) "
        "SELECT u.prediction_id, u.outcome_id, p.model_version_id, p.created_at, p.label, "
        "p.value, u.label, u.value "
        "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[]) "
        "AS u(prediction_id, outcome_id, label, value) "
        "JOIN predictions p ON p.id = u.prediction_id "
        "ON CONFLICT (prediction_id) DO UPDATE SET outcome_id = excluded.outcome_id, "
        "label = excluded.label, value = excluded.value",
        [outcome.prediction_id for outcome in outcomes],
        [outcome.id for outcome in outcomes],
        [outcome.label for outcome in outcomes],
        [outcome.value for outcome in outcomes],
    )


_COUNT_IN_ROLLUPS = """
WITH changed AS (
    SELECT p.model_version_id, coalesce(p.caller, '') AS caller, coalesce(p.label, '') AS label,
           date_trunc('hour', p.created_at, 'UTC') AS hour,
           sum(u.labelled) AS labelled, sum(u.correct) AS correct
    FROM unnest($1::uuid[], $2::int4[], $3::int4[]) AS u(prediction_id, labelled, correct)
    JOIN predictions p ON p.id = u.prediction_id
    GROUP BY 1, 2, 3, 4
), hourly AS (
    UPDATE prediction_rollups r
    SET labelled = r.labelled + d.labelled, correct = r.correct + d.correct
    FROM changed d
    WHERE r.model_version_id = d.model_version_id AND r.caller = d.caller
      AND r.label = d.label AND r.hour = d.hour
)
UPDATE prediction_daily_rollups r
SET labelled = r.labelled + d.labelled, correct = r.correct + d.correct
FROM (SELECT model_version_id, caller, label, date_trunc('day', hour, 'UTC') AS day,
             sum(labelled) AS labelled, sum(correct) AS correct
      FROM changed GROUP BY 1, 2, 3, 4) AS d
WHERE r.model_version_id = d.model_version_id AND r.caller = d.caller
  AND r.label = d.label AND r.day = d.day
"""


def _lock_rollups(table: str, period: str) -> str:
    """Locks, in key order, the roll-up rows of one period that hold the predictions $1."""
    return f"""
SELECT 1 FROM {table} r
JOIN (SELECT DISTINCT model_version_id, coalesce(caller, '') AS caller,
             coalesce(label, '') AS label, date_trunc('{period}', created_at, 'UTC') AS at
      FROM predictions WHERE id = ANY($1::uuid[])) AS d
  ON r.model_version_id = d.model_version_id AND r.caller = d.caller AND r.label = d.label
 AND r.{period} = d.at
ORDER BY r.model_version_id, r.caller, r.label, r.{period}
FOR UPDATE OF r
"""


_LOCK_ROLLUPS = (
    _lock_rollups("prediction_daily_rollups", "day"),
    _lock_rollups("prediction_rollups", "hour"),
)
"""Daily rows before hourly ones, each in key order: the order the prediction writer's
statement locks them in (tests/persistence/test_rollups.py checks both), so that recording
outcomes and storing predictions of the same hour never deadlock."""


async def count_in_rollups(
    connection: asyncpg.Connection, changes: Sequence[tuple[uuid.UUID, int, int]]
) -> None:
    """Add (prediction id, labelled delta, correct delta) to the hourly and daily roll-ups of
    the predictions, their rows locked first in the writer's order."""
    for lock in _LOCK_ROLLUPS:
        await connection.execute(lock, [prediction_id for prediction_id, _, _ in changes])
    await connection.execute(
        _COUNT_IN_ROLLUPS,
        [prediction_id for prediction_id, _, _ in changes],
        [labelled for _, labelled, _ in changes],
        [correct for _, _, correct in changes],
    )


async def move_in_outcome_rollups(
    connection: asyncpg.Connection, changes: Sequence[tuple[OutcomeRow, int]]
) -> None:
    """Add (+1) or take away (-1) outcomes in the hourly outcome roll-ups of their predictions."""
    await connection.execute(
        "INSERT INTO outcome_rollups AS r (model_version_id, hour, predicted, observed, count, "
        "squared_error, absolute_error, observed_sum, observed_square_sum) "
        "SELECT p.model_version_id, date_trunc('hour', p.created_at, 'UTC'), "
        "coalesce(p.label, ''), coalesce(u.label, ''), sum(u.sign), "
        "coalesce(sum(u.sign * (p.value - u.value) ^ 2), 0), "
        "coalesce(sum(u.sign * abs(p.value - u.value)), 0), coalesce(sum(u.sign * u.value), 0), "
        "coalesce(sum(u.sign * u.value ^ 2), 0) "
        "FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::int4[]) "
        "AS u(prediction_id, label, value, sign) JOIN predictions p ON p.id = u.prediction_id "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
        "ON CONFLICT (model_version_id, hour, predicted, observed) DO UPDATE SET "
        "count = r.count + excluded.count, "
        "squared_error = r.squared_error + excluded.squared_error, "
        "absolute_error = r.absolute_error + excluded.absolute_error, "
        "observed_sum = r.observed_sum + excluded.observed_sum, "
        "observed_square_sum = r.observed_square_sum + excluded.observed_square_sum",
        [row.prediction_id for row, _ in changes],
        [row.label for row, _ in changes],
        [row.value for row, _ in changes],
        [sign for _, sign in changes],
    )


async def histories(
    session: AsyncSession, prediction_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[OutcomeRow]]:
    """Every outcome of each prediction, oldest first, the one that counts marked `latest`."""
    statement = (
        select(
            PredictionOutcome.id,
            PredictionOutcome.prediction_id,
            PredictionOutcome.label,
            PredictionOutcome.value,
            PredictionOutcome.observed_at,
            PredictionOutcome.recorded_at,
            PredictionOutcome.caller,
            (LatestOutcome.outcome_id == PredictionOutcome.id).label("latest"),
        )
        .outerjoin(LatestOutcome, LatestOutcome.prediction_id == PredictionOutcome.prediction_id)
        .where(PredictionOutcome.prediction_id.in_(prediction_ids))
        .order_by(PredictionOutcome.recorded_at, PredictionOutcome.id)
    )
    grouped: dict[uuid.UUID, list[OutcomeRow]] = defaultdict(list)
    for row in await session.execute(statement):
        grouped[row.prediction_id].append(OutcomeRow(**row._asdict()))
    return grouped
