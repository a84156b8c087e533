"""Audit use cases over stored predictions: keyset pages, look-ups by id and statistics
(overall and grouped, from the hourly and daily roll-ups when the filter allows), each read on
the caller's session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence import prediction_repository, stats_repository
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.prediction_repository import Keyset
from modelql.persistence.stats_repository import Dimension, Group, Interval, Totals
from modelql.persistence.tables import PredictionRow

__all__ = [
    "Dimension",
    "Group",
    "Interval",
    "Keyset",
    "PredictionQuery",
    "Totals",
    "groups",
    "label_counts",
    "p95_latency",
    "prediction_page",
    "predictions_by_id",
    "totals",
]


async def prediction_page(
    session: AsyncSession,
    query: PredictionQuery,
    *,
    limit: int,
    after: Keyset | None,
    unread: frozenset[str],
) -> list[PredictionRow]:
    """At most `limit` selected predictions, newest first, strictly after the keyset `after`;
    the columns named in `unread` are null."""
    return await prediction_repository.list_predictions(
        session, query, limit=limit, after=after, unread=unread
    )


async def predictions_by_id(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PredictionRow]:
    """The stored predictions of `ids` (an id nothing was stored under is absent)."""
    return await prediction_repository.predictions_by_id(session, ids)


async def totals(session: AsyncSession, query: PredictionQuery) -> Totals:
    """Count, means, first and last time and outcome counts of the selected predictions."""
    return await stats_repository.totals(session, query)


async def label_counts(session: AsyncSession, query: PredictionQuery) -> list[tuple[str, int]]:
    """(label, count) of the selected predictions, most frequent first."""
    return await stats_repository.label_counts(session, query)


async def p95_latency(session: AsyncSession, query: PredictionQuery) -> float | None:
    """The 95th percentile of the selected predictions' latency."""
    return await stats_repository.p95_latency(session, query)


async def groups(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    *,
    with_p95: bool,
) -> list[Group]:
    """Statistics per group of `by` (TIME: buckets of `interval`), at most `limit` groups; the
    p95 latency only `with_p95` (it costs a second statement or a sort)."""
    return await stats_repository.groups(session, query, by, interval, limit, with_p95=with_p95)


async def groups_and_totals(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    *,
    with_p95: bool,
) -> tuple[list[Group], Totals]:
    """`groups` and `totals` of the same predictions, read at once."""
    return await stats_repository.groups_and_totals(
        session, query, by, interval, limit, with_p95=with_p95
    )
