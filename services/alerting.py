"""The background round of alerting: every period, evaluate (if no replica has) and deliver
what is due; a failed round is logged and the next one tries again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from modelql.services.alert_delivery import AlertDeliverer
from modelql.services.alert_evaluation import AlertEvaluator, period_start

logger = logging.getLogger("modelql")


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
        self._task: asyncio.Task[None] | None = None

    async def round(self) -> None:
        now = self._clock()
        await self._evaluator.evaluate(now)
        await self._deliverer.deliver_due(now)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_up(), name="modelql-alerting")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _keep_up(self) -> None:
        """A round at once, then one just after each period starts (deliveries retried at
        most a tenth of a period late)."""
        while True:
            try:
                await self.round()
            except Exception:
                logger.exception("an alerting round failed")
            now = self._clock()
            started = period_start(now, self._period_s).timestamp()
            next_period = started + self._period_s - now.timestamp()
            await asyncio.sleep(min(next_period + 0.01, max(self._period_s / 10, 0.05)))
