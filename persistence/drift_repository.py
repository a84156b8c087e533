"""Live inputs and outputs counted per reference bin, for every (version, feature) asked, in
one statement over the most recent predictions of each version in a window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import ReferenceProfile

NUMERIC_INPUT = "numeric"
CATEGORY_INPUT = "category"
OUTPUT_LABEL = "label"
OUTPUT_VALUE = "value"


@dataclass(frozen=True, slots=True)
class BinQuery:
    """One distribution to count: `position` identifies it in the answer; numeric kinds are
    binned by `edges` (as width_bucket does) and checked against minimum and maximum."""

    version_id: uuid.UUID
    position: int
    feature: str
    kind: str
    edges: Sequence[float] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class BinCount:
    version_id: uuid.UUID
    position: int
    bin: str | None
    """width_bucket's bin number or the category; None when the value is absent."""
    out_of_range: bool | None
    count: int


_COUNT_BINS = text(
    """
WITH wanted AS (
    SELECT version_id, position, feature, kind, minimum, maximum,
           ARRAY(SELECT jsonb_array_elements_text(edges::jsonb)::float8) AS edges
    FROM unnest(CAST(:versions AS uuid[]), CAST(:positions AS int4[]), CAST(:features AS text[]),
                CAST(:kinds AS text[]), CAST(:edges AS text[]), CAST(:minimums AS float8[]),
                CAST(:maximums AS float8[]))
         AS w(version_id, position, feature, kind, edges, minimum, maximum)
),
sample AS (
    SELECT v.version_id, p.inputs, p.label, p.value
    FROM (SELECT DISTINCT version_id FROM wanted) AS v
    CROSS JOIN LATERAL (
        SELECT inputs, label, value FROM predictions
        WHERE model_version_id = v.version_id
          AND created_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
          AND created_at < coalesce(CAST(:until AS timestamptz), 'infinity')
        ORDER BY created_at DESC
        LIMIT :max_sample
    ) AS p
)
SELECT w.version_id, w.position,
       CASE WHEN w.kind IN ('numeric', 'value') THEN width_bucket(n.number, w.edges)::text
            WHEN w.kind = 'label' THEN s.label
            ELSE s.inputs ->> w.feature END AS bin,
       n.number < w.minimum OR n.number > w.maximum AS out_of_range,
       count(*) AS count
FROM wanted AS w
JOIN sample AS s ON s.version_id = w.version_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN w.kind = 'value' THEN s.value
                WHEN w.kind = 'numeric' AND jsonb_typeof(s.inputs -> w.feature) = 'number'
                THEN (s.inputs ->> w.feature)::float8 END AS number
) AS n
GROUP BY 1, 2, 3, 4
"""
)


async def count_bins(
    session: AsyncSession,
    queries: Sequence[BinQuery],
    *,
    since: datetime | None,
    until: datetime | None,
    max_sample: int,
) -> list[BinCount]:
    """Counts per (version, position, bin, out of range) over each version's `max_sample`
    most recent predictions created in [since, until)."""
    if not queries:
        return []
    rows = await session.execute(
        _COUNT_BINS,
        {
            "versions": [query.version_id for query in queries],
            "positions": [query.position for query in queries],
            "features": [query.feature for query in queries],
            "kinds": [query.kind for query in queries],
            "edges": [orjson.dumps(list(query.edges)).decode() for query in queries],
            "minimums": [query.minimum for query in queries],
            "maximums": [query.maximum for query in queries],
            "since": since,
            "until": until,
            "max_sample": max_sample,
        },
    )
    return [BinCount(*row) for row in rows]


async def profiles_for_versions(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The stored reference profile (JSON) of each version that has one."""
    rows = await session.execute(
        select(ReferenceProfile.version_id, ReferenceProfile.profile).where(
            ReferenceProfile.version_id.in_(version_ids)
        )
    )
    return {version_id: profile for version_id, profile in rows}
