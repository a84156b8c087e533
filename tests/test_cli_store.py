"""`modelql store prune` drops the partitions of predictions older than the retention, and
refuses while `modelql audit verify` reads one of them. Runs on a database of its own whose
partitions start five weeks ago."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from support import create_database, drop_database, libpq_url
from test_cli_embedded import _base_env, _run_cli, _said

from modelql import schema_migrations
from modelql.persistence import partitions
from modelql.persistence.partitions import PartitionInterval

pytestmark = pytest.mark.slow  # starts `modelql` processes

NOW = datetime.now(UTC)
MODEL, VERSION = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def weeks_of_partitions(server_url: str) -> AsyncIterator[str]:
    """A migrated database with weekly partitions from five weeks ago and one prediction 20
    days old, one new."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        connection = await asyncpg.connect(libpq_url(url))
        try:
            await connection.execute(
                "ALTER TABLE predictions DETACH PARTITION prediction_partitions.predictions_legacy"
            )
            await connection.execute("DROP TABLE prediction_partitions.predictions_legacy")
            for now in (NOW - timedelta(days=35), NOW):
                await partitions.ensure(connection, interval=PartitionInterval.WEEK, now=now)
            await connection.execute(
                "INSERT INTO models (id, name, task) VALUES ($1, 'm', 'CLASSIFICATION')", MODEL
            )
            await connection.execute(
                "INSERT INTO model_versions (id, model_id, number, algorithm, framework, "
                "framework_version, artifact_path, artifact_sha256, input_schema) "
                "VALUES ($1, $2, 1, 'rule', 'sklearn', '1', 'x', repeat('0', 64), '[]')",
                VERSION,
                MODEL,
            )
            await connection.executemany(
                "INSERT INTO predictions (id, model_id, model_version_id, inputs, latency_ms, "
                "request_id, batch_index, created_at, routed_by) "
                "VALUES (gen_random_uuid(), $1, $2, '{}', 1, 'r', 0, $3, 'DEFAULT')",
                [(MODEL, VERSION, NOW - timedelta(days=20)), (MODEL, VERSION, NOW)],
            )
        finally:
            await connection.close()
        yield url
    finally:
        await drop_database(server_url, url)


async def _stored(url: str) -> list[datetime]:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return [row[0] for row in await connection.fetch("SELECT created_at FROM predictions")]
    finally:
        await connection.close()


async def test_prune_drops_the_weeks_older_than_the_retention(weeks_of_partitions: str):
    env = _base_env(DATABASE_URL=libpq_url(weeks_of_partitions))

    pruned = await asyncio.to_thread(_run_cli, ["store", "prune", "--retention-days", "7"], env)
    again = await asyncio.to_thread(_run_cli, ["store", "prune"], {**env, "MODELQL_RETENTION_DAYS": "7"})  # fmt: skip

    assert pruned.returncode == 0, _said(pruned)
    dropped = pruned.stdout.split()
    assert len(dropped) >= 2
    assert all(name.startswith("prediction_partitions.predictions_p") for name in dropped)
    assert f"Dropped {len(dropped)} partitions of predictions older than 7 days" in _said(pruned)
    assert await _stored(weeks_of_partitions) == [NOW]
    assert again.returncode == 0, _said(again)
    assert "Dropped 0 partitions" in _said(again)


async def test_prune_is_refused_while_verify_reads_an_old_partition(weeks_of_partitions: str):
    env = _base_env(DATABASE_URL=libpq_url(weeks_of_partitions))
    reader = await asyncpg.connect(libpq_url(weeks_of_partitions))
    try:
        async with reader.transaction():
            await partitions.hold_for_reading(reader, since=None, until=NOW - timedelta(days=19))
            refused = await asyncio.to_thread(_run_cli, ["store", "prune", "--retention-days", "7"], env)  # fmt: skip
    finally:
        await reader.close()
    without_retention = await asyncio.to_thread(_run_cli, ["store", "prune"], env)

    assert refused.returncode == 1
    assert (
        "is being read by `modelql audit verify` or `modelql store archive`; nothing was pruned"
        in _said(refused)
    )
    assert len(await _stored(weeks_of_partitions)) == 2
    assert without_retention.returncode == 2
    assert "No retention: pass --retention-days or set MODELQL_RETENTION_DAYS" in _said(
        without_retention
    )
