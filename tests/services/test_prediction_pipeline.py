"""The prediction pipeline on its own: a group that PostgreSQL refuses a value of is retried
request by request, so only the request carrying the value fails."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from modelql.models.artifacts import ArtifactStore
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
