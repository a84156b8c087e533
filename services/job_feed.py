"""Prediction jobs' changes for subscriptions: a notification (`modelql_jobs`, once per
transaction, from any process) wakes the subscribers of that job, which then read the job by
id. Changes coalesce: a subscriber that has not read the last wake-up gets no second one, and
reads the job as it is when it does, so a fast job cannot overflow a slow reader."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.services.feed import Feed
from modelql.services.subscribers import Subscriptions

EVERY_JOB = uuid.UUID(int=0)
"""Wakes every subscriber: the listener reconnected, so notifications may have been lost."""


class JobFeed(Feed[uuid.UUID]):
    """Wakes the subscribers of the jobs that changed; a subscriber's `select` keeps its job."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], subscriptions: Subscriptions
    ) -> None:
        super().__init__(sessionmaker, subscriptions)
        self._changed: set[uuid.UUID] = set()

    def wake(self, payload: str = "") -> None:
        try:
            self._changed.add(uuid.UUID(payload))
        except ValueError:
            self._changed.add(EVERY_JOB)
        super().wake(payload)

    async def _start_position(self, session: AsyncSession) -> None:
        return None  # nothing to catch up on: a subscription first reads its job

    async def _catch_up(self, session: AsyncSession) -> None:
        changed, self._changed = self._changed, set()
        everything = EVERY_JOB in changed
        for subscriber in list(self._subscribers):
            if subscriber.ended is not None or subscriber.waiting:
                continue
            for job_id in changed:
                selected = subscriber.select(job_id)
                if selected is not None or everything:
                    subscriber.offer(job_id)
                    break


def selector(job_id: uuid.UUID) -> Callable[[uuid.UUID], uuid.UUID | None]:
    """A subscriber's filter: its own job's wake-ups."""
    return lambda changed: changed if changed == job_id else None
