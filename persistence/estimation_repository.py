"""What performance estimation reads: a version's labelled predictions of a reference window,
and its predictions of a window with their outcome if any; each bounded to the most recent rows
(read by the (version, createdAt) indexes), with the time bucket worked out in SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.stats_repository import STRIDES, WEEK_ORIGIN, Interval


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """One classification prediction: its time bucket (createdAt for the reference), the label
    it predicted, its probabilities as stored ([{label, probability}], None without) and its
    outcome's label, if any."""

    bucket: datetime
    predicted: str | None
    probabilities: list[dict[str, Any]] | None
    observed: str | None


_REFERENCE = text(
    """
SELECT o.predicted_at, p.label, p.probabilities, o.label
FROM latest_outcomes AS o
JOIN predictions AS p ON p.id = o.prediction_id AND p.created_at = o.predicted_at
WHERE o.model_version_id = :version
  AND o.predicted_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
  AND o.predicted_at < coalesce(CAST(:until AS timestamptz), 'infinity')
ORDER BY o.predicted_at DESC
LIMIT :limit
"""
)

_ANALYSIS = """
SELECT date_bin(interval '{stride}', p.created_at, {origin}), p.label, p.probabilities, o.label
FROM predictions AS p
LEFT JOIN latest_outcomes AS o ON o.prediction_id = p.id AND o.predicted_at = p.created_at
WHERE p.model_version_id = :version
  AND p.created_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
  AND p.created_at < coalesce(CAST(:until AS timestamptz), 'infinity')
ORDER BY p.created_at DESC
LIMIT :limit
"""
_ANALYSIS_BY_INTERVAL = {
    interval: text(_ANALYSIS.format(stride=stride, origin=WEEK_ORIGIN))
    for interval, stride in STRIDES.items()
}


async def reference_rows(
    session: AsyncSession,
    version_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[ScoredRow]:
    """The `limit` most recent predictions of the version created in [since, until) that have
    an outcome (newest first)."""
    rows = await session.execute(
        _REFERENCE,
        {"version": version_id, "since": since, "until": until, "limit": limit},
    )
    return [ScoredRow(*row) for row in rows]


async def analysis_rows(
    session: AsyncSession,
    version_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    interval: Interval,
    limit: int,
) -> list[ScoredRow]:
    """The `limit` most recent predictions of the version created in [since, until), labelled
    or not (newest first), each with the start of its `interval` bucket."""
    rows = await session.execute(
        _ANALYSIS_BY_INTERVAL[interval],
        {"version": version_id, "since": since, "until": until, "limit": limit},
    )
    return [ScoredRow(*row) for row in rows]
