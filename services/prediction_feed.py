"""The predictions feed: every committed group of predictions once, in commit-id order, to
each subscriber whose filter selects any of them; and, to subscribers that select `shadows`,
every committed group of shadow answers, as the primaries they answer (recorded in the same
commit sequence, so the same position covers both).

Commit ids come from a sequence, so they are handed out in order but may commit out of
order, and a rolled-back transaction leaves a gap. The position is therefore the highest id
delivered plus the ids below it not yet seen ("missing"); each read asks for both, and a
missing id is given up once it is older than `gap_grace_s` (no transaction stays open that
long: the statement timeout ends it first)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import feed_repository
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.services.feed import Feed, PredictionGroup
from modelql.services.subscribers import Subscriptions

Commit = PredictionGroup
"""One committed group: the predictions one transaction stored, or the primaries whose
shadow answers it stored."""

READ_BATCH = 200
MAX_MISSING = 10_000


def selector(query: PredictionQuery, *, shadows: bool = False) -> Callable[[Commit], Commit | None]:
    """A subscriber's selection: the commit's predictions its filter keeps, None if none.
    A group of shadow answers is selected only by subscribers that asked for `shadows` (the
    others were sent those predictions when they were stored)."""

    def select(commit: Commit) -> Commit | None:
        if commit.shadows and not shadows:
            return None
        kept = [item for item in commit.predictions if query.matches(item)]
        return Commit(kept, commit.shadows) if kept else None

    return select


class PredictionFeed(Feed[Commit]):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions,
        *,
        gap_grace_s: float = 60.0,
    ) -> None:
        super().__init__(sessionmaker, subscriptions)
        self._gap_grace_s = gap_grace_s
        self._delivered_up_to = 0
        self._missing: dict[int, float] = {}
        """Ids below the position not seen yet, with the monotonic time they were noticed."""

    async def _start_position(self, session: AsyncSession) -> None:
        position = await feed_repository.feed_position(session)
        self._missing = {}
        self._note_missing(range(position.committed + 1, position.allocated + 1))
        self._delivered_up_to = position.allocated

    async def _catch_up(self, session: AsyncSession) -> None:
        while True:
            self._forget_old_gaps()
            commits = await feed_repository.commits_after(
                session, self._delivered_up_to, sorted(self._missing), limit=READ_BATCH
            )
            fresh = [commit for commit in commits if self._take(commit.id)]
            if fresh:
                ids = [prediction for commit in fresh for prediction in commit.prediction_ids]
                rows = await feed_repository.named_predictions(session, ids)
                for commit in fresh:
                    found = [rows[i] for i in commit.prediction_ids if i in rows]
                    self._fan_out(Commit(found, commit.shadows))
            if len(commits) < READ_BATCH:
                return

    def _take(self, commit_id: int) -> bool:
        """Record `commit_id` as delivered; False when it already was."""
        if commit_id in self._missing:
            del self._missing[commit_id]
            return True
        if commit_id <= self._delivered_up_to:
            return False
        self._note_missing(range(self._delivered_up_to + 1, commit_id))
        self._delivered_up_to = commit_id
        return True

    def _note_missing(self, ids: Sequence[int]) -> None:
        now = time.monotonic()
        for commit_id in ids[-MAX_MISSING:]:
            self._missing[commit_id] = now
        while len(self._missing) > MAX_MISSING:
            del self._missing[min(self._missing)]

    def _forget_old_gaps(self) -> None:
        horizon = time.monotonic() - self._gap_grace_s
        for commit_id in [i for i, noticed in self._missing.items() if noticed < horizon]:
            del self._missing[commit_id]
