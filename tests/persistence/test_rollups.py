"""Roll-ups answer statistics exactly as the raw table does (p95 latency within 5%), for
random predictions spread over hours and days, random filters and random groupings. The
roll-ups are written by the migrations' back-fills (hourly, then daily from hourly), then by
the prediction writer on top of them, then moved by recorded outcomes."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from modelql.persistence import outcome_repository
from modelql.persistence.database import driver_connection
from modelql.persistence.model_limit import ModelLimit
from modelql.persistence.prediction_filters import FILTER_FIELDS, PredictionQuery, RollupDecision
from modelql.persistence.prediction_writer import RequestRows, insert
from modelql.persistence.stats_repository import (
    Dimension,
    Group,
    Interval,
    Periods,
    Totals,
    groups,
    groups_and_totals,
    label_counts,
    p95_latency,
    periods,
    rollups_answer,
    totals,
)
from modelql.services import outcomes
from modelql.services.catalogue import Catalogue
from modelql.services.freshness import Freshness

QUALITY = importlib.import_module("modelql.migrations.versions.2026_11_23_model_quality")
DAILY = importlib.import_module("modelql.migrations.versions.2026_11_23_daily_rollups")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(days=9)
HOURS = [START + timedelta(hours=h) for h in range(0, 9 * 24 + 2, 7)]
LABELS = ("setosa", "versicolor", "virginica")
CALLERS = ("alice", "bob", None)


async def _versions(engine: AsyncEngine) -> list[tuple[uuid.UUID, uuid.UUID, bool]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT v.model_id, v.id, v.labels IS NOT NULL FROM model_versions v "
                "JOIN models m ON m.id = v.model_id "
                "WHERE m.name IN ('iris-classifier', 'diabetes-regressor')"
            )
        )
        return [tuple(row) for row in rows]


@dataclass(frozen=True)
class NewPrediction:
    """One generated prediction row (JSON columns as text)."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_version_id: uuid.UUID
    inputs: str
    label: str | None
    value: float | None
    probabilities: str | None
    confidence: float | None
    latency_ms: float
    request_id: str
    caller: str | None
    idempotency_key: str | None
    idempotency_record_id: uuid.UUID | None
    batch_index: int
    routed_by: str = "DEFAULT"


def _requests(rows: list[NewPrediction]) -> list[RequestRows]:
    """Each row as a request of its own, as the writer takes them."""
    return [
        RequestRows(
            ids=[row.id],
            inputs=[orjson.loads(row.inputs)],
            labels=[row.label],
            values=[row.value],
            probabilities=None,
            confidences=[row.confidence],
            model_id=row.model_id,
            model_version_id=row.model_version_id,
            latency_ms=row.latency_ms,
            request_id=row.request_id,
            caller=row.caller,
            idempotency_key=row.idempotency_key,
            idempotency_record_id=row.idempotency_record_id,
            routed_by=row.routed_by,
        )
        for row in rows
    ]


def _rows(rng: np.random.Generator, versions: list, count: int) -> list[NewPrediction]:
    made = []
    for _ in range(count):
        model_id, version_id, classifier = versions[rng.integers(len(versions))]
        made.append(
            NewPrediction(
                id=uuid7(),
                model_id=model_id,
                model_version_id=version_id,
                inputs="{}",
                label=str(rng.choice(LABELS)) if classifier else None,
                value=None if classifier else float(rng.normal(150, 50)),
                probabilities=None,
                confidence=float(rng.uniform(0.3, 1)) if classifier else None,
                latency_ms=float(np.exp(rng.uniform(np.log(0.01), np.log(900)))),
                request_id=f"r{rng.integers(1_000_000)}",
                caller=CALLERS[rng.integers(len(CALLERS))],
                idempotency_key=None,
                idempotency_record_id=None,
                batch_index=0,
            )
        )
    return made


