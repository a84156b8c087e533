"""Migration 20261204_partitions converts a store holding predictions and outcomes: every row
kept as it was (the old table becomes a partition), outcomes still reference their
predictions, and the downgrade gives the same rows back in one plain table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic import command
from support import create_database, drop_database, libpq_url

from modelql import schema_migrations

BEFORE = "20261123_lean"
PARTITIONED = "20261204_partitions"
MODEL, VERSION = uuid.uuid4(), uuid.uuid4()
ROWS = "SELECT id, created_at, label, latency_ms FROM predictions ORDER BY id"
OUTCOMES = "SELECT id, prediction_id, label FROM prediction_outcomes ORDER BY id"


def _migrate(url: str, step: str, revision: str) -> None:
    getattr(command, step)(schema_migrations.alembic_config(url), revision)


@pytest.fixture
async def old_store(server_url: str) -> AsyncIterator[str]:
    """A database at the revision before partitioning, with predictions over three weeks and
    outcomes for some of them."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(_migrate, url, "upgrade", BEFORE)
        connection = await asyncpg.connect(libpq_url(url))
        try:
            await connection.execute(
                "INSERT INTO models (id, name, task) VALUES ($1, 'm', 'CLASSIFICATION')", MODEL
            )
            await connection.execute(
                "INSERT INTO model_versions (id, model_id, number, algorithm, framework, "
                "framework_version, artifact_path, artifact_sha256, input_schema, labels) "
                "VALUES ($1, $2, 1, 'rule', 'sklearn', '1', 'x', repeat('0', 64), '[]', "
                "ARRAY['a', 'b'])",
                VERSION,
                MODEL,
            )
            now = datetime.now(UTC)
            await connection.executemany(
                "INSERT INTO predictions (id, model_id, model_version_id, inputs, label, "
                "latency_ms, request_id, batch_index, created_at, routed_by) "
                "VALUES (gen_random_uuid(), $1, $2, '{}', 'a', $3, 'r', 0, $4, 'DEFAULT')",
                [(MODEL, VERSION, n / 7, now - timedelta(hours=5 * n)) for n in range(100)],
            )
            await connection.execute(
                "INSERT INTO prediction_outcomes (id, prediction_id, label, observed_at) "
                "SELECT gen_random_uuid(), id, 'b', now() FROM predictions "
                "ORDER BY created_at LIMIT 10"
            )
            await connection.execute(
                "INSERT INTO latest_outcomes (prediction_id, outcome_id, model_version_id, "
                "predicted_at, predicted_label, label) "
                "SELECT p.id, o.id, p.model_version_id, p.created_at, p.label, o.label "
                "FROM prediction_outcomes o JOIN predictions p ON p.id = o.prediction_id"
            )
        finally:
            await connection.close()
        yield url
    finally:
        await drop_database(server_url, url)


async def _read(url: str, *statements: str) -> list[list[tuple[object, ...]]]:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return [[tuple(row) for row in await connection.fetch(s)] for s in statements]
    finally:
        await connection.close()


async def test_an_existing_store_is_partitioned_and_back_without_losing_a_row(old_store: str):
    before = await _read(old_store, ROWS, OUTCOMES)

    await asyncio.to_thread(_migrate, old_store, "upgrade", PARTITIONED)
    partitioned = await _read(
        old_store,
        ROWS,
        OUTCOMES,
        "SELECT count(*) FROM prediction_outcomes o JOIN predictions p "
        "ON (p.id, p.created_at) = (o.prediction_id, o.predicted_at)",
        "SELECT relkind::text FROM pg_class WHERE relname = 'predictions'",
        "SELECT count(*) FROM prediction_partitions.predictions_legacy",
    )
    await asyncio.to_thread(_migrate, old_store, "downgrade", BEFORE)
    after = await _read(old_store, ROWS, OUTCOMES)

    assert partitioned[:2] == before
    assert partitioned[2:] == [[(10,)], [("p",)], [(100,)]]
    assert after == before
    assert len(before[0]) == 100 and len(before[1]) == 10


async def test_an_outcome_must_name_a_stored_prediction_by_its_key(old_store: str):
    await asyncio.to_thread(_migrate, old_store, "upgrade", PARTITIONED)
    connection = await asyncpg.connect(libpq_url(old_store))
    try:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(
                "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, "
                "observed_at) SELECT gen_random_uuid(), id, created_at + interval '1 second', "
                "'b', now() FROM predictions LIMIT 1"
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(
                "DELETE FROM predictions WHERE id IN (SELECT prediction_id FROM latest_outcomes)"
            )
    finally:
        await connection.close()
