"""Prediction value types: probabilities, the audit filter and statistics."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.graph.context import GraphContext
from modelql.graph.executor_internals import SelectedField, Selection
from modelql.services import prediction_audit
from modelql.services.model_access import ModelLimit
from modelql.services.outcomes import OutcomeRow

Info = strawberry.Info[GraphContext, None]
T = TypeVar("T")
MAX_GROUPS = 1_000
"""Most groups one `groups` field returns."""
TOTALS_FIELDS = frozenset(
    {
        "count",
        "meanLatencyMs",
        "meanValue",
        "meanConfidence",
        "labelled",
        "accuracy",
        "firstAt",
        "lastAt",
    }
)
"""PredictionStats' fields read from its totals."""


@strawberry.type(name="ClassProbability")
class ClassProbabilityType:
    label: str
    probability: float


@strawberry.type(name="Outcome", description="The truth about a prediction, once known.")
class OutcomeType:
    label: str | None = strawberry.field(description="Classification: the observed label.")
    value: float | None = strawberry.field(description="Regression: the observed value.")
    observed_at: datetime = strawberry.field(description="When the truth became known.")
    recorded_at: datetime = strawberry.field(description="When it was recorded here.")
    caller: str | None = strawberry.field(description="The API key that recorded it.")

    @classmethod
    def of(cls, row: OutcomeRow) -> OutcomeType:
        return cls(
            label=row.label,
            value=row.value,
            observed_at=row.observed_at,
            recorded_at=row.recorded_at,
            caller=row.caller,
        )


@strawberry.input(description="Narrows predictions; every field given must hold.")
class PredictionFilter:
    model: str | None = None
    version: int | None = strawberry.field(
        default=None, description="Version number; without `model`, that number of any model."
    )
    label: str | None = None
    caller: str | None = None
    request_id: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    min_confidence: float | None = None
    max_confidence: float | None = None
    has_outcome: bool | None = strawberry.field(
        default=None, description="Whether an outcome (ground truth) has been recorded."
    )
    correct: bool | None = strawberry.field(
        default=None,
        description="Classification: whether the label equals the latest outcome's label "
        "(predictions without an outcome match neither true nor false).",
    )

    @staticmethod
    def query(
        where: PredictionFilter | None,
        *,
        model_id: uuid.UUID | None = None,
        version_id: uuid.UUID | None = None,
        limit: ModelLimit | None = None,
    ) -> prediction_audit.PredictionQuery:
        """The audit query of a filter (none: every prediction), narrowed to a model/version
        and to the caller's model limit: each field goes to the `PredictionQuery` field of its
        name (a test holds the two alike)."""
        where = where or PredictionFilter()
        given = {each.name: getattr(where, each.name) for each in dataclasses.fields(where)}
        return prediction_audit.PredictionQuery(
            **given, model_id=model_id, version_id=version_id, limit=limit
        )


@strawberry.type(name="LabelCount")
class LabelCountType:
    label: str
    count: int


# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
StatsDimension = prediction_audit.Dimension
strawberry.enum(StatsDimension, name="StatsDimension")
Interval = prediction_audit.Interval
strawberry.enum(
    Interval,
    name="Interval",
    description="Time buckets start on whole UTC units; weeks on Mondays.",
)

P95_DESCRIPTION = (
    "95th percentile of latencyMs (linear interpolation). Exact when the filter needs the raw "
    "table (requestId, confidence or outcome filters, times not on whole hours, MINUTE "
    "buckets); otherwise read off the roll-ups' log-scale histograms: within 5% of the "
    "exact value (latencies under 0.001 ms, like the 0 of a row the inference cache answered, "
    "count as 0.001 ms)."
)


@strawberry.type(
    name="PredictionGroup",
    description="Statistics of one group; the dimensions not asked for are null.",
)
class PredictionGroupType:
    model: str | None
    version: int | None
    label: str | None
    caller: str | None
    bucket: datetime | None = strawberry.field(description="Start of the time bucket (UTC).")
    count: int
    mean_latency_ms: float | None
    p95_latency_ms: float | None = strawberry.field(description=P95_DESCRIPTION)
    mean_confidence: float | None
    mean_value: float | None = strawberry.field(description="Regression models.")
    labelled: int = strawberry.field(description="Predictions with an outcome.")
    accuracy: float | None = strawberry.field(
        description="Classification: share of labelled predictions whose label is the "
        "outcome's; null without any."
    )

    @classmethod
    def of(cls, group: prediction_audit.Group) -> PredictionGroupType:
        totals = group.totals
        return cls(
            model=group.model,
            version=group.version,
            label=group.label,
            caller=group.caller,
            bucket=group.bucket,
            count=totals.count,
            mean_latency_ms=totals.mean_latency_ms,
            p95_latency_ms=group.p95_latency_ms,
            mean_confidence=totals.mean_confidence,
            mean_value=totals.mean_value,
            labelled=totals.labelled,
            accuracy=totals.accuracy,
        )


