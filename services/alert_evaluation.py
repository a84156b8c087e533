"""Evaluating every enabled rule once per period (Prometheus semantics: pending until the
condition has held for the rule's `for`, then firing; resolved when it clears). The period is
claimed in the same transaction as the states and the deliveries it produces, so across
replicas each period is evaluated, and each change delivered, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import alert_repository as repo
from modelql.persistence.notifications import notify
from modelql.persistence.tables import AlertRule
from modelql.services.alert_rules import Signal, holds
from modelql.services.catalogue import Catalogue
from modelql.services.drift import DriftPolicy, DriftReport, drift_reports

KEPT_PERIODS = 100
"""Claims older than this many periods are deleted by the next claim."""


def period_start(now: datetime, period_s: float) -> datetime:
    """The start of the period `now` falls in (periods aligned on the epoch)."""
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % period_s, UTC)


@dataclass(frozen=True)
class Transition:
    rule_id: str
    state: str
    value: float | None


def next_state(rule: AlertRule, condition: bool, now: datetime) -> tuple[str, datetime | None]:
    """The rule's state and pending-since after one evaluation."""
    if condition:
        since = rule.pending_since if rule.state in ("pending", "firing") else now
        assert since is not None
        if rule.state == "firing" or now - since >= timedelta(seconds=rule.for_s):
            return "firing", since
        return "pending", since
    return ("resolved" if rule.state == "firing" else "ok"), None


def _worst_score(report: DriftReport) -> float | None:
    """The report's highest drift score (features and prediction); None: none computed."""
    drifts = [*report.features, *([report.prediction] if report.prediction else [])]
    scores = [drift.score for drift in drifts if drift.score is not None]
    return max(scores, default=None)


def _payload(rule: AlertRule, state: str, value: float | None, now: datetime) -> dict[str, Any]:
    return {
        "rule": {"id": str(rule.id), "name": rule.name, "signal": rule.signal},
        "state": state,
        "value": value,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "at": now.isoformat(),
    }


class AlertEvaluator:
    """Evaluates the period of `now` unless another evaluator has; `name` says who did."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        period_s: float,
        name: str,
        catalogue: Catalogue,
        drift_policy: DriftPolicy,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._catalogue = catalogue
        self._drift_policy = drift_policy
        self._changed = changed
        self._sessionmaker = sessionmaker
        self._period_s = period_s
        self._period_s_delta = timedelta(seconds=period_s)
        self._name = name

    async def evaluate(self, now: datetime) -> list[Transition] | None:
        """The state changes of this period; None when it was evaluated elsewhere."""
        async with self._sessionmaker() as session, session.begin():
            start = period_start(now, self._period_s)
            if not await repo.claim_period(session, start, self._name):
                return None
            await repo.forget_periods_before(session, start - KEPT_PERIODS * self._period_s_delta)
            changes = [
                change
                for rule in await repo.enabled_rules_locked(session)
                if (change := await self._evaluate(session, rule, now)) is not None
            ]
            # Every evaluated period, since the rules' last values moved; the payload names
            # the rules whose state changed (possibly none).
            await notify(session, repo.ALERTS_CHANNEL, ",".join(c.rule_id for c in changes))
        self._changed()
        return changes

    async def _evaluate(
        self, session: AsyncSession, rule: AlertRule, now: datetime
    ) -> Transition | None:
        window_start = now - timedelta(seconds=rule.window_s)
        if rule.signal == Signal.DRIFT:
            value = await self._drift(session, rule, window_start, now)
        else:
            value = await repo.series_value(
                session, rule.signal, rule.model_id, rule.version_id, window_start, now
            )
        condition = value is not None and holds(rule.comparison, value, rule.threshold)
        state, pending_since = next_state(rule, condition, now)
        changed = state != rule.state
        rule.last_value, rule.evaluated_at, rule.pending_since = value, now, pending_since
        if not changed:
            return None
        rule.state, rule.changed_at = state, now
        if rule.webhook_url is not None and state in ("firing", "resolved"):
            await repo.add_delivery(
                session, rule.id, rule.webhook_url, _payload(rule, state, value, now), now
            )
        return Transition(str(rule.id), state, value)

    async def _drift(
        self, session: AsyncSession, rule: AlertRule, since: datetime, until: datetime
    ) -> float | None:
        """The highest drift score of the rule's version (or of any of the model's versions)
        over the window; None when no version has enough predictions for one."""
        versions = (
            [rule.version_id]
            if rule.version_id is not None
            else await repo.version_ids(session, rule.model_id)
        )
        reports = await drift_reports(
            session,
            self._catalogue,
            versions,
            since=since,
            until=until,
            policy=self._drift_policy,
        )
        scores = [s for r in reports.values() if (s := _worst_score(r)) is not None]
        return max(scores, default=None)
