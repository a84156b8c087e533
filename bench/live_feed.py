"""Measures the live feed: what it adds to the prediction insert, and how long a prediction
takes to reach a subscriber.

    .venv/bin/python bench/live_feed.py [--server postgresql://postgres@127.0.0.1:5432/postgres]

Without --server an embedded PostgreSQL is started in a temporary directory. A database of its
own is created (and dropped), migrated, and given the iris model. Then:
1. the insert statement of a 10-row group, with and without the feed's commit row and NOTIFY
   (alternating, each in its own transaction), median and p95;
2. ModelQL on a real socket with one subscriber: for sequential createPrediction requests, the
   time from sending the request to its answer, and to the subscriber's message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from modelql import schema_migrations
from modelql.app import create_app
from modelql.embedded_postgres import EmbeddedPostgres
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_RECIPES, train_recipe
from modelql.persistence import prediction_writer
from modelql.persistence.database import create_engine, create_sessionmaker, libpq_url
from modelql.services import registration
from modelql.settings import Settings

PREDICT = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  prediction { id } } }"""
SUBSCRIBE = "subscription { predictionsCreated { id } }"


@asynccontextmanager
async def database(server: str | None, root: Path) -> AsyncIterator[str]:
    """A new database with the iris model; dropped (or its cluster stopped) afterwards."""
    cluster = None
    if server is None:
        cluster = EmbeddedPostgres(root / "pg")
        server = cluster.start()
    name = f"modelql_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(libpq_url(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        iris = next(recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier")
        engine = create_engine(url)
        async with create_sessionmaker(engine).begin() as session:
            await registration.register_demo(
                session,
                ArtifactStore(root / "artifacts"),
                await asyncio.to_thread(train_recipe, iris),
                actor="bench",
            )
        await engine.dispose()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if cluster is not None:
            cluster.stop()


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):7.3f} ms   p95 {p95:7.3f} ms   (n={len(ordered)})"


async def insert_cost(url: str, groups: int) -> None:
    connection = await asyncpg.connect(libpq_url(url))
    model_id, version_id = await connection.fetchrow(
        "SELECT model_id, id FROM model_versions ORDER BY number LIMIT 1"
    )
    timings: dict[bool, list[float]] = {False: [], True: []}
    for index in range(groups * 2):
        feed = index % 2 == 1
        rows = [
            prediction_writer.RequestRows(
                ids=[uuid.uuid4() for _ in range(10)],
                inputs=[{}] * 10,
                labels=["setosa"] * 10,
                values=None,
                probabilities=None,
                confidences=[0.9] * 10,
                model_id=model_id,
                model_version_id=version_id,
                latency_ms=0.1,
                request_id="bench",
                caller=None,
                idempotency_key=None,
                idempotency_record_id=None,
                routed_by="DEFAULT",
            )
        ]
        async with connection.transaction():
            started = time.perf_counter()
            await prediction_writer.insert(connection, rows, feed=feed)
            timings[feed].append((time.perf_counter() - started) * 1000)
    await connection.close()
    print(f"insert, 10 rows, no feed      {percentiles(timings[False])}")
    print(f"insert, 10 rows, feed         {percentiles(timings[True])}")


async def feed_latency(url: str, root: Path, requests: int) -> None:
    settings = Settings(_env_file=None, database_url=url, data_dir=root, log_level="WARNING")  # type: ignore[call-arg]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, database_url=url), port=0, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    answered, delivered = [], []
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        await asyncio.sleep(0.3)
        for _ in range(requests):
            started = time.perf_counter()
            sent = asyncio.create_task(http.post("/graphql", json={"query": PREDICT}))
            sent.add_done_callback(
                lambda _, started=started: answered.append((time.perf_counter() - started) * 1000)
            )
            message = json.loads(await ws.recv())
            delivered.append((time.perf_counter() - started) * 1000)
            await sent
            assert message["type"] == "next", message
    server.should_exit = True
    await task
    print(f"createPrediction answered     {percentiles(answered)}")
    print(f"... and at the subscriber     {percentiles(delivered)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a PostgreSQL server URL (default: embedded)")
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mqbench"))
    try:
        async with database(arguments.server, root) as url:
            await insert_cost(url, arguments.groups)
            await feed_latency(url, root, arguments.requests)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
