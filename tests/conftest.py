"""Test database and application fixtures.

Every test run works in a database of its own, created here and dropped afterwards, on:
MODELQL_TEST_DATABASE_URL, else DATABASE_URL, else a PostgreSQL answering on 127.0.0.1:5432,
else an embedded cluster in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis_support import unique_prefix
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import (
    app_client,
    create_database,
    drop_database,
    make_settings,
    reachable_temp_dir,
)

from modelql import schema_migrations
from modelql.embedded_postgres import EmbeddedPostgres
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.notifications import OUTCOMES_CHANNEL
from modelql.services import registration
from modelql.settings import Settings

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PER_TEST_TABLES = (
    "alert_deliveries",
    "alert_periods",
    "alert_rules",
    "prediction_job_parts",
    "prediction_job_sources",
    "prediction_jobs",
    "pgqueuer",
    "prediction_commits",
    "shadow_predictions",
    "latest_outcomes",
    "prediction_outcomes",
    "prediction_rollups",
    "prediction_latency_rollups",
    "prediction_daily_rollups",
    "prediction_latency_daily_rollups",
    "outcome_rollups",
    "prediction_failure_counts",
    "predictions",
    "idempotency_records",
)


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The PostgreSQL server this run uses; an embedded one is started when none is given."""
    configured = os.environ.get("MODELQL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    if _local_server_answers():
        yield LOCAL_SERVER
        return
    data_dir = reachable_temp_dir("mqtest")
    cluster = EmbeddedPostgres(data_dir / "pg")
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """This run's own database, migrated to head, dropped at the end."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        yield url
    finally:
        await drop_database(server_url, url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mqdata"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def artifact_store(data_dir: Path) -> ArtifactStore:
    root = data_dir / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(root)


@pytest.fixture(scope="session")
async def demo_catalogue(
    sessionmaker: async_sessionmaker[AsyncSession], artifact_store: ArtifactStore
) -> None:
    """The demo catalogue, trained and registered once per run."""
    trained = await asyncio.to_thread(train_demo)
    async with sessionmaker.begin() as session:
        for version in trained:
            await registration.register_version(
                session,
                artifact_store,
                registration.VersionRegistration.from_trained(version),
                estimator=version.estimator,
                actor="tests",
            )


@pytest.fixture(autouse=True)
async def clean_predictions(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Tests that touch the database start with no stored predictions."""
    yield
    if "database_url" not in request.fixturenames:
        return
    if "engine" in request.fixturenames:  # set up already: fetching it runs nothing
        await _truncate(request.getfixturevalue("engine"))
        return
    engine = create_engine(request.getfixturevalue("database_url"))
    try:
        await _truncate(engine)
    finally:
        await engine.dispose()


async def _truncate(engine: AsyncEngine) -> None:
    """Empty the store and say so, as ModelQL's own writes do: running apps' kept answers
    are dropped when the notification arrives (the short sleep lets their listeners read it)."""
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(PER_TEST_TABLES)}"))
        await connection.execute(text(f"NOTIFY {OUTCOMES_CHANNEL}"))
    await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir)


@pytest.fixture(scope="session")
async def client(settings: Settings, demo_catalogue: None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app (lifespan run), over the demo catalogue."""
    async with app_client(settings) as http:
        yield http


@pytest.fixture
def cache_prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own (skips when Redis does not answer)."""
    with unique_prefix() as prefix:
        yield prefix