@pytest.fixture
async def spread_predictions(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
) -> None:
    """Past predictions back-filled into roll-ups, new ones written with theirs, outcomes
    (once per test: every hypothesis example of a test reads the same rows)."""
    rng = np.random.default_rng(2026)
    versions = await _versions(engine)
    async with sessionmaker.begin() as session:
        connection = await driver_connection(session)
        past = _rows(rng, versions, 600)
        await connection.executemany(
            "INSERT INTO predictions (id, model_id, model_version_id, inputs, label, value, "
            "confidence, latency_ms, request_id, caller, batch_index, created_at, routed_by) "
            "VALUES ($1, $2, $3, '{}', $4, $5, $6, $7, $8, $9, 0, $10, 'DEFAULT')",
            [
                (r.id, r.model_id, r.model_version_id, r.label, r.value, r.confidence,
                 r.latency_ms, r.request_id, r.caller,
                 HOURS[rng.integers(len(HOURS))] + timedelta(seconds=float(rng.uniform(0, 3599))))
                for r in past
            ],
        )  # fmt: skip
        await connection.execute(QUALITY.BACKFILL_ROLLUPS)
        await connection.execute(QUALITY.BACKFILL_LATENCY_ROLLUPS)
        await connection.execute(DAILY.BACKFILL_DAILY_ROLLUPS)
        await connection.execute(DAILY.BACKFILL_DAILY_LATENCY_ROLLUPS)
        fresh = _rows(rng, versions, 150)
    for batch in (fresh[:50], fresh[50:]):
        async with sessionmaker.begin() as session:
            await insert(await driver_connection(session), _requests(batch))
    labelled = [row for row in [*past, *fresh] if rng.random() < 0.4]
    requests = [
        outcomes.OutcomeRequest(
            prediction_id=row.id,
            label=str(rng.choice(LABELS)) if row.label else None,
            value=None if row.label else float(rng.normal(150, 50)),
        )
        for row in labelled
    ]
    catalogue = Catalogue(Freshness.never())
    for start in range(0, len(requests), 100):
        async with sessionmaker.begin() as session:
            await outcomes.record(
                session, catalogue, requests[start : start + 100], caller=None, max_batch_size=100
            )
    corrections = [
        outcomes.OutcomeRequest(prediction_id=r.prediction_id, label="setosa")
        for r in requests[:40]
        if r.label
    ]
    async with sessionmaker.begin() as session:
        await outcomes.record(session, catalogue, corrections, caller=None, max_batch_size=100)


def close(expected: float | None, rel: float) -> object:
    """Equal to None, or a number within `rel` of `expected`."""
    return None if expected is None else pytest.approx(expected, rel=rel)


def as_numbers(totals: Totals, group: Group | None = None) -> tuple[object, ...]:
    """Every statistic (floats to 12 digits: sums may add up in another order), and the group's
    key and p95."""
    key: tuple[object, ...] = ()
    if group is not None:
        p95 = close(group.p95_latency_ms, 1e-12)
        key = (group.model, group.version, group.label, group.caller, group.bucket, p95)
    return (*key, *(close(v, 1e-12) if isinstance(v, float) else v for v in astuple(totals)))


moments = st.one_of(st.none(), st.sampled_from([*HOURS, NOW + timedelta(hours=1)]))
DRAWN = {
    "model": st.sampled_from([None, "iris-classifier", "diabetes-regressor"]),
    "version": st.sampled_from([None, 1, 2]),
    "label": st.sampled_from([None, *LABELS]),
    "caller": st.sampled_from([None, "alice", "bob"]),
    "created_after": moments,
    "created_before": moments,
    "limit": st.sampled_from(
        [None, ModelLimit.parse("iris-*"), ModelLimit.parse("diabetes-regressor,wine-*")]
    ),
}
queries = st.builds(PredictionQuery, **DRAWN)
groupings = st.lists(st.sampled_from(list(Dimension)), min_size=1, max_size=3, unique=True)
intervals = st.sampled_from([Interval.HOUR, Interval.DAY, Interval.WEEK])
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(query=queries, by=groupings, interval=intervals)
async def test_rollups_answer_like_the_raw_table(
    spread_predictions: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    query: PredictionQuery,
    by: list[Dimension],
    interval: Interval,
):
    assert rollups_answer(query)
    async with sessionmaker() as session:
        rolled = await totals(session, query, from_rollups=True)
        raw = await totals(session, query, from_rollups=False)
        rolled_labels = await label_counts(session, query, from_rollups=True)
        raw_labels = await label_counts(session, query, from_rollups=False)
        approximate = await p95_latency(session, query, from_rollups=True)
        exact = await p95_latency(session, query, from_rollups=False)
        rolled_groups = await groups(session, query, by, interval, 1000, from_rollups=True)
        raw_groups = await groups(session, query, by, interval, 1000, from_rollups=False)
        at_once = {
            (rollups, limit): await groups_and_totals(
                session, query, by, interval, limit, from_rollups=rollups
            )
            for rollups in (True, False)
            for limit in (1000, 2)
        }

    for (rollups, limit), (both_groups, both_totals) in at_once.items():
        alone = rolled_groups if rollups else raw_groups
        assert [as_numbers(g.totals, g) for g in both_groups] == [
            as_numbers(g.totals, g) for g in alone[:limit]
        ]
        assert as_numbers(both_totals) == as_numbers(rolled if rollups else raw)
    assert (rolled.count, rolled.labelled, rolled.correct) == (
        raw.count,
        raw.labelled,
        raw.correct,
    )
    assert (rolled.first_at, rolled.last_at) == (raw.first_at, raw.last_at)
    for name in ("mean_latency_ms", "mean_confidence", "mean_value", "accuracy"):
        assert getattr(rolled, name) == close(getattr(raw, name), 1e-9)
    assert rolled_labels == raw_labels
    assert approximate == close(exact, 0.05)

    def key(group):
        return (group.model, group.version, group.label, group.caller, group.bucket)

    assert [(key(g), g.totals.count, g.totals.labelled) for g in rolled_groups] == [
        (key(g), g.totals.count, g.totals.labelled) for g in raw_groups
    ]
    for mine, theirs in zip(rolled_groups, raw_groups, strict=True):
        assert mine.totals.mean_latency_ms == close(theirs.totals.mean_latency_ms, 1e-9)
        assert mine.totals.accuracy == close(theirs.totals.accuracy, 1e-9)
        assert mine.p95_latency_ms == close(theirs.p95_latency_ms, 0.05)


