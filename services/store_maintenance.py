"""Keeping the prediction store's partitions: created ahead (at start-up, then every hour) and,
with a retention, the ones entirely older than it dropped whole (with an archive location,
each archived first, and kept when its archive failed). With a job retention, the uploaded
files and bookkeeping of prediction jobs finished longer ago go too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from modelql.persistence import job_queue, job_repository, partitions
from modelql.persistence.partitions import (
    Partition,
    PartitionInterval,
    PartitionInUseError,
    PruneInterruptedError,
)
from modelql.services.periodic import PeriodicTask

if TYPE_CHECKING:  # archiving imports pyarrow: only processes that archive pay for it
    from modelql.services.archiving import ArchivedPartition, PartitionArchiver

logger = logging.getLogger("modelql")

EVERY_S = 3600.0
JOBS_PER_TRANSACTION = 200


@dataclass(frozen=True)
class PrunedJobs:
    jobs: int
    """Finished jobs whose uploaded file and parts were dropped."""
    log_rows: int
    """Rows of the job queue's log and statistics dropped."""


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
        job_retention: timedelta | None = None,
        archiver: PartitionArchiver | None = None,
        every_s: float = EVERY_S,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._database_url = database_url
        self._interval = interval
        self._retention = retention
        self._job_retention = job_retention
        self._archiver = archiver
        self._clock = clock
        self._task = PeriodicTask(
            self._upkeep,
            pause=lambda: every_s,
            name="modelql-store-maintenance",
            failure="creating partitions of the prediction store failed",
        )

    async def ensure_partitions(self) -> list[Partition]:
        """Create the partitions missing until a few periods ahead; the new ones."""
        async with partitions.maintenance_connection(self._database_url) as connection:
            return await partitions.ensure(connection, interval=self._interval, now=self._clock())

    async def prune(self, retention: timedelta | None = None) -> list[Partition]:
        """Drop the partitions entirely older than the retention (this one, else the
        configured one), each archived first when an archive is configured; the dropped ones.
        PartitionInUseError while verify or an archive reads one; PruneInterruptedError when
        an archive failed (that partition and the newer ones are kept)."""
        archiver = self._archiver

        async def archive(connection: asyncpg.Connection, partition: Partition) -> int:
            assert archiver is not None
            return (await archiver.archive(connection, partition)).manifest.outcomes.rows

        async with partitions.maintenance_connection(self._database_url) as connection:
            return await partitions.prune(
                connection,
                before=self._expiry(retention),
                before_drop=None if archiver is None else archive,
            )

    async def archive(
        self,
        archiver: PartitionArchiver,
        retention: timedelta | None = None,
        on_archived: Callable[[ArchivedPartition], None] = lambda archived: None,
    ) -> list[ArchivedPartition]:
        """Archive the partitions a prune would drop now, dropping nothing."""
        async with partitions.maintenance_connection(self._database_url) as connection:
            return await archiver.archive_expiring(
                connection, before=self._expiry(retention), on_archived=on_archived
            )

    async def prune_jobs(self, retention: timedelta | None = None) -> PrunedJobs:
        """Drop the uploaded files and parts of the prediction jobs finished longer ago than
        the retention (this one, else the configured job retention), a few hundred jobs per
        transaction, and what the job queue logged before then. The jobs' rows (state, counts,
        first errors) and their predictions stay."""
        kept = retention or self._job_retention
        assert kept is not None, "a job retention is needed"
        before = self._clock() - kept
        jobs = 0
        async with partitions.maintenance_connection(self._database_url) as connection:
            while True:
                async with connection.transaction():
                    pruned = await job_repository.prune_finished(
                        connection, finished_before=before, batch=JOBS_PER_TRANSACTION
                    )
                jobs += pruned
                if pruned < JOBS_PER_TRANSACTION:
                    break
            log_rows = await job_queue.prune_log(connection, before=before)
        return PrunedJobs(jobs=jobs, log_rows=log_rows)

    def _expiry(self, retention: timedelta | None) -> datetime:
        """Partitions ending before this are expired (by this retention, else the configured
        one)."""
        kept = retention or self._retention
        assert kept is not None, "a retention is needed"
        return self._clock() - kept

    async def start(self) -> None:
        """Create what is missing now (failing loudly), then keep at it in the background."""
        await self.ensure_partitions()
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _upkeep(self) -> None:
        """One round: prune jobs and partitions (with their retentions; a failure is logged
        here), then create ahead (a failure is the round's)."""
        await self._prune_jobs_logged()
        try:
            if self._retention is not None:
                dropped = await self.prune()
                if dropped:
                    logger.info("pruned %s", ", ".join(p.name for p in dropped))
        except PartitionInUseError as refused:
            logger.warning("prune postponed: %s", refused)
        except PruneInterruptedError as interrupted:
            logger.error(
                "pruning stopped after %d partitions: %s",
                len(interrupted.dropped),
                interrupted,
                exc_info=interrupted.__cause__,
            )
        except Exception:
            logger.exception("pruning the prediction store failed")
        await self.ensure_partitions()

    async def _prune_jobs_logged(self) -> None:
        if self._job_retention is None:
            return
        try:
            pruned = await self.prune_jobs()
        except Exception:
            logger.exception("pruning finished prediction jobs failed")
            return
        if pruned.jobs:
            logger.info("pruned the files and parts of %d finished prediction jobs", pruned.jobs)
