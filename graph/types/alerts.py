"""Alert rules as GraphQL types: the rule with its state and recent deliveries, and the
inputs of the mutations on rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from modelql.graph.context import GraphContext
from modelql.persistence.tables import AlertDelivery, AlertRule
from modelql.services.alert_rules import AlertRuleInput, Comparison, Signal

Info = strawberry.Info[GraphContext, None]

# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
AlertSignal = Signal
strawberry.enum(
    AlertSignal,
    name="AlertSignal",
    description="VOLUME: predictions in the window; LATENCY_P*: a latency percentile (ms); "
    "ACCURACY (classifiers) and MAE (regressors): of the window's predictions with outcomes; "
    "DRIFT: the highest drift score (as inputDrift); ERROR_RATE: failed instances (inputs "
    "refused, scoring errors) over failed and stored ones.",
)
AlertComparison = Comparison
strawberry.enum(AlertComparison, name="AlertComparison")


@strawberry.type(name="AlertDelivery", description="One webhook delivery and its latest attempt.")
class AlertDeliveryType:
    id: strawberry.ID
    state: str = strawberry.field(description="The rule state it announces.")
    created_at: datetime
    attempts: int
    delivered_at: datetime | None
    next_attempt_at: datetime
    status_code: int | None
    error: str | None
    payload: JSON

    @classmethod
    def of(cls, row: AlertDelivery) -> AlertDeliveryType:
        return cls(
            id=strawberry.ID(str(row.id)),
            state=str(row.payload.get("state")),
            created_at=row.created_at,
            attempts=row.attempts,
            delivered_at=row.delivered_at,
            next_attempt_at=row.next_attempt_at,
            status_code=row.status_code,
            error=row.error,
            payload=JSON(row.payload),
        )


@strawberry.type(name="AlertRule", description="A condition on a model's live series.")
class AlertRuleType:
    id: strawberry.ID
    name: str
    signal: AlertSignal
    comparison: AlertComparison
    threshold: float
    window_seconds: float
    for_seconds: float
    webhook_url: str | None
    enabled: bool
    state: str = strawberry.field(description="ok, pending, firing or resolved.")
    pending_since: datetime | None
    changed_at: datetime | None
    last_value: float | None
    evaluated_at: datetime | None
    created_at: datetime
    model_id: strawberry.Private[uuid.UUID]
    version_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def of(cls, row: AlertRule) -> AlertRuleType:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            signal=Signal(row.signal),
            comparison=Comparison(row.comparison),
            threshold=row.threshold,
            window_seconds=row.window_s,
            for_seconds=row.for_s,
            webhook_url=row.webhook_url,
            enabled=row.enabled,
            state=row.state,
            pending_since=row.pending_since,
            changed_at=row.changed_at,
            last_value=row.last_value,
            evaluated_at=row.evaluated_at,
            created_at=row.created_at,
            model_id=row.model_id,
            version_id=row.version_id,
        )

    @strawberry.field(description="The watched model's name.")
    async def model(self, info: Info) -> str:
        row = await info.context.loaders.model_by_id.load(self.model_id)
        return "" if row is None else str(row.name)

    @strawberry.field(description="The watched version's number; null: every version.")
    async def version(self, info: Info) -> int | None:
        if self.version_id is None:
            return None
        version = await info.context.loaders.version_by_id.load(self.version_id)
        return None if version is None else int(version.number)

    @strawberry.field(description="The most recent deliveries, newest first.")
    async def deliveries(self, info: Info, last: int = 20) -> list[AlertDeliveryType]:
        rows = await info.context.dependencies.alert_rules.deliveries(
            uuid.UUID(self.id), min(max(last, 0), 100)
        )
        return [AlertDeliveryType.of(row) for row in rows]


@strawberry.input
class CreateAlertRuleInput:
    name: str
    model: str
    version: int | None = strawberry.field(default=None, description="Null: every version.")
    signal: AlertSignal
    comparison: AlertComparison
    threshold: float = strawberry.field(description="Finite.")
    window_seconds: float = strawberry.field(description="Positive: the series' window.")
    for_seconds: float = strawberry.field(
        default=0.0, description="How long the condition must hold before firing (≥ 0)."
    )
    webhook_url: str | None = strawberry.field(
        default=None, description="http(s), a public address unless the settings allow others."
    )

    def request(self) -> AlertRuleInput:
        given: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "version": self.version,
            "signal": Signal(self.signal),
            "comparison": Comparison(self.comparison),
            "threshold": self.threshold,
            "window_s": self.window_seconds,
            "for_s": self.for_seconds,
            "webhook_url": self.webhook_url,
        }
        return AlertRuleInput(**given)
