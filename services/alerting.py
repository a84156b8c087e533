"""The background round of alerting: every period, evaluate (if no replica has) and deliver
what is due; a failed round is logged and the next one tries again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from modelql.services.alert_delivery import AlertDeliverer
from modelql.services.alert_evaluation import AlertEvaluator, period_start
from modelql.services.periodic import PeriodicTask


def _now() -> datetime:
    return datetime.now(UTC)


class Alerting:
    def __init__(
        self,
        evaluator: AlertEvaluator,
        deliverer: AlertDeliverer,
        *,
        period_s: float,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._evaluator = evaluator
        self._deliverer = deliverer
        self._period_s = period_s
        self._clock = clock
        self._task = PeriodicTask(
            self.round,
            pause=self._pause,
            name="modelql-alerting",
            failure="an alerting round failed",
        )

    async def round(self) -> None:
        now = self._clock()
        await self._evaluator.evaluate(now)
        await self._deliverer.deliver_due(now)

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def _pause(self) -> float:
        """Until just after the next period starts (deliveries retried at most a tenth of a
        period late)."""
        now = self._clock()
        started = period_start(now, self._period_s).timestamp()
        next_period = started + self._period_s - now.timestamp()
        return min(next_period + 0.01, max(self._period_s / 10, 0.05))
