"""Keeping the prediction store's partitions: created ahead (at start-up, then every hour) and,
with a retention, the ones entirely older than it dropped whole."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modelql.persistence import partitions
from modelql.persistence.partitions import Partition, PartitionInterval, PartitionInUseError

logger = logging.getLogger("modelql")

EVERY_S = 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


class StoreMaintenance:
    """One process's share of the upkeep; replicas doing the same take turns (a lock)."""

    def __init__(
        self,
        *,
        database_url: str,
        interval: PartitionInterval,
        retention: timedelta | None,
        every_s: float = EVERY_S,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._database_url = database_url
        self._interval = interval
        self._retention = retention
        self._every_s = every_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def ensure_partitions(self) -> list[Partition]:
        """Create the partitions missing until a few periods ahead; the new ones."""
        async with partitions.maintenance_connection(self._database_url) as connection:
            return await partitions.ensure(connection, interval=self._interval, now=self._clock())

    async def prune(self, retention: timedelta | None = None) -> list[Partition]:
        """Drop the partitions entirely older than the retention (this one, else the
        configured one); the dropped ones. PartitionInUseError while verify reads one."""
        kept = retention or self._retention
        assert kept is not None, "prune needs a retention"
        async with partitions.maintenance_connection(self._database_url) as connection:
            return await partitions.prune(connection, before=self._clock() - kept)

    async def start(self) -> None:
        """Create what is missing now (failing loudly), then keep at it in the background."""
        await self.ensure_partitions()
        self._task = asyncio.create_task(self._keep_up(), name="modelql-store-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _keep_up(self) -> None:
        """Prune (with a retention) at once, then every period both prune and create ahead;
        a failed round is logged and the next one tries again."""
        while True:
            try:
                if self._retention is not None:
                    dropped = await self.prune()
                    if dropped:
                        logger.info("pruned %s", ", ".join(p.name for p in dropped))
            except PartitionInUseError as refused:
                logger.warning("prune postponed: %s", refused)
            except Exception:
                logger.exception("pruning the prediction store failed")
            await asyncio.sleep(self._every_s)
            try:
                await self.ensure_partitions()
            except Exception:
                logger.exception("creating partitions of the prediction store failed")
