"""A version whose artifact no longer matches its recorded sha256 is never scored."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from support import app_client, create_database, drop_database, graphql, make_settings

from modelql import schema_migrations
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_RECIPES, train_recipe
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.services import registration

CREATE = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  prediction { id } userErrors { code } } }"""


@pytest.fixture
async def tampered(server_url: str) -> AsyncIterator[tuple[str, Path]]:
    """A database with iris registered, whose production artifact was then modified."""
    url = await create_database(server_url)
    root = Path(tempfile.mkdtemp(prefix="mqtamper"))
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        iris = next(recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier")
        trained = await asyncio.to_thread(train_recipe, iris)
        store = ArtifactStore(root / "artifacts")
        store.root.mkdir()
        engine = create_engine(url)
        async with create_sessionmaker(engine).begin() as session:
            versions = await registration.register_demo(session, store, trained, actor="tests")
        await engine.dispose()
        production = store.resolve(versions[0].artifact_path)
        production.write_bytes(production.read_bytes() + b"\0")
        yield url, root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await drop_database(server_url, url)


async def test_a_tampered_artifact_is_refused_loudly_and_nothing_is_stored(
    tampered: tuple[str, Path], caplog: pytest.LogCaptureFixture
):
    url, root = tampered
    async with app_client(make_settings(url, root)) as http:
        body = await graphql(http, CREATE)
        ready = await http.get("/readyz")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MODEL_UNAVAILABLE"
    assert "integrity check" in error["message"]
    assert ready.status_code == 503
    assert any(
        record.levelno == logging.CRITICAL and "sha256 mismatch" in record.getMessage()
        for record in caplog.records
    )
    engine = create_engine(url)
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM predictions")) == 0
    await engine.dispose()
