"""The service keeps the store's partitions: at start-up it creates those missing, and with a
retention it drops the old ones in the background, round after round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from support import create_database, drop_database

from modelql import schema_migrations
from modelql.persistence import partitions
from modelql.persistence.partitions import PartitionInterval
from modelql.services.store_maintenance import StoreMaintenance

FAR = datetime(2100, 1, 4, tzinfo=UTC)  # a Monday the real clock will not reach


@pytest.fixture
async def fresh_store(server_url: str) -> AsyncIterator[str]:
    """A migrated database of its own, without the migration's partition of the past."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        async with partitions.maintenance_connection(url) as connection:
            await connection.execute(
                "ALTER TABLE predictions DETACH PARTITION prediction_partitions.predictions_legacy;"
                "DROP TABLE prediction_partitions.predictions_legacy"
            )
        yield url
    finally:
        await drop_database(server_url, url)


async def _uppers(url: str) -> list[datetime]:
    async with partitions.maintenance_connection(url) as connection:
        return [p.upper for p in await partitions.partitions(connection)]


async def test_start_creates_partitions_ahead_and_the_rounds_prune_old_ones(fresh_store: str):
    now = [FAR]
    maintenance = StoreMaintenance(
        database_url=fresh_store,
        interval=PartitionInterval.DAY,
        retention=timedelta(days=2),
        every_s=0.05,
        clock=lambda: now[0],
    )
    await maintenance.start()
    try:
        started = await _uppers(fresh_store)
        now[0] = FAR + timedelta(days=3)
        await asyncio.sleep(0.5)
        later = await _uppers(fresh_store)
    finally:
        await maintenance.stop()

    assert started == [FAR + timedelta(days=n) for n in (1, 2, 3, 4)]
    assert later == [FAR + timedelta(days=n) for n in (2, 3, 4, 5, 6, 7)]
