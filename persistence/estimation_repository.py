"""What performance estimation reads: a version's labelled predictions of a reference window
(probabilities and observed label), and its predictions of a window with their outcome if any;
each bounded to the most recent rows, read by the (version, createdAt) indexes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import LatestOutcome, Prediction


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """One classification prediction: when, the label it predicted, its probabilities
    ([{label, probability}], null for a model without them) and its outcome's label, if any."""

    created_at: datetime
    predicted: str | None
    probabilities: list[dict[str, Any]] | None
    observed: str | None


def _window(
    column: Any, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if since is not None:
        found.append(column >= since)
    if until is not None:
        found.append(column < until)
    return found


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
    outcome = LatestOutcome
    statement = (
        select(outcome.predicted_at, Prediction.label, Prediction.probabilities, outcome.label)
        .join(
            Prediction,
            (Prediction.id == outcome.prediction_id)
            & (Prediction.created_at == outcome.predicted_at),
        )
        .where(
            outcome.model_version_id == version_id,
            *_window(outcome.predicted_at, since, until),
        )
        .order_by(outcome.predicted_at.desc())
        .limit(limit)
    )
    return [ScoredRow(*row) for row in await session.execute(statement)]


async def analysis_rows(
    session: AsyncSession,
    version_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[ScoredRow]:
    """The `limit` most recent predictions of the version created in [since, until), labelled
    or not (newest first)."""
    outcome = LatestOutcome
    statement = (
        select(Prediction.created_at, Prediction.label, Prediction.probabilities, outcome.label)
        .outerjoin(
            outcome,
            (outcome.prediction_id == Prediction.id)
            & (outcome.predicted_at == Prediction.created_at),
        )
        .where(
            Prediction.model_version_id == version_id,
            *_window(Prediction.created_at, since, until),
        )
        .order_by(Prediction.created_at.desc())
        .limit(limit)
    )
    return [ScoredRow(*row) for row in await session.execute(statement)]