async def test_the_data_spans_hours_models_callers_and_outcomes(
    spread_predictions: None, sessionmaker: async_sessionmaker[AsyncSession]
):
    """The property above is only as good as the data it runs on."""
    async with sessionmaker() as session:
        everything = await totals(session, PredictionQuery(), from_rollups=True)
        hours = await groups(session, PredictionQuery(), [Dimension.TIME], Interval.HOUR, 1000)
        corrected = await session.scalar(
            text("SELECT count(*) - count(DISTINCT prediction_id) FROM prediction_outcomes")
        )
    assert everything.count == 750
    assert everything.labelled > 200
    assert len(hours) > 20
    assert corrected > 10


ROLLUP_ROW = {
    "daily": "SELECT 1 FROM prediction_daily_rollups WHERE model_version_id = $1 "
    "AND label = $2 AND day = date_trunc('day', now(), 'UTC') FOR UPDATE",
    "hourly": "SELECT 1 FROM prediction_rollups WHERE model_version_id = $1 "
    "AND label = $2 AND hour = date_trunc('hour', now(), 'UTC') FOR UPDATE",
}
RollupRow = tuple[str, str]
"""A roll-up row of this hour's predictions of one version: (period, label)."""


async def _locked_while_blocked(
    engine: AsyncEngine,
    version_id: uuid.UUID,
    held: RollupRow,
    other: RollupRow,
    writing: Callable[[asyncpg.Connection], Awaitable[object]],
) -> bool:
    """Whether `writing`, blocked on the `held` roll-up row, has already locked `other`."""
    async with engine.connect() as holder, engine.connect() as writer, engine.connect() as probe:
        raw = [(await c.get_raw_connection()).driver_connection for c in (holder, writer, probe)]
        async with raw[0].transaction():
            await raw[0].execute(ROLLUP_ROW[held[0]], version_id, held[1])
            blocked = raw[1].transaction()
            await blocked.start()
            attempt = asyncio.ensure_future(writing(raw[1]))
            await asyncio.sleep(0.2)
            assert not attempt.done(), f"the writing must wait for the {held} row"
            try:
                async with raw[2].transaction():
                    await raw[2].execute(ROLLUP_ROW[other[0]] + " NOWAIT", version_id, other[1])
                locked = False
            except asyncpg.LockNotAvailableError:
                locked = True
        await attempt
        await blocked.rollback()
    return locked


