"""Prediction statistics, overall and grouped: answered from the hourly roll-ups when the
filter allows (model, version, label, caller, and createdAfter/createdBefore on whole hours),
from the raw prediction table otherwise. Counts and means are exact either way; p95 latency
from the latency roll-ups (per version and hour, so without label or caller filters) is read
off a log-scale histogram (see `p95_of_histogram`), and exact from the raw table otherwise."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.prediction_repository import PredictionQuery
from modelql.persistence.tables import (
    LatencyRollup,
    LatestOutcome,
    Model,
    ModelVersion,
    Prediction,
    PredictionRollup,
)

BUCKET_BASE_MS = 0.001
BUCKET_GROWTH = 1.1
"""Latency histogram bucket b holds [0.001 * 1.1**b, 0.001 * 1.1**(b + 1)) ms (migration
20261123_quality, modelql_latency_bucket); its geometric middle is within 4.9% of any value
in it, so p95 from roll-ups is within 5% of the exact p95 (latencies from 1 µs on)."""


class Dimension(StrEnum):
    MODEL = "MODEL"
    VERSION = "VERSION"
    LABEL = "LABEL"
    CALLER = "CALLER"
    TIME = "TIME"


class Interval(StrEnum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


@dataclass(frozen=True)
class Totals:
    count: int
    mean_latency_ms: float | None
    mean_confidence: float | None
    mean_value: float | None
    first_at: datetime | None
    last_at: datetime | None
    labelled: int
    classified_labelled: int
    """Labelled predictions that carry a label (classification): accuracy's denominator."""
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.classified_labelled if self.classified_labelled else None


@dataclass(frozen=True)
class Group:
    """One group: the dimensions asked for (the others None) and its statistics."""

    model: str | None
    version: int | None
    label: str | None
    caller: str | None
    bucket: datetime | None
    totals: Totals
    p95_latency_ms: float | None


def _whole_hour(moment: datetime | None) -> bool:
    if moment is None:
        return True
    utc = moment.astimezone(UTC)
    return (utc.minute, utc.second, utc.microsecond) == (0, 0, 0)


def rollups_answer(query: PredictionQuery, interval: Interval | None = None) -> bool:
    """Whether the roll-ups hold exactly the predictions the query selects."""
    return (
        query.request_id is None
        and query.min_confidence is None
        and query.max_confidence is None
        and query.has_outcome is None
        and query.correct is None
        and query.label != ""
        and query.caller != ""
        and _whole_hour(query.created_after)
        and _whole_hour(query.created_before)
        and interval != Interval.MINUTE
    )


def _use_rollups(
    query: PredictionQuery, from_rollups: bool | None, interval: Interval | None = None
) -> bool:
    """Roll-ups when they answer the query, unless told (False: the raw table, to compare)."""
    answerable = rollups_answer(query, interval)
    if from_rollups and not answerable:
        raise ValueError("the roll-ups cannot answer this query")
    return answerable if from_rollups is None else from_rollups


def _rollup_conditions(query: PredictionQuery) -> list[ColumnElement[bool]]:
    rollup = PredictionRollup
    conditions = query.catalogue_conditions(rollup.model_id, rollup.model_version_id)
    if query.label is not None:
        conditions.append(rollup.label == query.label)
    if query.caller is not None:
        conditions.append(rollup.caller == query.caller)
    if query.created_after is not None:
        conditions.append(rollup.hour >= query.created_after)
    if query.created_before is not None:
        conditions.append(rollup.hour < query.created_before)
    return conditions


def _ratio(numerator: Any, denominator: Any) -> ColumnElement[float]:
    return numerator / func.nullif(denominator, 0)


def _rollup_totals() -> list[ColumnElement[Any]]:
    r = PredictionRollup
    count = _total(r.count)
    return [
        func.coalesce(count, 0),
        _ratio(func.sum(r.latency_sum), count),
        _ratio(func.sum(r.confidence_sum), _total(r.confidence_count)),
        _ratio(func.sum(r.value_sum), _total(r.value_count)),
        func.min(r.first_at),
        func.max(r.last_at),
        func.coalesce(_total(r.labelled), 0),
        func.coalesce(cast(func.sum(r.labelled).filter(r.label != ""), BigInteger), 0),
        func.coalesce(_total(r.correct), 0),
    ]


def _total(column: Any) -> ColumnElement[int]:
    """A sum of counts as an integer (PostgreSQL sums bigints as numeric)."""
    return cast(func.sum(column), BigInteger)


def _raw_totals() -> list[ColumnElement[Any]]:
    p, outcome = Prediction, LatestOutcome
    return [
        func.count(),
        func.avg(p.latency_ms),
        func.avg(p.confidence),
        func.avg(p.value),
        func.min(p.created_at),
        func.max(p.created_at),
        func.count(outcome.prediction_id),
        func.count(outcome.prediction_id).filter(p.label.is_not(None)),
        func.count().filter(outcome.correct.is_(True)),
    ]


