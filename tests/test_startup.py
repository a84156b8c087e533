"""Start-up refuses a database that is not at the migration head, unless told to migrate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import app_client, create_database, drop_database, make_settings

from modelql.app import NotMigratedError


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