async def test_outcomes_and_predictions_lock_roll_up_rows_in_one_order(
    engine: AsyncEngine, demo_catalogue: None
):
    """Daily rows before hourly ones, each in key order, for both writers: recording outcomes
    for this hour's predictions while more are stored never deadlocks."""
    model_id, version_id, _ = (await _versions(engine))[0]
    made = _rows(np.random.default_rng(7), [(model_id, version_id, True)], 2)
    rows = [
        replace(made[0], label="virginica", caller=None),
        replace(made[1], label="setosa", caller=None),
    ]
    async with AsyncSession(engine) as session, session.begin():
        await insert(await driver_connection(session), _requests(rows))

    async def store(connection: asyncpg.Connection) -> None:
        await insert(connection, _requests([replace(row, id=uuid7()) for row in rows]))

    async def count_outcomes(connection: asyncpg.Connection) -> None:
        await outcome_repository.count_in_rollups(connection, [(row.id, 1, 1) for row in rows])

    order = [("daily", "setosa"), ("daily", "virginica"), ("hourly", "setosa"),
             ("hourly", "virginica")]  # fmt: skip
    for writing in (store, count_outcomes):
        for first, then in itertools.pairwise(order):
            assert await _locked_while_blocked(engine, version_id, then, first, writing), (
                writing.__name__,
                first,
                then,
            )
            assert not await _locked_while_blocked(engine, version_id, first, then, writing), (
                writing.__name__,
                first,
                then,
            )


def test_the_property_draws_every_filter_field_the_roll_ups_may_answer():
    """The API's own scope fields (a model's or version's predictions) aside; the caller's
    model limit is drawn too."""
    answerable = {
        name
        for name, declared in FILTER_FIELDS.items()
        if declared.rollups is not RollupDecision.RAW_TABLE_ONLY
        and (declared.public or name == "limit")
    }
    assert answerable == set(DRAWN)


SAMPLE_VALUES = {
    str: "x",
    int: 1,
    float: 0.5,
    bool: True,
    datetime: NOW,
    uuid.UUID: uuid.UUID(int=1),
    ModelLimit: ModelLimit.parse("iris-*"),
}


@pytest.mark.parametrize("name", sorted(FILTER_FIELDS))
def test_each_filter_field_is_routed_by_its_rollup_decision(name: str):
    declared = FILTER_FIELDS[name]
    hint = typing.get_type_hints(PredictionQuery)[name]
    (kind,) = (t for t in typing.get_args(hint) if t is not type(None))
    answered = rollups_answer(PredictionQuery(**{name: SAMPLE_VALUES[kind]}))
    assert answered is (declared.rollups is not RollupDecision.RAW_TABLE_ONLY)


def test_the_raw_table_answers_what_roll_ups_cannot():
    assert not rollups_answer(PredictionQuery(min_confidence=0.5))
    assert not rollups_answer(PredictionQuery(has_outcome=True))
    assert not rollups_answer(PredictionQuery(created_after=NOW + timedelta(minutes=5)))
    assert not rollups_answer(PredictionQuery(), Interval.MINUTE)
    assert rollups_answer(PredictionQuery(created_after=NOW, model="m", caller="c", label="x"))
    assert not rollups_answer(PredictionQuery(label=""))  # roll-ups keep no label as ''
    assert not rollups_answer(PredictionQuery(caller=""))


def test_a_window_is_read_as_whole_days_and_the_hours_at_its_ends():
    day = datetime(2026, 11, 20, tzinfo=UTC)
    after, before = day + timedelta(hours=5), day + timedelta(days=3, hours=2)
    assert periods(after, before) == Periods(
        days=(day + timedelta(days=1), day + timedelta(days=3)),
        hours=((after, day + timedelta(days=1)), (day + timedelta(days=3), before)),
    )
    assert periods(day, day + timedelta(days=2)) == Periods((day, day + timedelta(days=2)), ())
    assert periods(None, None) == Periods((None, None), ())
    assert periods(None, after) == Periods((None, day), ((day, after),))


def test_a_window_within_one_day_or_grouped_by_hour_is_read_hourly():
    day = datetime(2026, 11, 20, tzinfo=UTC)
    inside = (day + timedelta(hours=1), day + timedelta(hours=20))
    assert periods(*inside) == Periods(None, (inside,))
    across = (day + timedelta(hours=20), day + timedelta(days=1, hours=3))
    assert periods(*across) == Periods(None, (across,))
    assert periods(day, None, hourly=True) == Periods(None, ((day, None),))
    last_hours = (datetime.max.replace(tzinfo=UTC) - timedelta(hours=2), None)
    assert periods(*last_hours) == Periods(None, (last_hours,))


def test_a_window_without_an_offset_is_read_as_utc():
    day = datetime(2026, 11, 20, tzinfo=UTC)
    after, before = day + timedelta(hours=5), day + timedelta(days=3)
    naive = PredictionQuery(
        created_after=after.replace(tzinfo=None), created_before=before.replace(tzinfo=None)
    )
    assert periods(naive.created_after, naive.created_before) == periods(after, before)
    assert rollups_answer(naive)