@strawberry.type(
    name="PredictionStats",
    description="Aggregates over the filtered predictions, computed in SQL: from roll-ups "
    "(daily for the whole UTC days of the window, hourly for the rest) when the filter allows "
    "(model, version, label, caller, createdAfter/createdBefore on whole hours), else from the "
    "stored predictions. Counts and means are exact either "
    "way. Each field costs one statement, and only when asked for; the totals (count, means, "
    "labelled, accuracy, first and last time) asked beside `groups` come with its statement.",
)
class PredictionStatsType:
    query: strawberry.Private[prediction_audit.PredictionQuery]
    cache: strawberry.Private[dict[str, asyncio.Future[Any]]]
    shares_totals: strawberry.Private[bool]
    """Totals and `groups` are both selected: the first `groups` to run reads the totals too."""

    @classmethod
    def of(cls, query: prediction_audit.PredictionQuery, info: Info) -> PredictionStatsType:
        asked = _selected_names(info)
        shares_totals = "groups" in asked and bool(TOTALS_FIELDS & asked)
        return cls(query=query, cache={}, shares_totals=shares_totals)

    async def _once(
        self,
        info: Info,
        name: str,
        work: Callable[[AsyncSession, prediction_audit.PredictionQuery], Awaitable[T]],
    ) -> T:
        """`work(session, query)` run once per object, whichever fields ask for it (`name` is
        the work's: each name is always given the same work)."""
        if name not in self.cache:
            query = self.query
            self.cache[name] = asyncio.ensure_future(
                info.context.db.run(lambda session: work(session, query))
            )
        result: asyncio.Future[T] = self.cache[name]
        return await result

    async def _groups(
        self,
        info: Info,
        by: list[prediction_audit.Dimension],
        interval: prediction_audit.Interval,
        limit: int,
        with_p95: bool,
    ) -> list[prediction_audit.Group]:
        """The groups; with the totals in the same statement when they are asked for too and
        nothing has read them yet."""
        query = self.query
        if not self.shares_totals or "totals" in self.cache:
            return await info.context.db.run(
                lambda session: prediction_audit.groups(
                    session, query, by, interval, limit, with_p95=with_p95
                )
            )
        both = asyncio.ensure_future(
            info.context.db.run(
                lambda session: prediction_audit.groups_and_totals(
                    session, query, by, interval, limit, with_p95=with_p95
                )
            )
        )
        self.cache["totals"] = asyncio.ensure_future(_second(both))
        found, _ = await both
        return found

    async def _totals(self, info: Info) -> prediction_audit.Totals:
        if self.shares_totals and "totals" not in self.cache:
            await asyncio.sleep(0)  # a sibling `groups` starts meanwhile and reads the totals
        return await self._once(info, "totals", prediction_audit.totals)

    @strawberry.field
    async def count(self, info: Info) -> int:
        return (await self._totals(info)).count

    @strawberry.field(description="Most frequent first.")
    async def label_counts(self, info: Info) -> list[LabelCountType]:
        counts = await self._once(info, "labels", prediction_audit.label_counts)
        return [LabelCountType(label=label, count=count) for label, count in counts]

    @strawberry.field
    async def mean_latency_ms(self, info: Info) -> float | None:
        return (await self._totals(info)).mean_latency_ms

    @strawberry.field(description=P95_DESCRIPTION)
    async def p95_latency_ms(self, info: Info) -> float | None:
        return await self._once(info, "p95", prediction_audit.p95_latency)

    @strawberry.field(description="Regression models.")
    async def mean_value(self, info: Info) -> float | None:
        return (await self._totals(info)).mean_value

    @strawberry.field(description="Classification models: the mean of the highest probability.")
    async def mean_confidence(self, info: Info) -> float | None:
        return (await self._totals(info)).mean_confidence

    @strawberry.field(description="Predictions with an outcome (ground truth).")
    async def labelled(self, info: Info) -> int:
        return (await self._totals(info)).labelled

    @strawberry.field(
        description="Classification: share of labelled predictions whose label is the "
        "outcome's; null without any."
    )
    async def accuracy(self, info: Info) -> float | None:
        return (await self._totals(info)).accuracy

    @strawberry.field
    async def first_at(self, info: Info) -> datetime | None:
        return (await self._totals(info)).first_at

    @strawberry.field
    async def last_at(self, info: Info) -> datetime | None:
        return (await self._totals(info)).last_at

    @strawberry.field(
        description="Statistics per group of the dimensions in `by` (TIME: buckets of "
        "`interval`). With TIME ordered by bucket, oldest first; otherwise by count, largest "
        "first. One statement whatever the number of groups; selecting p95LatencyMs adds a second "
        "from roll-ups, or a sort of the selected predictions when LABEL or CALLER is grouped on."
    )
    async def groups(
        self,
        info: Info,
        by: list[StatsDimension],
        interval: Interval | None = prediction_audit.Interval.DAY,
        first: int | None = 100,
    ) -> list[PredictionGroupType]:
        limit = info.context.limits.page_size(first, default=100, maximum=MAX_GROUPS)
        dimensions = [prediction_audit.Dimension(d) for d in by]
        bucket = prediction_audit.Interval(interval or "DAY")
        found = await self._groups(info, dimensions, bucket, limit, selects(info, "p95LatencyMs"))
        return [PredictionGroupType.of(group) for group in found]


async def _second(pair: Awaitable[tuple[Any, T]]) -> T:
    return (await pair)[1]


def _selected_names(info: Info) -> set[str]:
    """The names of the fields the resolved field's selection asks for (fragments included)."""
    return {name for field in info.selected_fields for name in _field_names(field)}


def selects(info: Info, name: str) -> bool:
    """Whether the resolved field's selection asks for the field `name` (fragments included)."""
    return name in _selected_names(info)


def _field_names(selection: Selection) -> Iterator[str]:
    """The names of the fields directly in a selection set, through fragments."""
    for inner in selection.selections:
        if isinstance(inner, SelectedField):
            yield inner.name
        else:
            yield from _field_names(inner)
