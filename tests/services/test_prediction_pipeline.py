"""The prediction pipeline on its own: a group that PostgreSQL refuses a value of is retried
request by request, so only the request carrying the value fails."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from modelql.models.artifacts import ArtifactStore
from modelql.persistence import partitions
from modelql.persistence.database import is_rejected_value
from modelql.services.catalogue import Catalogue
from modelql.services.freshness import Freshness
from modelql.services.inference import ModelCache
from modelql.services.prediction_pipeline import PredictionPipelines
from modelql.services.predictions import PredictionJob, PredictionRequest, Requester

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
async def pipelines(engine: AsyncEngine, artifact_store: ArtifactStore, demo_catalogue: None):
    cache = ModelCache(artifact_store)
    yield PredictionPipelines(engine=engine, model_cache=cache, max_group_rows=100)
    cache.close()


async def iris_version(sessionmaker: async_sessionmaker[AsyncSession]):
    catalogue = Catalogue(Freshness(max_staleness_s=1.0, listening_since=lambda: None))
    async with sessionmaker() as session:
        route = (await catalogue.routes_by_name(session, ["iris-classifier"]))["iris-classifier"]
        version_id = route.choose(number=None, alias=None).version_id
        return (await catalogue.versions(session, [version_id]))[version_id]


def job(version, request_id: str) -> PredictionJob:
    request = PredictionRequest("iris-classifier", None, None, [SETOSA], batch=False)
    return PredictionJob(request, Requester(request_id, None), version, [SETOSA], None)


async def test_a_value_the_database_refuses_fails_only_its_own_request(
    pipelines: PredictionPipelines,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
):
    version = await iris_version(sessionmaker)
    too_long = "x" * 300  # request ids are VARCHAR(200); the HTTP layer never sends these

    results = await asyncio.gather(
        pipelines.run(job(version, "fine-1")),
        pipelines.run(job(version, too_long)),
        pipelines.run(job(version, "fine-2")),
        return_exceptions=True,
    )

    assert [outcome.predictions[0].request_id for outcome in (results[0], results[2])] == [
        "fine-1",
        "fine-2",
    ]
    assert isinstance(results[1], Exception)
    assert is_rejected_value(results[1])
    async with engine.connect() as connection:
        stored = await connection.scalars(text("select request_id from predictions"))
        assert sorted(stored) == ["fine-1", "fine-2"]


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_the_next_group_leaves_while_the_previous_one_waits_on_the_database(
    engine: AsyncEngine,
    artifact_store: ArtifactStore,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    in_flight: int,
):
    """Up to `groups_in_flight` groups are stored at once, however small: here each waits
    on a lock of the roll-ups held by another transaction."""
    cache = ModelCache(artifact_store)
    pipelines = PredictionPipelines(
        engine=engine, model_cache=cache, max_group_rows=100, groups_in_flight=in_flight
    )
    version = await iris_version(sessionmaker)
    try:
        async with engine.connect() as holder, engine.connect() as watcher:
            await holder.execute(text("LOCK TABLE prediction_rollups IN SHARE MODE"))
            first = asyncio.ensure_future(pipelines.run(job(version, "first")))
            while await _waiting_on_locks(watcher) < 1:
                assert not first.done(), first.exception()
                await asyncio.sleep(0.02)
            second = asyncio.ensure_future(pipelines.run(job(version, "second")))
            await asyncio.sleep(0.3)
            waiting = await _waiting_on_locks(watcher)
            await holder.commit()
            outcomes = await asyncio.gather(first, second)
    finally:
        cache.close()

    assert waiting == in_flight
    assert [o.predictions[0].request_id for o in outcomes] == ["first", "second"]


async def _waiting_on_locks(connection: AsyncConnection) -> int:
    """Backends of this database waiting for a lock (a fresh statistics snapshot)."""
    await connection.rollback()
    found = await connection.scalar(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
    )
    await connection.rollback()
    return int(found or 0)


async def test_groups_in_flight_side_by_side_store_each_request_once(
    engine: AsyncEngine,
    artifact_store: ArtifactStore,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
):
    """Full groups waiting start more dispatchers; idempotent duplicates racing across the
    groups in flight still store once and replay the same predictions."""
    cache = ModelCache(artifact_store)
    pipelines = PredictionPipelines(
        engine=engine, model_cache=cache, max_group_rows=2, groups_in_flight=3
    )
    version = await iris_version(sessionmaker)

    def keyed(index: int) -> PredictionJob:
        key = f"key-{index % 5}"
        request = PredictionRequest(
            "iris-classifier", None, None, [SETOSA], batch=False, idempotency_key=key
        )
        requester = Requester(f"keyed-{index}", "caller")
        return PredictionJob(request, requester, version, [SETOSA], request.fingerprint())

    try:
        outcomes = await asyncio.gather(
            *(pipelines.run(job(version, f"plain-{index}")) for index in range(40)),
            *(pipelines.run(keyed(index)) for index in range(20)),
        )
    finally:
        cache.close()

    plain, keyed_outcomes = outcomes[:40], outcomes[40:]
    assert [outcome.predictions[0].request_id for outcome in plain] == [
        f"plain-{index}" for index in range(40)
    ]
    by_key: dict[str, set] = {}
    for index, outcome in enumerate(keyed_outcomes):
        by_key.setdefault(f"key-{index % 5}", set()).add(outcome.predictions[0].id)
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    async with engine.connect() as connection:
        assert await connection.scalar(text("select count(*) from predictions")) == 45
        transactions = await connection.scalar(
            text("select count(distinct created_at) from predictions")
        )
    assert transactions > 1


async def test_a_group_no_partition_covers_has_them_created_then_is_stored(
    engine: AsyncEngine,
    artifact_store: ArtifactStore,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
):
    """When no partition of predictions covers now (a clock that jumped, upkeep failing for
    weeks), the pipeline has the partitions created and stores the group, answering it."""
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        now = await raw.fetchval("SELECT now()")
        covering = next(
            p
            for p in await partitions.partitions(raw)
            if (p.lower is None or p.lower <= now) and now < p.upper
        )
        lower = "MINVALUE" if covering.lower is None else f"'{covering.lower.isoformat()}'"
        await raw.execute(f"ALTER TABLE predictions DETACH PARTITION {covering.name}")
        attach = (
            f"ALTER TABLE predictions ATTACH PARTITION {covering.name} "
            f"FOR VALUES FROM ({lower}) TO ('{covering.upper.isoformat()}')"
        )
        created: list[str] = []

        async def create_partitions() -> None:
            await raw.execute(attach)
            created.append(covering.name)

        cache = ModelCache(artifact_store)
        pipelines = PredictionPipelines(
            engine=engine,
            model_cache=cache,
            max_group_rows=100,
            create_partitions=create_partitions,
        )
        try:
            outcome = await pipelines.run(job(await iris_version(sessionmaker), "after-a-gap"))
        finally:
            cache.close()
            if not created:
                await raw.execute(attach)

    assert created == [covering.name]
    assert outcome.predictions[0].request_id == "after-a-gap"
