"""Start-up refuses a database that is not at the migration head, unless told to migrate, and
leaves what it built out of later garbage collections."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import app_client, create_database, drop_database, make_settings

from modelql.garbage_collection import YOUNGEST_GENERATION_THRESHOLD
from modelql.runtime import NotMigratedError, Runtime
from modelql.settings import Settings


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url)
    yield url
    await drop_database(server_url, url)


async def test_an_unmigrated_database_is_refused(empty_database: str, tmp_path: Path):
    settings = make_settings(empty_database, tmp_path, auto_migrate=False)
    with pytest.raises(NotMigratedError, match="modelql migrate"):
        async with app_client(settings):
            pass


async def test_auto_migrate_brings_it_to_head_and_the_service_is_ready(
    empty_database: str, tmp_path: Path
):
    settings = make_settings(empty_database, tmp_path, auto_migrate=True)
    async with app_client(settings) as http:
        ready = await http.get("/readyz")
        empty = await http.post("/graphql", json={"query": "{ models { nodes { name } } }"})
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
    }
    assert empty.json() == {"data": {"models": {"nodes": []}}}


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_a_serving_app_freezes_its_start_up_objects_until_it_stops(
    empty_database: str, tmp_path: Path, collector_restored: None
):
    gc.unfreeze()
    settings = make_settings(empty_database, tmp_path, auto_migrate=True, gc_freeze=True)
    async with app_client(settings) as http:
        frozen = gc.get_freeze_count()
        threshold = gc.get_threshold()
        answered = await http.post("/graphql", json={"query": "{ __typename }"})
    assert frozen > 100_000  # modules, schema and models: hundreds of thousands of objects
    assert threshold[0] == YOUNGEST_GENERATION_THRESHOLD
    assert answered.json() == {"data": {"__typename": "Query"}}
    assert gc.get_freeze_count() == 0, "a stopped app gives its objects back to the collector"
    assert gc.get_threshold()[0] != YOUNGEST_GENERATION_THRESHOLD


async def test_a_runtime_is_built_started_and_stopped_without_the_web_app(
    settings: Settings, demo_catalogue: None
):
    runtime = Runtime.build(settings, database_url=str(settings.database_url))
    await runtime.start()
    try:
        assert runtime.listener.connected_since is not None
        assert await runtime.load_default_versions() == []
        assert len(runtime.model_cache) > 0, "the default versions are loaded at start"
    finally:
        await runtime.stop()
    assert runtime.listener.connected_since is None
    assert runtime.engine.sync_engine.pool.checkedout() == 0
