"""SQL of alert rules: the rules and their states, the periods claimed, the series a rule
watches (computed over the prediction store) and the webhook outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from modelql.persistence.tables import (
    AlertDelivery,
    AlertPeriod,
    AlertRule,
    LatestOutcome,
    Model,
    ModelVersion,
    Prediction,
    PredictionFailureCount,
)

ALERTS_CHANNEL = "modelql_alerts"
"""Alert rules created, changed or evaluated into another state (once per transaction)."""

PERCENTILES = {"LATENCY_P50": 0.5, "LATENCY_P95": 0.95, "LATENCY_P99": 0.99}


@dataclass(frozen=True)
class ModelRef:
    id: uuid.UUID
    task: str


async def model(session: AsyncSession, name: str) -> ModelRef | None:
    row = (await session.execute(select(Model.id, Model.task).where(Model.name == name))).first()
    return None if row is None else ModelRef(row.id, row.task)


async def model_name(session: AsyncSession, model_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Model.name).where(Model.id == model_id))


async def version_id(session: AsyncSession, model_id: uuid.UUID, number: int) -> uuid.UUID | None:
    return (
        await session.execute(
            select(ModelVersion.id).where(
                ModelVersion.model_id == model_id, ModelVersion.number == number
            )
        )
    ).scalar_one_or_none()


async def add_rule(session: AsyncSession, rule: AlertRule) -> AlertRule:
    session.add(rule)
    await session.flush()
    return rule


async def rules(session: AsyncSession) -> list[AlertRule]:
    return list((await session.scalars(select(AlertRule).order_by(AlertRule.created_at))).all())


async def rules_with_models(session: AsyncSession) -> list[tuple[AlertRule, str]]:
    query = (
        select(AlertRule, Model.name)
        .join(Model, Model.id == AlertRule.model_id)
        .order_by(AlertRule.created_at)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def rule(session: AsyncSession, rule_id: uuid.UUID) -> AlertRule | None:
    return await session.get(AlertRule, rule_id, with_for_update=True)


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID) -> bool:
    found = await session.get(AlertRule, rule_id, with_for_update=True)
    if found is None:
        return False
    await session.delete(found)
    return True


async def claim_period(session: AsyncSession, period_start: datetime, by: str) -> bool:
    """Claim the period for this transaction; False when another evaluator has (or holds it
    uncommitted: the insert waits for that transaction, then sees its outcome)."""
    claimed = await session.execute(
        pg_insert(AlertPeriod)
        .values(period_start=period_start, evaluated_by=by)
        .on_conflict_do_nothing()
        .returning(AlertPeriod.period_start)
    )
    return claimed.first() is not None


async def forget_periods_before(session: AsyncSession, before: datetime) -> None:
    """Drop old claims (only the latest ones can still be contended)."""
    await session.execute(delete(AlertPeriod).where(AlertPeriod.period_start < before))


async def enabled_rules_locked(session: AsyncSession) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.id).with_for_update()
    return list((await session.scalars(query)).all())


async def series_value(
    session: AsyncSession,
    signal: str,
    model_id: uuid.UUID,
    version: uuid.UUID | None,
    since: datetime,
    until: datetime,
) -> float | None:
    """The rule's series over (since, until]; None when the window holds nothing to judge."""
    if signal == "ERROR_RATE":
        return await _error_rate(session, model_id, version, since, until)
    measure: ColumnElement[Any]
    if signal in ("ACCURACY", "MAE"):
        versions = select(ModelVersion.id).where(ModelVersion.model_id == model_id)
        measure = (
            func.avg(cast(LatestOutcome.correct, Integer))
            if signal == "ACCURACY"
            else func.avg(func.abs(LatestOutcome.value - LatestOutcome.predicted_value))
        )
        query = select(measure).where(
            LatestOutcome.predicted_at > since,
            LatestOutcome.predicted_at <= until,
            LatestOutcome.model_version_id.in_(versions)
            if version is None
            else LatestOutcome.model_version_id == version,
        )
    else:
        measure = (
            func.count()
            if signal == "VOLUME"
            else func.percentile_cont(PERCENTILES[signal]).within_group(Prediction.latency_ms)
        )
        query = select(measure).where(
            Prediction.model_id == model_id,
            Prediction.created_at > since,
            Prediction.created_at <= until,
        )
        if version is not None:
            query = query.where(Prediction.model_version_id == version)
    value = (await session.execute(query)).scalar_one_or_none()
    return None if value is None else float(value)