def _raw_from(query: PredictionQuery) -> Any:
    """Predictions joined to their latest outcome, filtered."""
    joined = Prediction.__table__.outerjoin(
        LatestOutcome.__table__, LatestOutcome.prediction_id == Prediction.id
    )
    return joined, and_(True, *query.conditions())


async def totals(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> Totals:
    """Count, means, first and last time, and outcome counts of the selected predictions."""
    if _use_rollups(query, from_rollups):
        statement = select(*_rollup_totals()).where(*_rollup_conditions(query))
    else:
        joined, where = _raw_from(query)
        statement = select(*_raw_totals()).select_from(joined).where(where)
    return Totals(*(await session.execute(statement)).one())


async def label_counts(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> list[tuple[str, int]]:
    """(label, count), most frequent first."""
    if _use_rollups(query, from_rollups):
        r = PredictionRollup
        count: ColumnElement[Any] = _total(r.count).label("count")
        statement = (
            select(r.label, count)
            .where(*_rollup_conditions(query), r.label != "")
            .group_by(r.label)
            .order_by(count.desc(), r.label)
        )
    else:
        count = func.count().label("count")
        statement = (
            select(Prediction.label, count)
            .where(*query.conditions(), Prediction.label.is_not(None))
            .group_by(Prediction.label)
            .order_by(count.desc(), Prediction.label)
        )
    return [(label, int(number)) for label, number in await session.execute(statement)]


async def p95_latency(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> float | None:
    """The 95th percentile of latency (linear interpolation, as percentile_cont)."""
    if not _use_rollups(query, from_rollups):
        statement = select(func.percentile_cont(0.95).within_group(Prediction.latency_ms)).where(
            *query.conditions()
        )
        return await session.scalar(statement)
    if not latency_rollups_answer(query):
        statement = select(func.percentile_cont(0.95).within_group(Prediction.latency_ms)).where(
            *query.conditions()
        )
        return await session.scalar(statement)
    latency = LatencyRollup
    statement = (
        select(latency.bucket, _total(latency.count))
        .where(*_latency_conditions(query))
        .group_by(latency.bucket)
    )
    return p95_of_histogram({b: int(n) for b, n in await session.execute(statement)})


def latency_rollups_answer(query: PredictionQuery, by: Sequence[Dimension] = ()) -> bool:
    """Whether the latency roll-ups (per version and hour, no caller or label) hold exactly
    the latencies of the selected predictions, per group of `by`."""
    return (
        rollups_answer(query)
        and query.label is None
        and query.caller is None
        and not {Dimension.LABEL, Dimension.CALLER} & set(by)
    )


def _latency_conditions(query: PredictionQuery) -> list[ColumnElement[bool]]:
    latency = LatencyRollup
    conditions = query.catalogue_conditions(latency.model_id, latency.model_version_id)
    if query.created_after is not None:
        conditions.append(latency.hour >= query.created_after)
    if query.created_before is not None:
        conditions.append(latency.hour < query.created_before)
    return conditions


def p95_of_histogram(histogram: Mapping[int, int]) -> float | None:
    """percentile_cont(0.95) with every value replaced by the middle of its bucket."""
    total = sum(histogram.values())
    if not total:
        return None
    position = 0.95 * (total - 1)
    lower, upper = math.floor(position), math.ceil(position)

    def value_at(rank: int) -> float:
        seen = 0
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            if rank < seen:
                return BUCKET_BASE_MS * BUCKET_GROWTH ** (bucket + 0.5)
        raise AssertionError("rank beyond the histogram")

    low = value_at(lower)
    return low + (position - lower) * (value_at(upper) - low)


RAW, ROLLUPS, LATENCY = "raw", "rollups", "latency"
STRIDES = {
    Interval.MINUTE: "1 minute",
    Interval.HOUR: "1 hour",
    Interval.DAY: "1 day",
    Interval.WEEK: "7 days",
}
WEEK_ORIGIN = "timestamptz '2000-01-03 00:00:00+00'"
"""A Monday, 00:00 UTC: buckets are whole UTC minutes, hours, days and Monday weeks
(date_bin, which unlike date_trunc(..., 'UTC') converts no time zone per row)."""


def _dimension_columns(
    dimension: Dimension, interval: Interval, source: str
) -> list[ColumnElement[Any]]:
    """What a dimension groups by in a source (the raw table, the roll-ups, the latency
    roll-ups, which have no label or caller); its last column is what the group shows."""
    table: Any = {RAW: Prediction, ROLLUPS: PredictionRollup, LATENCY: LatencyRollup}[source]
    if dimension is Dimension.MODEL:
        return [Model.name]
    if dimension is Dimension.VERSION:
        return [table.model_version_id, ModelVersion.number]
    if dimension is Dimension.LABEL:
        return [table.label if source == RAW else func.nullif(table.label, "")]
    if dimension is Dimension.CALLER:
        return [table.caller if source == RAW else func.nullif(table.caller, "")]
    time = table.created_at if source == RAW else table.hour
    stride = literal_column(f"interval '{STRIDES[interval]}'")
    return [func.date_bin(stride, time, literal_column(WEEK_ORIGIN))]


async def groups(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    *,
    from_rollups: bool | None = None,
) -> list[Group]:
    """Statistics per group: with TIME ordered by bucket (oldest first), otherwise by count
    (largest first); at most `limit` groups. From roll-ups: a second statement reads the
    groups' latency histograms."""
    rollups = _use_rollups(query, from_rollups, interval)
    asked = list(dict.fromkeys(by))
    columns = {d: _dimension_columns(d, interval, ROLLUPS if rollups else RAW) for d in asked}
    keys = [column for d in asked for column in columns[d]]
    labelled = [key.label(f"k{index}") for index, key in enumerate(keys)]
    if rollups:
        statement = select(*labelled, *_rollup_totals(), literal_column("NULL")).select_from(
            PredictionRollup
        )
        model_id, version_id = PredictionRollup.model_id, PredictionRollup.model_version_id
        where = _rollup_conditions(query)
        count: ColumnElement[Any] = func.coalesce(_total(PredictionRollup.count), 0)
    else:
        joined, raw_where = _raw_from(query)
        p95 = func.percentile_cont(0.95).within_group(Prediction.latency_ms)
        statement = select(*labelled, *_raw_totals(), p95).select_from(joined)
        model_id, version_id = Prediction.model_id, Prediction.model_version_id
        where = [raw_where]
        count = func.count()
    statement = _join_catalogue(statement, asked, model_id, version_id)
    time = [columns[Dimension.TIME][0]] if Dimension.TIME in columns else []
    statement = (
        statement.where(*where).group_by(*keys).order_by(*time, count.desc(), *keys).limit(limit)
    )
    rows = (await session.execute(statement)).all()
    width = len(keys)
    latency = {tuple(row[:width]): row[-1] for row in rows}
    if rollups and rows:
        latency = await _rolled_up_p95(session, query, asked, interval)
    return [
        _group(asked, columns, tuple(row[:width]), Totals(*row[width:-1]), latency) for row in rows
    ]


def _join_catalogue(statement: Any, asked: list[Dimension], model_id: Any, version_id: Any) -> Any:
    if Dimension.MODEL in asked:
        statement = statement.join(Model, Model.id == model_id)
    if Dimension.VERSION in asked:
        statement = statement.join(ModelVersion, ModelVersion.id == version_id)
    return statement


async def _rolled_up_p95(
    session: AsyncSession, query: PredictionQuery, asked: list[Dimension], interval: Interval
) -> dict[tuple[Any, ...], float | None]:
    """p95 latency per group key: from the latency roll-ups' histograms when they answer,
    else (label or caller involved) exactly, from the raw table."""
    exact = not latency_rollups_answer(query, asked)
    source = RAW if exact else LATENCY
    columns = {d: _dimension_columns(d, interval, source) for d in asked}
    keys = [column for d in asked for column in columns[d]]
    if exact:
        p95 = func.percentile_cont(0.95).within_group(Prediction.latency_ms)
        statement = _join_catalogue(
            select(*keys, p95).select_from(Prediction),
            asked,
            Prediction.model_id,
            Prediction.model_version_id,
        ).where(*query.conditions())
        rows = await session.execute(statement.group_by(*keys))
        return {tuple(row[:-1]): row[-1] for row in rows}
    latency = LatencyRollup
    statement = _join_catalogue(
        select(*keys, latency.bucket, _total(latency.count)).select_from(latency),
        asked,
        latency.model_id,
        latency.model_version_id,
    )
    statement = statement.where(*_latency_conditions(query)).group_by(*keys, latency.bucket)
    histograms: dict[tuple[Any, ...], dict[int, int]] = defaultdict(dict)
    for row in await session.execute(statement):
        histograms[tuple(row[: len(keys)])][row[-2]] = int(row[-1])
    return {key: p95_of_histogram(histogram) for key, histogram in histograms.items()}


def _group(
    asked: list[Dimension],
    columns: dict[Dimension, list[ColumnElement[Any]]],
    key: tuple[Any, ...],
    totals: Totals,
    latency: dict[tuple[Any, ...], float | None],
) -> Group:
    shown: dict[Dimension, Any] = {}
    position = 0
    for dimension in asked:
        position += len(columns[dimension])
        shown[dimension] = key[position - 1]
    return Group(
        model=shown.get(Dimension.MODEL),
        version=shown.get(Dimension.VERSION),
        label=shown.get(Dimension.LABEL),
        caller=shown.get(Dimension.CALLER),
        bucket=shown.get(Dimension.TIME),
        totals=totals,
        p95_latency_ms=latency.get(key),
    )
