"""Live inputs and outputs counted per reference bin, for every (version, feature) asked, in
one statement over the most recent predictions of each version in a window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import TextClause, select, text
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


_WINDOW = {"since": "AND created_at >= :since", "until": "AND created_at < :until"}
"""A bound of the window, written only when given: a bare bound lets PostgreSQL prune the
partitions outside it (a coalesce to infinity hid it) and keeps the version's index usable."""


@cache
def _count_bins(*bounds: str) -> TextClause:
    """One statement: each version's sample read once, through the (model_version_id,
    created_at, id) index newest first and only in the window's partitions, materialised, then
    every asked distribution counted from it in one hash aggregate."""
    window = " ".join(_WINDOW[bound] for bound in bounds)
    return text(
        f"""
WITH wanted AS (
    SELECT version_id, position, feature, kind, minimum, maximum,
           ARRAY(SELECT jsonb_array_elements_text(edges::jsonb)::float8) AS edges
    FROM unnest(CAST(:versions AS uuid[]), CAST(:positions AS int4[]), CAST(:features AS text[]),
                CAST(:kinds AS text[]), CAST(:edges AS text[]), CAST(:minimums AS float8[]),
                CAST(:maximums AS float8[]))
         AS w(version_id, position, feature, kind, edges, minimum, maximum)
),
sample AS MATERIALIZED (
    SELECT v.version_id, p.inputs, p.label, p.value
    FROM (SELECT DISTINCT version_id FROM wanted) AS v
    CROSS JOIN LATERAL (
        SELECT inputs, label, value FROM predictions
        WHERE model_version_id = v.version_id {window}
        ORDER BY created_at DESC, id DESC
        LIMIT :max_sample
    ) AS p
)
SELECT w.version_id, w.position, b.bin, b.out_of_range, count(*) AS count
FROM sample AS s
JOIN wanted AS w ON w.version_id = s.version_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN w.kind IN ('numeric', 'value') THEN width_bucket(n.number, w.edges)::text
                WHEN w.kind = 'label' THEN s.label
                ELSE n.input #>> '{{}}' END AS bin,
           n.number < w.minimum OR n.number > w.maximum AS out_of_range
    FROM (
        SELECT CASE WHEN w.kind = 'value' THEN s.value
                    WHEN w.kind = 'numeric' AND jsonb_typeof(i.input) = 'number'
                    THEN (i.input #>> '{{}}')::float8 END AS number,
               i.input
        FROM (SELECT s.inputs -> w.feature AS input OFFSET 0) AS i
        OFFSET 0
    ) AS n
) AS b
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
    most recent predictions created in [since, until) (ties in time: the larger id first)."""
    if not queries:
        return []
    bounds = {"since": since, "until": until}
    given = {name: moment for name, moment in bounds.items() if moment is not None}
    rows = await session.execute(
        _count_bins(*given),
        {
            "versions": [query.version_id for query in queries],
            "positions": [query.position for query in queries],
            "features": [query.feature for query in queries],
            "kinds": [query.kind for query in queries],
            "edges": [orjson.dumps(list(query.edges)).decode() for query in queries],
            "minimums": [query.minimum for query in queries],
            "maximums": [query.maximum for query in queries],
            **given,
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
