"""Benchmarks archiving: loads N predictions spread over 30 days (bench/dataset.py, with
outcomes for 10% of them) into weekly partitions of a fresh database, then times
`modelql store archive`'s work (PartitionArchiver, in process) on the partitions a 1-day
retention would drop. (Not `audit verify --archive`: the loaded outputs are drawn at random,
not scored, and each prediction is a transaction of its own.)

    .venv/bin/python bench/archive.py [--predictions 1000000] [--to DIR_OR_URL]

Uses DATABASE_URL's server, else an embedded cluster; creates its own database and drops it
afterwards. Prints rows/s and the archive's size per 1,000,000 predictions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from dataset import load
from processes import database

from modelql import schema_migrations
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence import partitions
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.partitions import PartitionInterval
from modelql.services import registration
from modelql.services.archiving import PartitionArchiver

LEGACY = "prediction_partitions.predictions_legacy"


async def prepare(url: str, libpq: str, data: Path, predictions: int) -> None:
    """Migrated, weekly partitions over the last five weeks, the demo catalogue, the load."""
    await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
    connection = await asyncpg.connect(libpq)
    try:
        await connection.execute(f"ALTER TABLE predictions DETACH PARTITION {LEGACY}")
        await connection.execute(f"DROP TABLE {LEGACY}")
        now = datetime.now(UTC)
        for moment in (now - timedelta(days=35), now):
            await partitions.ensure(connection, interval=PartitionInterval.WEEK, now=moment)
    finally:
        await connection.close()
    engine = create_engine(url)
    try:
        store = ArtifactStore(data / "artifacts")
        store.root.mkdir(parents=True)
        async with create_sessionmaker(engine).begin() as session:
            for version in await asyncio.to_thread(train_demo):
                await registration.register_version(
                    session,
                    store,
                    registration.VersionRegistration.from_trained(version),
                    estimator=version.estimator,
                    actor="bench",
                )
    finally:
        await engine.dispose()
    started = time.perf_counter()
    await load(libpq, predictions)
    print(f"Loaded {predictions:,} predictions in {time.perf_counter() - started:.1f} s")


async def archive(libpq: str, target: str) -> tuple[int, int, int, float]:
    """Archive what a 1-day retention drops: (predictions, outcomes, bytes, seconds)."""
    before = datetime.now(UTC) - timedelta(days=1)
    connection = await asyncpg.connect(libpq)
    try:
        expired = [p for p in await partitions.partitions(connection) if p.upper <= before]
        in_postgres = await connection.fetchval(
            "SELECT sum(pg_total_relation_size(name::regclass)) FROM unnest($1::text[]) AS name",
            [p.name for p in expired],
        )
        started = time.perf_counter()
        archived = await PartitionArchiver(target).archive_expiring(connection, before=before)
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    print(f"The partitions archived take {in_postgres:,} B in PostgreSQL (table and indexes)")
    for done in archived:
        manifest = done.manifest
        print(
            f"  {manifest.partition}: {manifest.predictions.rows:,} predictions "
            f"({manifest.predictions.bytes:,} B), {manifest.outcomes.rows:,} outcomes "
            f"({manifest.outcomes.bytes:,} B)"
        )
    rows = sum(done.manifest.predictions.rows for done in archived)
    outcomes = sum(done.manifest.outcomes.rows for done in archived)
    size = sum(done.manifest.predictions.bytes + done.manifest.outcomes.bytes for done in archived)
    return rows, outcomes, size, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--to", help="Archive here (default: a temporary directory).")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mqarchive") as scratch:
        data = Path(scratch)
        target = options.to or str(data / "archive")
        with database(os.environ.get("DATABASE_URL"), data) as db:
            asyncio.run(prepare(db.url, db.libpq, data, options.predictions))
            rows, outcomes, size, seconds = asyncio.run(archive(db.libpq, target))
            print(
                f"Archived {rows:,} predictions and {outcomes:,} outcomes in {seconds:.1f} s: "
                f"{rows / seconds:,.0f} predictions/s; {size:,} B in all, "
                f"{size / rows * 1_000_000 / 2**20:,.1f} MiB per 1,000,000 predictions"
            )


if __name__ == "__main__":
    sys.exit(main())
