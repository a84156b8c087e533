"""Shadow versions (the repository): which versions of a model score in the shadow, their
history, and the shadows' stored answers beside the primary predictions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson
from sqlalchemy import ColumnElement, and_, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.database import driver_connection
from modelql.persistence.notifications import PREDICTIONS_CHANNEL
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.tables import (
    Prediction,
    PredictionCommit,
    ShadowEvent,
    ShadowPrediction,
    ShadowVersion,
)


@dataclass(frozen=True, slots=True)
class ShadowColumns:
    """One shadow version's answers (or refusals) to a round's rows, column by column, each
    linked to its primary by the primary's key."""

    model_version_id: uuid.UUID
    classes: Sequence[str] | None
    """The labels the probabilities are in the order of; None for regressors."""
    latency_ms: float
    """Each row's share of the estimator call."""
    ids: Sequence[uuid.UUID]
    primary_ids: Sequence[uuid.UUID]
    primary_created_ats: Sequence[datetime]
    model_ids: Sequence[uuid.UUID]
    labels: Sequence[str | None]
    values: Sequence[float | None]
    confidences: Sequence[float | None]
    probabilities: Sequence[Sequence[float] | None]
    refusals: Sequence[str | None]


async def shadow_versions(session: AsyncSession, model_id: uuid.UUID) -> dict[uuid.UUID, float]:
    """The model's shadow versions now: version id -> sample."""
    rows = await session.execute(
        select(ShadowVersion.version_id, ShadowVersion.sample).where(
            ShadowVersion.model_id == model_id
        )
    )
    return {version_id: sample for version_id, sample in rows.all()}


async def replace_shadows(
    session: AsyncSession,
    *,
    model_id: uuid.UUID,
    versions: Mapping[int, uuid.UUID],
    sample: float | None,
    actor: str | None,
) -> None:
    """Replace the model's shadow versions (number -> id; empty: none) and record the change."""
    await session.execute(delete(ShadowVersion).where(ShadowVersion.model_id == model_id))
    if versions:
        await session.execute(
            insert(ShadowVersion),
            [
                {"model_id": model_id, "version_id": version_id, "sample": sample}
                for version_id in versions.values()
            ],
        )
    session.add(
        ShadowEvent(
            model_id=model_id,
            versions=sorted(versions),
            sample=sample if versions else None,
            changed_by=actor,
        )
    )
    await session.flush()


async def shadow_events_for_models(
    session: AsyncSession, model_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ShadowEvent]]:
    """Every change of each model's shadow versions, newest first."""
    statement = (
        select(ShadowEvent)
        .where(ShadowEvent.model_id.in_(model_ids))
        .order_by(ShadowEvent.changed_at.desc(), ShadowEvent.id.desc())
    )
    grouped: dict[uuid.UUID, list[ShadowEvent]] = defaultdict(list)
    for row in await session.scalars(statement):
        grouped[row.model_id].append(row)
    return grouped


INSERT_SHADOWS = """
INSERT INTO shadow_predictions (id, primary_id, primary_created_at, model_id, model_version_id,
                                label, value, probabilities, confidence, latency_ms, refusal)
SELECT r.id, r.primary_id, r.primary_created_at, r.model_id, $5, r.label, r.value,
       (SELECT jsonb_agg(jsonb_build_object('label', c.label, 'probability', e.value)
                         ORDER BY e.n)
        FROM jsonb_array_elements(NULLIF(p.probabilities, 'null'::jsonb))
             WITH ORDINALITY AS e(value, n)
        JOIN unnest($11::text[]) WITH ORDINALITY AS c(label, n) USING (n)),
       r.confidence, $9, r.refusal
FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[], $6::text[], $7::float8[],
            $8::float8[], $10::text[])
     WITH ORDINALITY AS r(id, primary_id, primary_created_at, model_id, label, value,
                          confidence, refusal, n)
JOIN jsonb_array_elements($12::jsonb) WITH ORDINALITY AS p(probabilities, n) USING (n)
"""
"""The probabilities travel as one JSON array of arrays of numbers and are labelled here, in
PostgreSQL, as the primaries' are stored: [{"label": ..., "probability": ...}, ...]."""


async def insert_shadow_predictions(
    session: AsyncSession, answers: Sequence[ShadowColumns]
) -> None:
    """Store shadow answers, in the session's transaction: one statement per shadow version
    (columns as arrays)."""
    await insert_shadow_rows(await driver_connection(session), answers)


