"""When PostgreSQL goes away ModelQL says so, stores nothing it did not commit, and recovers
on its own when the database returns. A real cluster is stopped and started inside the test."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from support import app_client, make_settings, reachable_temp_dir

from modelql import schema_migrations
from modelql.embedded_postgres import EmbeddedPostgres
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_RECIPES, train_recipe
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.services import registration

pytestmark = pytest.mark.slow

CREATE = """mutation($key: String) {
  createPrediction(input: {model: "iris-classifier", idempotencyKey: $key,
    features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
    prediction { id } userErrors { code } } }"""


class Outage:
    """A private PostgreSQL cluster with the iris model registered, and an app on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = EmbeddedPostgres(root / "pg")
        self.url = ""

    async def prepare(self) -> None:
        self.url = self.cluster.start()
        await asyncio.to_thread(schema_migrations.upgrade_to_head, self.url)
        iris = next(recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier")
        trained = await asyncio.to_thread(train_recipe, iris)
        (self.root / "artifacts").mkdir()
        engine = create_engine(self.url)
        async with create_sessionmaker(engine).begin() as session:
            await registration.register_demo(
                session, ArtifactStore(self.root / "artifacts"), trained, actor="tests"
            )
        await engine.dispose()

    async def stored_ids(self) -> set[str]:
        engine = create_engine(self.url)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id FROM predictions"))
            ids = {str(row.id) for row in rows}
        await engine.dispose()
        return ids


@pytest.fixture
async def outage() -> AsyncIterator[Outage]:
    root = reachable_temp_dir("mqout")
    prepared = Outage(root)
    try:
        await prepared.prepare()
        yield prepared
    finally:
        prepared.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def local_id(global_id: str) -> str:
    import base64

    return base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode().split(":")[1]


async def test_outage_is_reported_and_recovered_without_restart(outage: Outage):
    async with app_client(make_settings(outage.url, outage.root)) as http:
        before = await http.post("/graphql", json={"query": CREATE})
        assert before.status_code == 200
        acknowledged = {local_id(before.json()["data"]["createPrediction"]["prediction"]["id"])}

        outage.cluster.stop()
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        during = await http.post("/graphql", json={"query": CREATE})
        assert during.status_code == 503
        [error] = during.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert "nothing was stored" in error["message"]
        catalogue = await http.post("/graphql", json={"query": "{ models { nodes { name } } }"})
        assert catalogue.status_code == 503

        outage.cluster.start()
        assert (await http.get("/readyz")).status_code == 200
        after = await http.post("/graphql", json={"query": CREATE})
        assert after.status_code == 200
        acknowledged.add(local_id(after.json()["data"]["createPrediction"]["prediction"]["id"]))

    assert await outage.stored_ids() == acknowledged


async def test_no_acknowledged_prediction_is_lost_when_the_database_stops_under_load(
    outage: Outage,
):
    acknowledged: set[str] = set()
    statuses: list[int] = []
    stop = asyncio.Event()

    async def client_loop(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await http.post(
                "/graphql", json={"query": CREATE, "variables": {"key": str(uuid.uuid4())}}
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                prediction = response.json()["data"]["createPrediction"]["prediction"]
                acknowledged.add(local_id(prediction["id"]))

    async with app_client(make_settings(outage.url, outage.root)) as http:
        workers = [asyncio.create_task(client_loop(http)) for _ in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(outage.cluster.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(outage.cluster.start)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)

    assert set(statuses) <= {200, 503}
    assert statuses.count(503) > 0, "the outage was not observed"
    assert statuses[-1] == 200, "the service did not recover"
    stored = await outage.stored_ids()
    assert acknowledged <= stored