async def _error_rate(
    session: AsyncSession,
    model_id: uuid.UUID,
    version: uuid.UUID | None,
    since: datetime,
    until: datetime,
) -> float | None:
    """Failed instances over failed and stored ones; a second of failures that overlaps the
    window counts whole. None when the window holds neither."""
    failed = select(func.coalesce(func.sum(PredictionFailureCount.failures), 0)).where(
        PredictionFailureCount.model_id == model_id,
        PredictionFailureCount.second > since - timedelta(seconds=1),
        PredictionFailureCount.second <= until,
    )
    stored = select(func.count()).where(
        Prediction.model_id == model_id,
        Prediction.created_at > since,
        Prediction.created_at <= until,
    )
    if version is not None:
        failed = failed.where(PredictionFailureCount.model_version_id == version)
        stored = stored.where(Prediction.model_version_id == version)
    row = (await session.execute(select(failed.scalar_subquery(), stored.scalar_subquery()))).one()
    failures, predictions = int(row[0]), int(row[1])
    total = failures + predictions
    return None if total == 0 else failures / total


async def version_ids(session: AsyncSession, model_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(ModelVersion.id).where(ModelVersion.model_id == model_id)
    return list((await session.scalars(query)).all())


async def add_delivery(
    session: AsyncSession, rule_id: uuid.UUID, url: str, payload: dict[str, Any], due: datetime
) -> None:
    await session.execute(
        insert(AlertDelivery).values(rule_id=rule_id, url=url, payload=payload, next_attempt_at=due)
    )


@dataclass(frozen=True)
class DueDelivery:
    id: int
    url: str
    payload: dict[str, Any]
    secret: str
    attempts: int


async def lease_due_deliveries(
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int
) -> list[DueDelivery]:
    """Lease the deliveries due (their next attempt moved to `lease_until`, so no other
    replica takes them meanwhile; SKIP LOCKED: concurrent leases take different rows)."""
    due = (
        select(AlertDelivery.id)
        .where(AlertDelivery.delivered_at.is_(None), AlertDelivery.next_attempt_at <= now)
        .order_by(AlertDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    leased = (
        update(AlertDelivery)
        .where(AlertDelivery.id.in_(due))
        .values(next_attempt_at=lease_until)
        .returning(
            AlertDelivery.id,
            AlertDelivery.rule_id,
            AlertDelivery.url,
            AlertDelivery.payload,
            AlertDelivery.attempts,
        )
    )
    rows = (await session.execute(leased)).all()
    keys = select(AlertRule.id, AlertRule.secret).where(
        AlertRule.id.in_({row.rule_id for row in rows})
    )
    secret_of = {row.id: row.secret for row in (await session.execute(keys)).all()}
    return sorted(
        (
            DueDelivery(row.id, row.url, row.payload, secret_of[row.rule_id], row.attempts)
            for row in rows
        ),
        key=lambda delivery: delivery.id,
    )


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    *,
    delivered_at: datetime | None,
    next_attempt_at: datetime,
    status_code: int | None,
    error: str | None,
) -> None:
    await session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id)
        .values(
            attempts=AlertDelivery.attempts + 1,
            delivered_at=delivered_at,
            next_attempt_at=next_attempt_at,
            status_code=status_code,
            error=error,
        )
    )


async def deliveries(
    session: AsyncSession, rule_id: uuid.UUID | None, limit: int
) -> list[AlertDelivery]:
    query = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(limit)
    if rule_id is not None:
        query = query.where(AlertDelivery.rule_id == rule_id)
    return list((await session.scalars(query)).all())
