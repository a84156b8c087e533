"""The filter on predictions, each field declared once: its SQL condition, its in-memory twin
(the live feed) and whether the roll-ups answer it (an allow-list). The audit queries, the
statistics' routing and the live feed derive from these declarations; tests hold the GraphQL
`PredictionFilter` to them."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import aliased

from modelql.persistence.catalogue_repository import limited_names
from modelql.persistence.feed_repository import NamedPrediction
from modelql.persistence.model_limit import ModelLimit
from modelql.persistence.tables import LatestOutcome, Model, ModelVersion, Prediction

Columns = Any
"""`Prediction`, or the `.c` of roll-up rows: columns by name (`model_id`, `label`, ...)."""


class RollupDecision(Enum):
    """Whether the roll-ups answer a filter field; every field says (an allow-list)."""

    ROLLUPS_ANSWER = "every roll-up row (sums and latency histograms) holds the column"
    SUM_ROLLUPS_ANSWER = (
        "the sums' rows hold the column, '' standing for none (so '' is not answered); the "
        "latency histograms do not"
    )
    ROLLUPS_ANSWER_ON_WHOLE_HOURS = (
        "a bound on created_at, answered by which periods' rows are read when on a whole UTC hour"
    )
    RAW_TABLE_ONLY = "the roll-ups do not hold it"


@dataclass(frozen=True)
class PredictionFilterField:
    """How one field of `PredictionQuery` narrows the predictions, given a value."""

    sql: Callable[[Columns, Any], ColumnElement[bool]]
    live: Callable[[NamedPrediction, Any], bool]
    """The same condition on a prediction as it is committed (the live feed)."""
    rollups: RollupDecision
    public: bool = True
    """False: not a client's filter; the API narrows by it itself (a model's own predictions)."""


_DECLARATION = "modelql.prediction_filter"
"""The key of a field's `PredictionFilterField` in its dataclass field's metadata."""


def narrowing(
    *,
    sql: Callable[[Columns, Any], ColumnElement[bool]],
    live: Callable[[NamedPrediction, Any], bool],
    rollups: RollupDecision,
    public: bool = True,
) -> dict[str, PredictionFilterField]:
    """The metadata of a `PredictionQuery` field: how it narrows the predictions."""
    return {_DECLARATION: PredictionFilterField(sql=sql, live=live, rollups=rollups, public=public)}


def _has_outcome(p: Columns, wanted: bool) -> ColumnElement[bool]:
    # An alias of its own: statistics join the latest outcome beside these conditions.
    outcome = aliased(LatestOutcome)
    labelled = exists().where(outcome.prediction_id == p.id)
    return labelled if wanted else ~labelled


def _correct(p: Columns, wanted: bool) -> ColumnElement[bool]:
    outcome = aliased(LatestOutcome)
    return exists().where(outcome.prediction_id == p.id, outcome.correct.is_(wanted))


def _confidence_within(
    item: NamedPrediction, low: float = -math.inf, high: float = math.inf
) -> bool:
    """Whether the prediction has a confidence, within [low, high] (none matches no bound)."""
    confidence = item.row.confidence
    return confidence is not None and low <= confidence <= high


@dataclass(frozen=True)
class PredictionQuery:
    """Which predictions to look at; every field given narrows the set, None means any. A new
    filter is a field here, declared with its `narrowing`."""

    model: str | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, name: (
                p.model_id == select(Model.id).where(Model.name == name).scalar_subquery()
            ),
            live=lambda item, name: item.model == name,
            rollups=RollupDecision.ROLLUPS_ANSWER,
        ),
    )
    version: int | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, number: p.model_version_id.in_(
                select(ModelVersion.id).where(ModelVersion.number == number)
            ),
            live=lambda item, number: item.version == number,
            rollups=RollupDecision.ROLLUPS_ANSWER,
        ),
    )
    label: str | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, label: p.label == label,
            live=lambda item, label: item.row.label == label,
            rollups=RollupDecision.SUM_ROLLUPS_ANSWER,
        ),
    )
    caller: str | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, caller: p.caller == caller,
            live=lambda item, caller: item.row.caller == caller,
            rollups=RollupDecision.SUM_ROLLUPS_ANSWER,
        ),
    )
    request_id: str | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, request_id: p.request_id == request_id,
            live=lambda item, request_id: item.row.request_id == request_id,
            rollups=RollupDecision.RAW_TABLE_ONLY,
        ),
    )
    created_after: datetime | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, moment: p.created_at >= moment,
            live=lambda item, moment: item.row.created_at >= moment,
            rollups=RollupDecision.ROLLUPS_ANSWER_ON_WHOLE_HOURS,
        ),
    )
    created_before: datetime | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, moment: p.created_at < moment,
            live=lambda item, moment: item.row.created_at < moment,
            rollups=RollupDecision.ROLLUPS_ANSWER_ON_WHOLE_HOURS,
        ),
    )
    min_confidence: float | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, bound: p.confidence >= bound,
            live=lambda item, bound: _confidence_within(item, low=bound),
            rollups=RollupDecision.RAW_TABLE_ONLY,
        ),
    )
    max_confidence: float | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, bound: p.confidence <= bound,
            live=lambda item, bound: _confidence_within(item, high=bound),
            rollups=RollupDecision.RAW_TABLE_ONLY,
        ),
    )
    has_outcome: bool | None = field(
        default=None,
        metadata=narrowing(
            sql=_has_outcome,
            live=lambda item, wanted: not wanted,  # as committed, no outcome is recorded yet
            rollups=RollupDecision.RAW_TABLE_ONLY,
        ),
    )
    correct: bool | None = field(
        default=None,
        metadata=narrowing(
            sql=_correct,
            live=lambda item, wanted: False,  # without an outcome, neither correct nor not
            rollups=RollupDecision.RAW_TABLE_ONLY,
        ),
    )
    model_id: uuid.UUID | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, model_id: p.model_id == model_id,
            live=lambda item, model_id: item.row.model_id == model_id,
            rollups=RollupDecision.ROLLUPS_ANSWER,
            public=False,
        ),
    )
    version_id: uuid.UUID | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, version_id: p.model_version_id == version_id,
            live=lambda item, version_id: item.row.model_version_id == version_id,
            rollups=RollupDecision.ROLLUPS_ANSWER,
            public=False,
        ),
    )
    limit: ModelLimit | None = field(
        default=None,
        metadata=narrowing(
            sql=lambda p, limit: p.model_id.in_(
                select(Model.id).where(limited_names(Model.name, limit))
            ),
            live=lambda item, limit: limit.allows(item.model),
            rollups=RollupDecision.ROLLUPS_ANSWER,
            public=False,
        ),
    )
    """The caller's model limit: predictions of other models are never seen."""

    def __post_init__(self) -> None:
        """A time without an offset is UTC (as the API says), so every path compares alike."""
        for name in FILTER_FIELDS:
            moment = getattr(self, name)
            if isinstance(moment, datetime) and moment.tzinfo is None:
                object.__setattr__(self, name, moment.replace(tzinfo=UTC))

    def given(self) -> Iterator[tuple[PredictionFilterField, Any]]:
        """The declaration and the value of every field given (not None)."""
        for name, declared in FILTER_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                yield declared, value

    def conditions(self) -> list[ColumnElement[bool]]:
        """The conditions on the predictions table."""
        return [declared.sql(Prediction, value) for declared, value in self.given()]

    def matches(self, item: NamedPrediction) -> bool:
        """The in-memory twin of `conditions`, for a prediction as it is committed."""
        return all(declared.live(item, value) for declared, value in self.given())


def declarations(query_type: type) -> dict[str, PredictionFilterField]:
    """Each field's declaration by name; a field not declared by `narrowing`, or declared
    without a roll-up decision, is refused."""
    declared: dict[str, PredictionFilterField] = {}
    undecided: list[str] = []
    for each in fields(query_type):
        found = each.metadata.get(_DECLARATION)
        if isinstance(found, PredictionFilterField) and isinstance(found.rollups, RollupDecision):
            declared[each.name] = found
        else:
            undecided.append(each.name)
    if undecided:
        raise TypeError(f"declare {', '.join(undecided)} with narrowing(..., rollups=...)")
    return declared


FILTER_FIELDS = declarations(PredictionQuery)
