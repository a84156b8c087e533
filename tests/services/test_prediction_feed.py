"""The prediction feed's position: commits that commit out of id order, and ids that never
commit, are neither lost nor delivered twice. A subscriber's filter keeps, of each commit,
exactly what the same filter selects in SQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import feed_repository, prediction_writer
from modelql.persistence.database import driver_connection, libpq_url
from modelql.persistence.model_limit import ModelLimit
from modelql.persistence.prediction_filters import FILTER_FIELDS, PredictionQuery
from modelql.persistence.tables import Model, ModelVersion, Prediction
from modelql.services import prediction_feed
from modelql.services.prediction_feed import PredictionFeed
from modelql.services.subscribers import Subscriber, Subscriptions


@pytest.fixture
async def iris_version(
    sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
) -> tuple[uuid.UUID, uuid.UUID]:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(ModelVersion.model_id, ModelVersion.id)
                .join(Model, Model.id == ModelVersion.model_id)
                .where(Model.name == "iris-classifier", ModelVersion.number == 1)
            )
        ).one()
    return row.model_id, row.id


@pytest.fixture
async def connections(database_url: str) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await asyncpg.connect(libpq_url(database_url)) for _ in range(2)]
    yield opened
    for connection in opened:
        await connection.close()


REQUEST_IDS = ["slow", "fast", "never", "after-gap", "in-flight", "later"]


def rows(
    version: tuple[uuid.UUID, uuid.UUID], count: int, request_id: str
) -> list[prediction_writer.RequestRows]:
    """`count` predictions of one request, as the writer takes them. Each request has its own
    caller and latency, so that open transactions of different requests add to different
    roll-up rows (one roll-up row is locked until its writer commits)."""
    model_id, version_id = version
    return [
        prediction_writer.RequestRows(
            ids=[uuid.uuid4() for _ in range(count)],
            inputs=[{}] * count,
            labels=["setosa"] * count,
            values=None,
            probabilities=None,
            confidences=[0.9] * count,
            model_id=model_id,
            model_version_id=version_id,
            latency_ms=float(10 ** (len(REQUEST_IDS) - REQUEST_IDS.index(request_id))),
            request_id=request_id,
            caller=request_id,
            idempotency_key=None,
            idempotency_record_id=None,
            routed_by="DEFAULT",
        )
    ]


async def delivered(subscriber: Subscriber, within: float = 1.0) -> list[list[str]]:
    """Request ids of each message waiting, after the feed had `within` seconds to read."""
    await asyncio.sleep(within)
    messages: list[list[str]] = []
    iterator = subscriber.messages()
    while subscriber.waiting:
        commit: prediction_feed.Commit = await anext(iterator)
        messages.append([item.row.request_id for item in commit.predictions])
    return messages


async def test_a_commit_that_lands_after_a_later_one_is_still_delivered_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    iris_version: tuple[uuid.UUID, uuid.UUID],
    connections: list[asyncpg.Connection],
):
    feed = PredictionFeed(sessionmaker, Subscriptions(max_per_key=10))
    subscriber: Subscriber = Subscriber(
        select=prediction_feed.selector(PredictionQuery()), capacity=100
    )
    slow, fast = connections
    async with feed.subscribed(subscriber):
        slow_transaction = slow.transaction()
        await slow_transaction.start()
        await prediction_writer.insert(slow, rows(iris_version, 2, "slow"), feed=True)
        async with fast.transaction():
            await prediction_writer.insert(fast, rows(iris_version, 1, "fast"), feed=True)
        feed.wake()
        assert await delivered(subscriber) == [["fast"]]

        await slow_transaction.commit()
        feed.wake()
        feed.wake()
        assert await delivered(subscriber) == [["slow", "slow"]]

        rolled_back = slow.transaction()
        await rolled_back.start()
        await prediction_writer.insert(slow, rows(iris_version, 1, "never"), feed=True)
        await rolled_back.rollback()
        async with fast.transaction():
            await prediction_writer.insert(fast, rows(iris_version, 1, "after-gap"), feed=True)
        feed.wake()
        assert await delivered(subscriber) == [["after-gap"]]
        feed.wake()
        assert await delivered(subscriber, within=0.3) == []


async def test_a_commit_in_flight_when_the_first_subscriber_arrives_is_delivered(
    sessionmaker: async_sessionmaker[AsyncSession],
    iris_version: tuple[uuid.UUID, uuid.UUID],
    connections: list[asyncpg.Connection],
):
    feed = PredictionFeed(sessionmaker, Subscriptions(max_per_key=10))
    subscriber: Subscriber = Subscriber(
        select=prediction_feed.selector(PredictionQuery(request_id="in-flight")), capacity=100
    )
    slow, _ = connections
    transaction = slow.transaction()
    await transaction.start()
    await prediction_writer.insert(slow, rows(iris_version, 1, "in-flight"), feed=True)
    async with feed.subscribed(subscriber):
        await transaction.commit()
        feed.wake()
        assert await delivered(subscriber) == [["in-flight"]]


async def _version_ids(session: AsyncSession, model: str, number: int) -> tuple[uuid.UUID, ...]:
    row = await session.execute(
        select(ModelVersion.model_id, ModelVersion.id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == model, ModelVersion.number == number)
    )
    return tuple(row.one())


def _request(
    version: tuple[uuid.UUID, ...], request_id: str, caller: str | None, outputs: list[Any]
) -> prediction_writer.RequestRows:
    """One request's predictions: (label, confidence) pairs, or values of a regressor."""
    classified = isinstance(outputs[0], tuple)
    return prediction_writer.RequestRows(
        ids=[uuid.uuid4() for _ in outputs],
        inputs=[{}] * len(outputs),
        labels=[label for label, _ in outputs] if classified else [None] * len(outputs),
        values=None if classified else outputs,
        probabilities=None,
        confidences=[c for _, c in outputs] if classified else [None] * len(outputs),
        model_id=version[0],
        model_version_id=version[1],
        latency_ms=1.0,
        request_id=request_id,
        caller=caller,
        idempotency_key=None,
        idempotency_record_id=None,
        routed_by="DEFAULT",
    )


