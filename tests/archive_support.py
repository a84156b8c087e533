"""A prediction store with expired partitions of real predictions, for the archive's tests: a
template database (weekly partitions from five weeks ago, the demo catalogue, the demo traffic
scored by the service and then copied 20 and 13 days into the past, with outcomes for some of
the copies) of which each test gets a fresh copy."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url
from support import (
    app_client,
    create_database,
    drop_database,
    graphql,
    libpq_url,
    make_settings,
)

from modelql import schema_migrations
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence import partition_rows, partitions
from modelql.persistence.archive_format import OUTCOME_COLUMNS, PREDICTION_COLUMNS
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.partitions import Partition, PartitionInterval
from modelql.services import registration

NOW = datetime.now(UTC)
AGES = (timedelta(days=22), timedelta(days=15))
"""The copies of the demo traffic: each in a (weekly) partition that a 7-day retention drops,
whatever the day of the week."""
STORED = 33
"""Predictions in the demo traffic (tests/services/test_verification.py)."""
OUTCOMES_PER_AGE = 5


async def build_template(server_url: str, data_dir: Path) -> str:
    """The template database (its artifacts under data_dir)."""
    url = await create_database(server_url)
    await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
    connection = await asyncpg.connect(libpq_url(url))
    try:
        legacy = "prediction_partitions.predictions_legacy"
        await connection.execute(f"ALTER TABLE predictions DETACH PARTITION {legacy}")
        await connection.execute(f"DROP TABLE {legacy}")
        for now in (NOW - timedelta(days=35), NOW):
            await partitions.ensure(connection, interval=PartitionInterval.WEEK, now=now)
    finally:
        await connection.close()
    engine = create_engine(url)
    try:
        trained = await asyncio.to_thread(train_demo)
        store = ArtifactStore(data_dir / "artifacts")
        store.root.mkdir(parents=True, exist_ok=True)
        async with create_sessionmaker(engine).begin() as session:
            for version in trained:
                await registration.register_version(
                    session,
                    store,
                    registration.VersionRegistration.from_trained(version),
                    estimator=version.estimator,
                    actor="tests",
                )
    finally:
        await engine.dispose()
    async with app_client(make_settings(url, data_dir)) as http:
        await _store_traffic(http)
    connection = await asyncpg.connect(libpq_url(url))
    try:
        for age in AGES:
            await _copy_into_the_past(connection, age)
    finally:
        await connection.close()
    return url


PREDICT = """mutation($input: CreatePredictionsInput!) {
  createPredictions(input: $input) { predictions { id } userErrors { message } } }"""
IRIS = [
    {"sepal_length": 5.1 + n / 10, "sepal_width": 3.5, "petal_length": 1.4 + n / 3,
     "petal_width": 0.2 + n / 8}
    for n in range(12)
]  # fmt: skip
DIABETES = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03,
            "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}  # fmt: skip


async def _store_traffic(http: httpx.AsyncClient) -> None:
    """Singles and batches, concurrent (so the pipelines group them), on two models and both
    iris versions: STORED predictions."""
    requests = [{"model": "iris-classifier", "instances": [instance]} for instance in IRIS] + [
        {"model": "iris-classifier", "version": 1, "instances": IRIS[:5]},
        {"model": "iris-classifier", "version": 2, "instances": IRIS},
        {"model": "diabetes-regressor", "instances": [DIABETES] * 3},
        {"model": "diabetes-regressor", "instances": [DIABETES]},
    ]
    bodies = await asyncio.gather(
        *(graphql(http, PREDICT, {"input": request}) for request in requests)
    )
    assert all(body["data"]["createPredictions"]["userErrors"] == [] for body in bodies)


async def _copy_into_the_past(connection: asyncpg.Connection, age: timedelta) -> None:
    """The stored traffic copied `age` earlier (same ids, transactions and outputs), and
    outcomes for the first copies."""
    columns = [c.name for c in PREDICTION_COLUMNS if c.name != "created_at"]
    await connection.execute(
        f"INSERT INTO predictions ({', '.join(columns)}, created_at) "
        f"SELECT {', '.join(columns)}, created_at - $1::interval FROM predictions WHERE created_at > $2",
        age,
        NOW - timedelta(days=1),
    )
    await connection.execute(
        "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, value, "
        "observed_at, caller) "
        "SELECT gen_random_uuid(), id, created_at, label, value, created_at, 'tests' "
        "FROM predictions WHERE created_at BETWEEN $1 AND $2 ORDER BY created_at, id LIMIT $3",
        NOW - age - timedelta(days=1),
        NOW - age + timedelta(days=1),
        OUTCOMES_PER_AGE,
    )


@asynccontextmanager
async def copy_of(server_url: str, template: str) -> AsyncIterator[str]:
    """A fresh database copied from the template, dropped afterwards."""
    name = f"{make_url(template).database}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(libpq_url(server_url))
    try:
        await connection.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template).database}"'
        )
    finally:
        await connection.close()
    url = make_url(template).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


async def canonical_sha256(url: str, partition: Partition) -> tuple[str, str]:
    """The SHA-256 of a partition's predictions and of their outcomes, computed from the store
    as README documents it (apart from the archive's code)."""
    connection = await asyncpg.connect(libpq_url(url))
    try:
        predictions = await connection.fetch(
            f"SELECT {', '.join(c.select for c in PREDICTION_COLUMNS)} FROM {partition.name} "
            "ORDER BY created_at, id"
        )
        outcomes = await connection.fetch(
            f"SELECT {', '.join(c.select for c in OUTCOME_COLUMNS)} FROM prediction_outcomes "
            "WHERE predicted_at >= $1 AND predicted_at < $2 "
            "ORDER BY predicted_at, prediction_id, recorded_at, id",
            partition.lower,
            partition.upper,
        )
    finally:
        await connection.close()

    def digest(rows: list[asyncpg.Record]) -> str:
        lines = b"".join(
            orjson.dumps(list(row.values()), option=orjson.OPT_UTC_Z) + b"\n" for row in rows
        )
        return hashlib.sha256(lines).hexdigest()

    return digest(predictions), digest(outcomes)


async def expired_partitions(url: str) -> list[tuple[Partition, int, int]]:
    """The partitions a 7-day retention drops, oldest first, each with the number of its
    predictions and of their outcomes (the ones without predictions too)."""
    connection = await asyncpg.connect(libpq_url(url))
    try:
        expired = [
            p for p in await partitions.partitions(connection) if p.upper <= NOW - timedelta(days=7)
        ]
        return [(p, *await partition_rows.counts(connection, p)) for p in expired]
    finally:
        await connection.close()
