"""What live metrics are computed from: labelled predictions counted per version, slice and
(predicted, observed) label pair, with the sums regression metrics need, in one statement."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Float,
    Select,
    case,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from modelql.persistence.tables import DataSlice, LatestOutcome, OutcomeRollup, Prediction


@dataclass(frozen=True, slots=True)
class PairCount:
    """Labelled predictions of one slice sharing (predicted, observed) label; for regression
    (labels null) the sums of squared and absolute errors and n times the observed variance."""

    slice: str
    predicted: str | None
    observed: str | None
    count: int
    squared_error: float | None
    absolute_error: float | None
    total_variance: float | None


async def pair_counts(
    session: AsyncSession,
    version_ids: Sequence[uuid.UUID],
    *,
    since: datetime | None,
    until: datetime | None,
    named_slices: bool,
) -> dict[uuid.UUID, list[PairCount]]:
    """Per version, "overall" pairs and, when asked, those of each stored named slice; a window
    on the prediction's createdAt (since inclusive, until exclusive). From the hourly outcome
    roll-ups when no named slice is asked and the window is on whole hours."""
    statement: Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]
    if not named_slices and _whole_hour(since) and _whole_hour(until):
        statement = _from_rollups(version_ids, since, until)
    else:
        statement = _from_outcomes(version_ids, since, until, named_slices=named_slices)
    grouped: dict[uuid.UUID, list[PairCount]] = defaultdict(list)
    for row in await session.execute(statement):
        grouped[row[0]].append(PairCount(*row[1:]))
    return grouped


def _whole_hour(moment: datetime | None) -> bool:
    if moment is None:
        return True
    utc = moment.astimezone(UTC)
    return (utc.minute, utc.second, utc.microsecond) == (0, 0, 0)


def _from_rollups(
    version_ids: Sequence[uuid.UUID], since: datetime | None, until: datetime | None
) -> Select[*tuple[Any, ...]]:
    """ "overall" pairs from the hourly outcome roll-ups (windows on whole hours)."""
    r = OutcomeRollup
    window: list[ColumnElement[bool]] = [r.model_version_id.in_(version_ids)]
    if since is not None:
        window.append(r.hour >= since)
    if until is not None:
        window.append(r.hour < until)
    count = func.sum(r.count)
    return (
        select(
            r.model_version_id,
            literal_column("'overall'"),
            func.nullif(r.predicted, ""),
            func.nullif(r.observed, ""),
            cast(count, BigInteger),
            func.sum(r.squared_error),
            func.sum(r.absolute_error),
            func.sum(r.observed_square_sum) - func.power(func.sum(r.observed_sum), 2) / count,
        )
        .where(*window)
        .group_by(r.model_version_id, r.predicted, r.observed)
        .having(count > 0)
    )


def _from_outcomes(
    version_ids: Sequence[uuid.UUID],
    since: datetime | None,
    until: datetime | None,
    *,
    named_slices: bool,
) -> Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]:
    """Pairs counted over the latest outcomes themselves (any window, named slices)."""
    outcome = LatestOutcome
    window: list[ColumnElement[bool]] = [outcome.model_version_id.in_(version_ids)]
    if since is not None:
        window.append(outcome.predicted_at >= since)
    if until is not None:
        window.append(outcome.predicted_at < until)
    overall = _grouped(literal_column("'overall'"), window, ())
    if not named_slices:
        return overall
    value = Prediction.inputs[DataSlice.feature]
    number = case((func.jsonb_typeof(value) == "number", value.astext.cast(Float)), else_=None)
    named = _grouped(DataSlice.name, window, (DataSlice.name,)).join_from(
        outcome, Prediction, Prediction.id == outcome.prediction_id
    )
    named = named.join(
        DataSlice,
        (DataSlice.version_id == outcome.model_version_id) & (number >= DataSlice.minimum),
    )
    return union_all(overall, named)


def _grouped(
    slice_name: ColumnElement[str] | QueryableAttribute[str],
    window: list[ColumnElement[bool]],
    also_by: tuple[QueryableAttribute[str], ...],
) -> Select[*tuple[Any, ...]]:
    outcome = LatestOutcome
    error = outcome.predicted_value - outcome.value
    return (
        select(
            outcome.model_version_id,
            slice_name.label("slice"),
            outcome.predicted_label,
            outcome.label,
            func.count(),
            func.sum(error * error),
            func.sum(func.abs(error)),
            func.var_pop(outcome.value) * func.count(outcome.value),
        )
        .select_from(outcome)
        .where(*window)
        .group_by(outcome.model_version_id, *also_by, outcome.predicted_label, outcome.label)
    )