def _samples(
    stamped: list[datetime], iris: tuple[uuid.UUID, ...], iris_v2: tuple[uuid.UUID, ...]
) -> dict[str, list[Any]]:
    """Values to try for every filter field, on the predictions the test stores."""
    times = [*stamped, stamped[0] + timedelta(microseconds=1), stamped[-1] + timedelta(days=1)]
    return {
        "model": ["iris-classifier", "diabetes-regressor", "no-such-model"],
        "version": [1, 2, 3],
        "label": ["setosa", "virginica", "", "none-such"],
        "caller": ["alice", "bob", ""],
        "request_id": ["first", "second", "none-such"],
        "created_after": times,
        "created_before": times,
        "min_confidence": [0.0, 0.5, 0.9, 1.0],
        "max_confidence": [0.0, 0.5, 0.9, 1.0],
        "has_outcome": [True, False],
        "correct": [True, False],
        "model_id": [iris[0], iris_v2[0], uuid.uuid4()],
        "version_id": [iris[1], iris_v2[1], uuid.uuid4()],
        "limit": [
            ModelLimit.parse("iris-*"),
            ModelLimit.parse("diabetes-regressor,wine-*"),
            ModelLimit.parse("?ris-classifier"),
            ModelLimit.parse("iris_classifier"),
        ],
    }


async def test_every_filter_field_keeps_in_the_feed_what_it_selects_in_sql(
    sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
):
    async with sessionmaker() as session:
        iris = await _version_ids(session, "iris-classifier", 1)
        iris_v2 = await _version_ids(session, "iris-classifier", 2)
        diabetes = await _version_ids(session, "diabetes-regressor", 1)
    groups = [
        [
            _request(iris, "first", "alice", [("setosa", 0.9), ("virginica", 0.5)]),
            _request(diabetes, "first", None, [120.0]),
        ],
        [
            _request(iris_v2, "second", "bob", [("virginica", 0.95), ("setosa", 0.3)]),
            _request(iris, "second", None, [("versicolor", 0.5)]),
        ],
    ]
    stamped = []
    for group in groups:
        async with sessionmaker.begin() as session:
            stamped.append(await prediction_writer.insert(await driver_connection(session), group))
    ids = [i for group in groups for request in group for i in request.ids]
    samples = _samples(stamped, iris, iris_v2)
    assert set(samples) == set(FILTER_FIELDS), "give sample values for every filter field"

    selections = set()
    async with sessionmaker() as session:
        committed = list((await feed_repository.named_predictions(session, ids)).values())
        for name, values in samples.items():
            for value in values:
                query = PredictionQuery(**{name: value})
                in_sql = set(
                    await session.scalars(
                        select(Prediction.id).where(Prediction.id.in_(ids), *query.conditions())
                    )
                )
                in_feed = {item.row.id for item in committed if query.matches(item)}
                assert in_feed == in_sql, (name, value)
                selections.add(frozenset(in_sql))
    assert len(committed) == len(ids) and len(selections) > 10
