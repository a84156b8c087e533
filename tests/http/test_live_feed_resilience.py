"""The live feed across processes, through a PostgreSQL restart, and against a subscriber
that stops reading: events cross servers, none is lost or repeated, memory stays bounded."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
from live_support import Subscriptions, served, served_elsewhere
from support import make_settings, reachable_temp_dir

from modelql import schema_migrations
from modelql.embedded_postgres import EmbeddedPostgres
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_RECIPES, train_recipe
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.services import registration
from modelql.settings import Settings

pytestmark = pytest.mark.slow

SUBSCRIBE = "subscription { predictionsCreated { id requestId } }"
SUBSCRIBE_WIDE = """subscription { predictionsCreated {
  id inputs label confidence probabilities { label probability } requestId createdAt } }"""
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PREDICT = """mutation($instances: [JSON!]!) {
  createPredictions(input: {model: "iris-classifier", instances: $instances}) {
    predictions { id } userErrors { code } } }"""


async def predict(http: httpx.AsyncClient, count: int = 1) -> list[str] | None:
    """The ids of `count` new predictions stored in one request; None while unavailable."""
    response = await http.post(
        "/graphql",
        json={"query": PREDICT, "variables": {"instances": [IRIS] * count}},
        headers={"X-Request-ID": str(uuid.uuid4())},
    )
    if response.status_code == 503:
        return None
    payload = response.json()["data"]["createPredictions"]
    assert payload["userErrors"] == [], payload
    return [prediction["id"] for prediction in payload["predictions"]]


async def received_ids(connection: Subscriptions, quiet_for: float) -> list[list[str]]:
    """Every message's prediction ids until none comes for `quiet_for` seconds."""
    messages = []
    while True:
        try:
            message = await connection.receive(within=quiet_for)
        except TimeoutError:
            return messages
        assert message["type"] == "next", message
        messages.append([p["id"] for p in message["payload"]["data"]["predictionsCreated"]])


async def test_a_prediction_stored_by_one_server_reaches_a_subscriber_of_another(
    settings: Settings, demo_catalogue: None
):
    async with (
        served(settings) as here,
        served_elsewhere(settings) as elsewhere,
        Subscriptions.open(here.url) as connection,
        httpx.AsyncClient(base_url=elsewhere) as http,
    ):
        await connection.acknowledged()
        await connection.subscribe(SUBSCRIBE)
        await asyncio.sleep(0.3)
        first = await predict(http, 2)
        second = await predict(http, 1)

        assert await received_ids(connection, quiet_for=1.0) == [first, second]


class PrivateCluster:
    """A PostgreSQL cluster of this test's own, migrated, with the iris model registered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = EmbeddedPostgres(root / "pg")

    async def prepare(self) -> Settings:
        url = self.cluster.start()
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        iris = next(recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier")
        trained = await asyncio.to_thread(train_recipe, iris)
        (self.root / "artifacts").mkdir()
        engine = create_engine(url)
        async with create_sessionmaker(engine).begin() as session:
            await registration.register_demo(
                session, ArtifactStore(self.root / "artifacts"), trained, actor="tests"
            )
        await engine.dispose()
        return make_settings(url, self.root)


@pytest.fixture
async def private_cluster() -> AsyncIterator[PrivateCluster]:
    root = reachable_temp_dir("mqlive")
    cluster = PrivateCluster(root)
    try:
        yield cluster
    finally:
        cluster.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_after_a_database_restart_the_feed_catches_up_without_loss_or_repeat(
    private_cluster: PrivateCluster,
):
    settings = await private_cluster.prepare()
    acknowledged: list[list[str]] = []
    async with (
        served(settings) as server,
        Subscriptions.open(server.url) as connection,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await connection.acknowledged()
        await connection.subscribe(SUBSCRIBE)
        await asyncio.sleep(0.3)
        for count in (1, 2):
            acknowledged.append(await predict(http, count))
        before = await received_ids(connection, quiet_for=0.5)
        assert before == acknowledged

        await asyncio.to_thread(private_cluster.cluster.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_cluster.cluster.start)
        # Stored at once, before the listener is back: only catching up can deliver them.
        while len(acknowledged) < 6:
            ids = await predict(http, 3)
            if ids is not None:
                acknowledged.append(ids)

        after = await received_ids(connection, quiet_for=3.0)
    delivered = before + after
    assert sorted(map(tuple, delivered)) == sorted(map(tuple, acknowledged))
    flat = [prediction for message in delivered for prediction in message]
    assert len(flat) == len(set(flat)), "an event was delivered twice"


async def test_a_subscriber_that_stops_reading_is_cut_off_and_memory_stays_bounded(
    database_url: str, data_dir: Path, demo_catalogue: None
):
    settings = make_settings(database_url, data_dir, subscriber_queue_size=3)
    server_memory = psutil.Process()
    async with (
        served(settings, small_send_buffer=True) as server,
        Subscriptions.open(server.url, slow_reader=True) as connection,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await connection.acknowledged()
        operation = await connection.subscribe(SUBSCRIBE_WIDE)
        await asyncio.sleep(0.3)
        rss_before = server_memory.memory_info().rss
        for _ in range(40):
            await asyncio.gather(*(predict(http, 200) for _ in range(8)))
            if not server.feeds.predictions.subscribers:
                break
        rss_growth = server_memory.memory_info().rss - rss_before
        assert server.feeds.predictions.subscribers == 0, "the slow subscriber was not cut off"
        assert len(server.feeds.subscriptions) == 0
        assert rss_growth < 64 * 2**20, f"the server grew by {rss_growth / 2**20:.0f} MiB"

        messages, close = await connection.until_closed()
    assert close.code == 4008
    assert "fell more than 3 messages behind" in close.reason
    *delivered, error, complete = messages
    assert all(message["type"] == "next" for message in delivered)
    assert len(delivered) >= 1
    assert error["id"] == operation
    assert error["payload"]["errors"][0]["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert complete == {"id": operation, "type": "complete"}