async def insert_shadow_rows(
    connection: asyncpg.Connection, answers: Sequence[ShadowColumns]
) -> None:
    """Store shadow answers on an asyncpg connection (a prediction job's, in the transaction
    that stores the primaries): one statement per shadow version."""
    for columns in answers:
        await connection.execute(
            INSERT_SHADOWS,
            columns.ids,
            columns.primary_ids,
            columns.primary_created_ats,
            columns.model_ids,
            columns.model_version_id,
            columns.labels,
            columns.values,
            columns.confidences,
            columns.latency_ms,
            columns.refusals,
            columns.classes,
            orjson.dumps(columns.probabilities).decode(),
        )


RECORD_SHADOW_COMMITS = f"""
WITH commits AS (
    INSERT INTO {PredictionCommit.__tablename__} (model_version_id, prediction_ids, shadows)
    SELECT s.version_id, array_agg(s.primary_id ORDER BY s.n), true
    FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS s(primary_id, version_id, n)
    GROUP BY s.version_id
    RETURNING id)
SELECT pg_notify('{PREDICTIONS_CHANNEL}',
                 CASE WHEN count(*) <= 200 THEN string_agg(id::text, ',') ELSE '' END)
FROM commits
"""
"""One feed commit per primary version (as the prediction writer records a group), and one
NOTIFY with the commit ids (empty past 200 of them, to stay far below PostgreSQL's 8000
bytes: listeners read from their position, the payload only says "look")."""


async def record_shadow_commits(
    session: AsyncSession,
    primary_ids: Sequence[uuid.UUID],
    primary_version_ids: Sequence[uuid.UUID],
) -> None:
    """Record, in the transaction storing shadow answers, which primaries they answer (each
    with the version that answered it), for the live feed: a `prediction_commits` row per
    primary version marked `shadows`, and one notification on the predictions channel (at
    most the commit ids), sent at COMMIT."""
    connection = await driver_connection(session)
    await connection.execute(RECORD_SHADOW_COMMITS, list(primary_ids), list(primary_version_ids))


async def shadows_of_predictions(
    session: AsyncSession, primary_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ShadowPrediction]]:
    """Each primary prediction's shadow answers, oldest first."""
    statement = (
        select(ShadowPrediction)
        .where(ShadowPrediction.primary_id.in_(primary_ids))
        .order_by(ShadowPrediction.created_at, ShadowPrediction.id)
    )
    grouped: dict[uuid.UUID, list[ShadowPrediction]] = defaultdict(list)
    for row in await session.scalars(statement):
        grouped[row.primary_id].append(row)
    return grouped


async def shadow_pairs(
    session: AsyncSession, query: PredictionQuery, *, version_id: uuid.UUID, limit: int
) -> list[tuple[Prediction, ShadowPrediction]]:
    """The newest `limit` answers of a shadow version to the primary predictions `query`
    selects, with those primaries (joined by their whole key, so one partition is read per
    row; a window on the primaries' time bounds the shadows' scan too)."""
    statement = (
        select(Prediction, ShadowPrediction)
        .join(
            ShadowPrediction,
            and_(
                ShadowPrediction.primary_id == Prediction.id,
                ShadowPrediction.primary_created_at == Prediction.created_at,
            ),
        )
        .where(
            ShadowPrediction.model_version_id == version_id,
            *query.conditions(),
            *_shadow_window(query),
        )
        .order_by(ShadowPrediction.created_at.desc(), ShadowPrediction.id.desc())
        .limit(limit)
    )
    return [(primary, shadow) for primary, shadow in (await session.execute(statement)).all()]


def _shadow_window(query: PredictionQuery) -> list[ColumnElement[bool]]:
    """The primaries' window as bounds on their shadows, which PostgreSQL does not carry over
    the join by itself: a shadow is stored with its primary or after it (`created_at` is its
    transaction's time), so the scan of a version's shadows, newest first, stops at the window's
    start instead of walking every older shadow."""
    bounds: list[ColumnElement[bool]] = []
    if query.created_after is not None:
        bounds.append(ShadowPrediction.created_at >= query.created_after)
    if query.created_before is not None:
        bounds.append(ShadowPrediction.primary_created_at < query.created_before)
    return bounds
