"""Prediction statistics, overall and grouped: answered from the roll-ups when every field of
the filter allows (each field declares its `RollupDecision`: model, version, label, caller, and
createdAfter/createdBefore on whole hours), from the raw prediction table otherwise. Roll-ups
are read daily for the whole UTC days of the window and hourly for the rest (all hourly when
grouped by hour). Counts and means are exact either way; p95 latency from the latency roll-ups
(per version and period, so without label or caller filters) is read off a log-scale histogram
(see `_p95_per_key`), and exact from the raw table otherwise."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Join,
    Select,
    Subquery,
    and_,
    cast,
    func,
    literal_column,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from modelql.persistence.database import execute_core
from modelql.persistence.prediction_filters import (
    PredictionFilterField,
    PredictionQuery,
    RollupDecision,
)
from modelql.persistence.tables import (
    DailyLatencyRollup,
    DailyPredictionRollup,
    LatencyRollup,
    LatestOutcome,
    Model,
    ModelVersion,
    Prediction,
    PredictionRollup,
)

BUILT_STATEMENTS = 256
"""Statements kept built, per kind, by everything they are built from (the query's values
included: SQLAlchemy statements are immutable). Building one costs the server more than
PostgreSQL spends answering it from the roll-ups, and after a write the same questions come
again."""

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
    return interval != Interval.MINUTE and all(
        _rollups_answer_field(declared, value) for declared, value in query.given()
    )


def _rollups_answer_field(declared: PredictionFilterField, value: Any) -> bool:
    """Whether the (sums') roll-ups answer one field of the filter, given its value."""
    match declared.rollups:
        case RollupDecision.ROLLUPS_ANSWER:
            return True
        case RollupDecision.SUM_ROLLUPS_ANSWER:
            return bool(value != "")
        case RollupDecision.ROLLUPS_ANSWER_ON_WHOLE_HOURS:
            return _whole_hour(value)
        case RollupDecision.RAW_TABLE_ONLY:
            return False


def _use_rollups(
    query: PredictionQuery, from_rollups: bool | None, interval: Interval | None = None
) -> bool:
    """Roll-ups when they answer the query, unless told (False: the raw table, to compare)."""
    answerable = rollups_answer(query, interval)
    if from_rollups and not answerable:
        raise ValueError("the roll-ups cannot answer this query")
    return answerable if from_rollups is None else from_rollups


Span = tuple[datetime | None, datetime | None]
"""[start, end) in time; None: unbounded."""


@dataclass(frozen=True)
class Periods:
    """Which roll-up rows cover a window exactly: the daily rows of `days` (whole UTC days),
    the hourly rows of each of `hours`."""

    days: Span | None
    hours: tuple[Span, ...]


def _day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _day_ceiling(moment: datetime) -> datetime | None:
    """The first midnight at or after `moment`; None past the last midnight there is."""
    floor = _day_floor(moment)
    if floor == moment:
        return floor
    try:
        return floor + timedelta(days=1)
    except OverflowError:
        return None


def periods(after: datetime | None, before: datetime | None, *, hourly: bool = False) -> Periods:
    """The whole days inside [after, before) from the daily roll-ups, the hours of the partial
    days at its ends from the hourly ones; everything hourly when asked (groups by hour)."""
    after = None if after is None else after.astimezone(UTC)
    before = None if before is None else before.astimezone(UTC)
    first_day = None if after is None else _day_ceiling(after)
    end_day = None if before is None else _day_floor(before)
    no_whole_day = (after is not None and first_day is None) or (
        first_day is not None and end_day is not None and first_day >= end_day
    )
    if hourly or no_whole_day:
        return Periods(None, ((after, before),))
    edges = ((after, first_day), (end_day, before))
    return Periods((first_day, end_day), tuple((a, b) for a, b in edges if a != b))


def _covering_rows(hourly: Any, daily: Any, names: Sequence[str], cover: Periods) -> Subquery:
    """The roll-up rows that cover the periods, each with `starts_at`, its period's start."""

    def rows(table: Any, starts_at: Any, span: Span) -> Select[*tuple[Any, ...]]:
        start, end = span
        statement = select(*(getattr(table, name) for name in names), starts_at.label("starts_at"))
        if start is not None:
            statement = statement.where(starts_at >= start)
        if end is not None:
            statement = statement.where(starts_at < end)
        return statement

    parts = [rows(hourly, hourly.hour, span) for span in cover.hours]
    if cover.days is not None:
        parts.append(rows(daily, daily.day, cover.days))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


_SUMS = (
    "model_version_id",
    "model_id",
    "caller",
    "label",
    "count",
    "latency_sum",
    "confidence_sum",
    "confidence_count",
    "value_sum",
    "value_count",
    "first_at",
    "last_at",
    "labelled",
    "correct",
)
_LATENCY_COUNTS = ("model_version_id", "model_id", "bucket", "count")


def _rollup_rows(query: PredictionQuery, interval: Interval | None = None) -> Subquery:
    cover = periods(query.created_after, query.created_before, hourly=interval is Interval.HOUR)
    return _covering_rows(PredictionRollup, DailyPredictionRollup, _SUMS, cover)


def _latency_rows(query: PredictionQuery, interval: Interval | None = None) -> Subquery:
    cover = periods(query.created_after, query.created_before, hourly=interval is Interval.HOUR)
    return _covering_rows(LatencyRollup, DailyLatencyRollup, _LATENCY_COUNTS, cover)


def _rollup_conditions(query: PredictionQuery, rows: Subquery) -> list[ColumnElement[bool]]:
    """The query's conditions on roll-up rows, for the fields they hold (the time bounds are in
    which rows are read; latency rows are read only without the sums' fields)."""
    held = (RollupDecision.ROLLUPS_ANSWER, RollupDecision.SUM_ROLLUPS_ANSWER)
    return [
        declared.sql(rows.c, value) for declared, value in query.given() if declared.rollups in held
    ]


def _ratio(
    numerator: ColumnElement[Any], denominator: ColumnElement[Any]
) -> ColumnElement[float | Decimal]:
    return numerator / func.nullif(denominator, 0)


def _rollup_totals(rows: Subquery) -> list[ColumnElement[Any]]:
    r = rows.c
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


def _raw_from(query: PredictionQuery) -> tuple[Join, ColumnElement[bool]]:
    """Predictions joined to their latest outcome, filtered."""
    joined = Prediction.__table__.outerjoin(
        LatestOutcome.__table__, LatestOutcome.prediction_id == Prediction.id
    )
    return joined, and_(True, *query.conditions())


async def totals(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> Totals:
    """Count, means, first and last time, and outcome counts of the selected predictions."""
    statement = _totals_statement(query, _use_rollups(query, from_rollups))
    return Totals(*(await execute_core(session, statement)).one())


@functools.lru_cache(maxsize=BUILT_STATEMENTS)
def _totals_statement(query: PredictionQuery, rollups: bool) -> Select[*tuple[Any, ...]]:
    if rollups:
        rows = _rollup_rows(query)
        return select(*_rollup_totals(rows)).where(*_rollup_conditions(query, rows))
    joined, where = _raw_from(query)
    return select(*_raw_totals()).select_from(joined).where(where)


async def label_counts(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> list[tuple[str, int]]:
    """(label, count), most frequent first."""
    if _use_rollups(query, from_rollups):
        rows = _rollup_rows(query)
        count: ColumnElement[Any] = _total(rows.c.count).label("count")
        statement = (
            select(rows.c.label, count)
            .where(*_rollup_conditions(query, rows), rows.c.label != "")
            .group_by(rows.c.label)
            .order_by(count.desc(), rows.c.label)
        )
    else:
        count = func.count().label("count")
        statement = (
            select(Prediction.label, count)
            .where(*query.conditions(), Prediction.label.is_not(None))
            .group_by(Prediction.label)
            .order_by(count.desc(), Prediction.label)
        )
    return [(label, int(number)) for label, number in await execute_core(session, statement)]


async def p95_latency(
    session: AsyncSession, query: PredictionQuery, *, from_rollups: bool | None = None
) -> float | None:
    """The 95th percentile of latency (linear interpolation, as percentile_cont)."""
    if not _use_rollups(query, from_rollups) or not latency_rollups_answer(query):
        statement = select(func.percentile_cont(0.95).within_group(Prediction.latency_ms)).where(
            *query.conditions()
        )
        return (await execute_core(session, statement)).scalar()
    rows = _latency_rows(query)
    histogram = (
        select(rows.c.bucket, _total(rows.c.count).label("n"))
        .where(*_rollup_conditions(query, rows))
        .group_by(rows.c.bucket)
    )
    return (await _p95_per_key(session, histogram.subquery(), 0)).get((), None)


def latency_rollups_answer(query: PredictionQuery, by: Sequence[Dimension] = ()) -> bool:
    """Whether the latency roll-ups (per version and period, no caller or label) hold exactly
    the latencies of the selected predictions, per group of `by`."""
    return (
        rollups_answer(query)
        and all(d.rollups is not RollupDecision.SUM_ROLLUPS_ANSWER for d, _ in query.given())
        and not {Dimension.LABEL, Dimension.CALLER} & set(by)
    )


async def _p95_per_key(
    session: AsyncSession, histogram: Subquery, width: int
) -> dict[tuple[Any, ...], float | None]:
    """percentile_cont(0.95) per key, with every value replaced by the middle of its bucket,
    from a histogram (columns k0..k{width-1}, bucket, n). PostgreSQL finds, per key, the
    buckets of the two ranks that percentile_cont interpolates between, so one row per key
    comes back however many buckets there are."""
    keys = [histogram.c[f"k{index}"] for index in range(width)]
    partition = keys or None
    cumulative = select(
        *keys,
        histogram.c.bucket,
        func.sum(histogram.c.n)
        .over(order_by=histogram.c.bucket, partition_by=partition)
        .label("upto"),
        func.sum(histogram.c.n).over(partition_by=partition).label("total"),
    ).subquery()
    c = cumulative.c
    position = 0.95 * (c.total - 1)
    statement = select(
        *(c[f"k{index}"] for index in range(width)),
        func.min(c.bucket).filter(c.upto > func.floor(position)),
        func.min(c.bucket).filter(c.upto > func.ceil(position)),
        func.max(position - func.floor(position)),
    ).group_by(*(c[f"k{index}"] for index in range(width)))
    p95: dict[tuple[Any, ...], float | None] = {}
    for row in await execute_core(session, statement):
        low, high, fraction = row[width:]
        if low is None:  # no latencies at all (an aggregate without keys still answers)
            continue
        low_ms, high_ms = _bucket_middle(low), _bucket_middle(high)
        p95[tuple(row[:width])] = low_ms + float(fraction) * (high_ms - low_ms)
    return p95


def _bucket_middle(bucket: int) -> float:
    return BUCKET_BASE_MS * math.pow(BUCKET_GROWTH, bucket + 0.5)


STRIDES = {
    Interval.MINUTE: "1 minute",
    Interval.HOUR: "1 hour",
    Interval.DAY: "1 day",
    Interval.WEEK: "7 days",
}
WEEK_ORIGIN = "timestamptz '2000-01-03 00:00:00+00'"
"""A Monday, 00:00 UTC: buckets are whole UTC minutes, hours, days and Monday weeks
(date_bin, which unlike date_trunc(..., 'UTC') converts no time zone per row)."""

SqlColumn = ColumnElement[Any] | QueryableAttribute[Any]
"""A column of a roll-up subquery or an expression on one, or a mapped class's column."""


def _dimension_columns(
    dimension: Dimension, interval: Interval, rows: Subquery | None
) -> list[SqlColumn]:
    """What a dimension groups by in roll-up rows (None: the raw table; latency rows have no
    label or caller); its last column is what the group shows."""
    if dimension is Dimension.MODEL:
        return [Model.name]
    if dimension is Dimension.VERSION:
        version_id = Prediction.model_version_id if rows is None else rows.c.model_version_id
        return [version_id, ModelVersion.number]
    if dimension is Dimension.LABEL:
        return [Prediction.label if rows is None else func.nullif(rows.c.label, "")]
    if dimension is Dimension.CALLER:
        return [Prediction.caller if rows is None else func.nullif(rows.c.caller, "")]
    time = Prediction.created_at if rows is None else rows.c.starts_at
    stride: ColumnElement[timedelta] = literal_column(f"interval '{STRIDES[interval]}'")
    return [func.date_bin(stride, time, literal_column(WEEK_ORIGIN))]


async def groups(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    *,
    with_p95: bool = True,
    from_rollups: bool | None = None,
) -> list[Group]:
    """Statistics per group: with TIME ordered by bucket (oldest first), otherwise by count
    (largest first); at most `limit` groups. The p95 latency only `with_p95` (from roll-ups, a
    second statement reads the groups' latency histograms; from the raw table, a sort)."""
    found, _ = await _grouped(session, query, by, interval, limit, with_p95, False, from_rollups)
    return found


async def groups_and_totals(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    *,
    with_p95: bool = True,
    from_rollups: bool | None = None,
) -> tuple[list[Group], Totals]:
    """`groups` and `totals` in one statement (GROUPING SETS): the selected rows are read once."""
    found, overall = await _grouped(
        session, query, by, interval, limit, with_p95, True, from_rollups
    )
    if overall is None:  # no dimension: the one group is everything
        overall = await totals(session, query, from_rollups=from_rollups)
    return found, overall


async def _grouped(
    session: AsyncSession,
    query: PredictionQuery,
    by: Sequence[Dimension],
    interval: Interval,
    limit: int,
    with_p95: bool,
    with_totals: bool,
    from_rollups: bool | None,
) -> tuple[list[Group], Totals | None]:
    """The groups, and with `with_totals` (and any dimension) the totals as well."""
    rollups = _use_rollups(query, from_rollups, interval)
    asked = list(dict.fromkeys(by))
    statement, columns = _groups_statement(
        query, tuple(asked), interval, limit, with_p95, rollups, with_totals
    )
    keys = [column for d in asked for column in columns[d]]
    found = (await execute_core(session, statement)).all()
    width = len(keys)
    overall = None
    if with_totals and keys:
        overall, found = Totals(*found[0][width:-1]), found[1:]
    latency = {tuple(row[:width]): row[-1] for row in found}
    if rollups and found and with_p95:
        latency = await _rolled_up_p95(session, query, asked, interval)
    grouped = [
        _group(asked, columns, tuple(row[:width]), Totals(*row[width:-1]), latency) for row in found
    ]
    return grouped, overall


@functools.lru_cache(maxsize=BUILT_STATEMENTS)
def _groups_statement(
    query: PredictionQuery,
    dimensions: tuple[Dimension, ...],
    interval: Interval,
    limit: int,
    with_p95: bool,
    rollups: bool,
    with_totals: bool,
) -> tuple[Select[*tuple[Any, ...]], dict[Dimension, list[SqlColumn]]]:
    """The statement of `groups` and each dimension's columns in it; `with_totals` (and any
    dimension), its first row is the totals (the empty grouping set)."""
    asked = list(dimensions)
    rows = _rollup_rows(query, interval) if rollups else None
    columns = {d: _dimension_columns(d, interval, rows) for d in asked}
    keys = [column for d in asked for column in columns[d]]
    labelled = [key.label(f"k{index}") for index, key in enumerate(keys)]
    if rows is not None:
        statement = select(*labelled, *_rollup_totals(rows), literal_column("NULL")).select_from(
            rows
        )
        model_id: SqlColumn = rows.c.model_id
        version_id: SqlColumn = rows.c.model_version_id
        where = _rollup_conditions(query, rows)
        count: ColumnElement[Any] = func.coalesce(_total(rows.c.count), 0)
    else:
        joined, raw_where = _raw_from(query)
        p95 = (
            func.percentile_cont(0.95).within_group(Prediction.latency_ms)
            if with_p95
            else literal_column("NULL")
        )
        statement = select(*labelled, *_raw_totals(), p95).select_from(joined)
        model_id, version_id = Prediction.model_id, Prediction.model_version_id
        where = [raw_where]
        count = func.count()
    statement = _join_catalogue(statement, asked, model_id, version_id).where(*where)
    time = [columns[Dimension.TIME][0]] if Dimension.TIME in columns else []
    order = [*time, count.desc(), *keys]
    if with_totals and keys:
        everything_first = func.grouping(*keys).desc()
        statement = statement.group_by(func.grouping_sets(tuple_(), tuple_(*keys)))
        return statement.order_by(everything_first, *order).limit(limit + 1), columns
    return statement.group_by(*keys).order_by(*order).limit(limit), columns


def _join_catalogue(
    statement: Select[*tuple[Any, ...]],
    asked: list[Dimension],
    model_id: SqlColumn,
    version_id: SqlColumn,
) -> Select[*tuple[Any, ...]]:
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
    if not latency_rollups_answer(query, asked):
        keys = [column for d in asked for column in _dimension_columns(d, interval, None)]
        p95 = func.percentile_cont(0.95).within_group(Prediction.latency_ms)
        statement = _join_catalogue(
            select(*keys, p95).select_from(Prediction),
            asked,
            Prediction.model_id,
            Prediction.model_version_id,
        ).where(*query.conditions())
        found = await execute_core(session, statement.group_by(*keys))
        return {tuple(row[:-1]): row[-1] for row in found}
    rows = _latency_rows(query, interval)
    keys = [column for d in asked for column in _dimension_columns(d, interval, rows)]
    histogram = _join_catalogue(
        select(
            *(key.label(f"k{index}") for index, key in enumerate(keys)),
            rows.c.bucket,
            _total(rows.c.count).label("n"),
        ).select_from(rows),
        asked,
        rows.c.model_id,
        rows.c.model_version_id,
    )
    histogram = histogram.where(*_rollup_conditions(query, rows)).group_by(*keys, rows.c.bucket)
    return await _p95_per_key(session, histogram.subquery(), len(keys))


def _group(
    asked: list[Dimension],
    columns: dict[Dimension, list[SqlColumn]],
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
