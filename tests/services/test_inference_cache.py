"""The inference cache: a row a version scored before skips the estimator, every request is still
stored, the outputs are the estimator's to the bit (so `audit verify` still matches), versions
never share entries, the bound holds, and only versions worth caching use it."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import app_client, graphql, make_settings

from modelql.models.artifacts import ArtifactStore
from modelql.models.cacheability import InferenceProfile
from modelql.runtime import inference_cache
from modelql.services.catalogue import Catalogue, Version
from modelql.services.freshness import Freshness
from modelql.services.inference import ModelCache, ScoredBatch
from modelql.services.inference_cache import (
    MIN_CALL_S,
    InferenceCache,
    row_keys,
    worth_caching,
)
from modelql.services.prediction_audit import PredictionQuery
from modelql.services.prediction_pipeline import PredictionPipelines
from modelql.services.predictions import (
    PredictionJob,
    PredictionOutcome,
    PredictionRequest,
    Requester,
)
from modelql.services.verification import Verifier

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
PREDICT = """mutation($input: CreatePredictionsInput!) {
  createPredictions(input: $input) { predictions { id } userErrors { message } } }"""


def iris(n: int) -> dict[str, float]:
    """The n-th of a family of distinct iris inputs."""
    return {
        "sepal_length": 4.5 + (n % 7) / 3,
        "sepal_width": 2.5 + (n % 5) / 4,
        "petal_length": 1.2 + (n % 11) / 2,
        "petal_width": 0.1 + n / 17,
    }


class CountingModelCache(ModelCache):
    """The model cache, counting the rows of each estimator call; `forced` profiles stand in
    for the measured ones (by version number)."""

    def __init__(
        self, store: ArtifactStore, forced: dict[int, InferenceProfile] | None = None
    ) -> None:
        super().__init__(store)
        self.calls: list[int] = []
        self._forced = forced or {}

    async def score(
        self,
        version: Version,
        rows: Sequence[dict[str, object]],
        matrix: np.ndarray | None = None,
    ) -> ScoredBatch:
        self.calls.append(len(rows))
        return await super().score(version, rows, matrix)

    async def profile(self, version: Version) -> InferenceProfile:
        await super().profile(version)
        return self._forced.get(version.number) or await super().profile(version)


async def iris_version(sessionmaker: async_sessionmaker[AsyncSession], number: int) -> Version:
    catalogue = Catalogue(Freshness(max_staleness_s=1.0, listening_since=lambda: None))
    async with sessionmaker() as session:
        route = (await catalogue.routes_by_name(session, ["iris-classifier"]))["iris-classifier"]
        version_id = route.choose(number=number, alias=None).version_id
        return (await catalogue.versions(session, [version_id]))[version_id]


def job(version: Version, instances: list[dict[str, float]], request_id: str) -> PredictionJob:
    request = PredictionRequest(
        "iris-classifier", version.number, None, instances, batch=len(instances) > 1
    )
    return PredictionJob(request, Requester(request_id, None), version, instances, None)


def outputs(outcome: PredictionOutcome) -> list[tuple[object, ...]]:
    """Each prediction's outputs, floats by their exact bits."""
    return [
        (
            p.label,
            None if p.confidence is None else p.confidence.hex(),
            [(item["label"], item["probability"].hex()) for item in p.probabilities or []],
        )
        for p in outcome.predictions
    ]


@pytest.fixture
async def forest(sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None) -> Version:
    return await iris_version(sessionmaker, 2)


@pytest.fixture
async def logistic(sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None) -> Version:
    return await iris_version(sessionmaker, 1)


async def stored_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("select count(*) from predictions")) or 0)


def test_the_rule_caches_row_wise_estimators_whose_call_is_costly():
    assert worth_caching(InferenceProfile(row_wise=True, call_s=0.004))
    assert worth_caching(InferenceProfile(row_wise=True, call_s=MIN_CALL_S))
    assert not worth_caching(InferenceProfile(row_wise=True, call_s=MIN_CALL_S / 2))
    assert not worth_caching(InferenceProfile(row_wise=True, call_s=None))
    assert not worth_caching(InferenceProfile(row_wise=False, call_s=1.0))


def test_keys_are_the_rows_as_the_estimator_sees_them_to_the_bit():
    numbers = np.array([[5.0, 1.0], [5.0, 1.0], [0.0, 1.0], [-0.0, 1.0]], dtype=np.float64)
    keys = row_keys(numbers)
    assert keys[0] == keys[1]
    assert keys[2] != keys[3]
    cells = np.array([[1.0, "red", None], [1.0, "red", None], [-0.0, "red", None]], dtype=object)
    mixed = row_keys(cells)
    assert mixed[0] == mixed[1] != mixed[2]


def test_the_bound_drops_the_least_recently_used_rows():
    cache = InferenceCache(max_rows=2)
    version = uuid.uuid4()
    row = ("setosa", None, [1.0, 0.0, 0.0], 1.0, True)
    cache.put(version, [b"a", b"b"], [row, row])
    assert cache.get(version, [b"a"]) == [row]  # a is now the most recent
    cache.put(version, [b"c"], [row])
    assert len(cache) == 2
    assert cache.get(version, [b"a", b"b", b"c"]) == [row, None, row]


def test_a_bound_of_zero_builds_no_cache(database_url: str, data_dir):
    assert inference_cache(make_settings(database_url, data_dir, inference_cache_rows=0)) is None
    assert inference_cache(make_settings(database_url, data_dir)) is not None


async def test_a_repeated_input_skips_the_estimator_and_is_still_stored(
    engine: AsyncEngine, artifact_store: ArtifactStore, forest: Version
):
    model_cache = CountingModelCache(artifact_store)
    pipelines = PredictionPipelines(
        engine=engine,
        model_cache=model_cache,
        max_group_rows=100,
        inference_cache=InferenceCache(100),
    )
    try:
        first = await pipelines.run(job(forest, [{**SETOSA, "sepal_length": 5.0}], "first"))
        second = await pipelines.run(job(forest, [{**SETOSA, "sepal_length": 5.0}], "second"))
        third = await pipelines.run(job(forest, [{**SETOSA, "sepal_length": 5}], "third"))
    finally:
        model_cache.close()

    assert model_cache.calls == [1]
    assert outputs(first) == outputs(second) == outputs(third)
    assert [first.replayed, second.replayed, third.replayed] == [False] * 3
    assert first.predictions[0].latency_ms > 0
    assert second.predictions[0].latency_ms == 0.0
    ids = {o.predictions[0].id for o in (first, second, third)}
    assert len(ids) == 3
    assert await stored_count(engine) == 3


async def test_a_group_scores_each_new_row_once_in_one_call(
    engine: AsyncEngine, artifact_store: ArtifactStore, forest: Version
):
    model_cache = CountingModelCache(artifact_store)
    pipelines = PredictionPipelines(
        engine=engine,
        model_cache=model_cache,
        max_group_rows=100,
        inference_cache=InferenceCache(100),
    )
    try:
        await pipelines.run(job(forest, [SETOSA], "warm"))
        outcomes = await asyncio.gather(
            pipelines.run(job(forest, [SETOSA], "a")),
            pipelines.run(job(forest, [VIRGINICA, SETOSA, iris(1)], "b")),
            pipelines.run(job(forest, [VIRGINICA], "c")),
            pipelines.run(job(forest, [SETOSA, SETOSA], "d")),
        )
    finally:
        model_cache.close()

    assert model_cache.calls == [1, 2]  # VIRGINICA and iris(1), once each
    assert sum(len(o.predictions) for o in outcomes) == 7
    assert await stored_count(engine) == 8


async def test_outputs_are_bit_identical_with_and_without_the_cache(
    engine: AsyncEngine, artifact_store: ArtifactStore, forest: Version
):
    """Concurrent requests, so that groups mix rows from the cache with rows scored now."""
    instances = [iris(n % 9) for n in range(40)]

    async def run(cache: InferenceCache | None, tag: str) -> tuple[list, list[int]]:
        model_cache = CountingModelCache(artifact_store)
        pipelines = PredictionPipelines(
            engine=engine, model_cache=model_cache, max_group_rows=100, inference_cache=cache
        )
        try:
            results = []
            for start in range(0, 40, 10):
                results += await asyncio.gather(
                    *(
                        pipelines.run(job(forest, [instance], f"{tag}-{start + n}"))
                        for n, instance in enumerate(instances[start : start + 10])
                    ),
                    pipelines.run(job(forest, instances[start : start + 10], f"{tag}-batch")),
                )
        finally:
            model_cache.close()
        return [outputs(outcome) for outcome in results], model_cache.calls

    cached, cached_calls = await run(InferenceCache(1000), "cached")
    uncached, uncached_calls = await run(None, "uncached")

    assert cached == uncached
    assert sum(cached_calls) == 9  # nine distinct inputs
    assert sum(uncached_calls) == 80
    assert await stored_count(engine) == 160


async def test_versions_never_share_entries(
    engine: AsyncEngine, artifact_store: ArtifactStore, forest: Version, logistic: Version
):
    costly = InferenceProfile(row_wise=True, call_s=1.0)
    model_cache = CountingModelCache(artifact_store, forced={1: costly, 2: costly})
    cache = InferenceCache(100)
    pipelines = PredictionPipelines(
        engine=engine, model_cache=model_cache, max_group_rows=100, inference_cache=cache
    )
    try:
        on_forest = await pipelines.run(job(forest, [VIRGINICA], "forest"))
        on_logistic = await pipelines.run(job(logistic, [VIRGINICA], "logistic"))
        again = [
            await pipelines.run(job(version, [VIRGINICA], f"again-{version.number}"))
            for version in (forest, logistic)
        ]
    finally:
        model_cache.close()

    assert model_cache.calls == [1, 1]
    assert len(cache) == 2
    assert outputs(on_forest) != outputs(on_logistic)
    assert [outputs(o) for o in again] == [outputs(on_forest), outputs(on_logistic)]


async def test_the_bound_holds_and_an_evicted_row_is_scored_again(
    engine: AsyncEngine, artifact_store: ArtifactStore, forest: Version
):
    model_cache = CountingModelCache(artifact_store)
    cache = InferenceCache(max_rows=3)
    pipelines = PredictionPipelines(
        engine=engine, model_cache=model_cache, max_group_rows=100, inference_cache=cache
    )
    try:
        for n in range(6):
            await pipelines.run(job(forest, [iris(n)], f"r{n}"))
        assert len(cache) == 3
        await pipelines.run(job(forest, [iris(5)], "kept"))
        await pipelines.run(job(forest, [iris(0)], "evicted"))
    finally:
        model_cache.close()
    assert model_cache.calls == [1] * 6 + [1]
    assert len(cache) == 3


async def test_a_version_not_worth_caching_calls_the_estimator_every_time(
    engine: AsyncEngine, artifact_store: ArtifactStore, logistic: Version
):
    model_cache = CountingModelCache(artifact_store)
    cache = InferenceCache(100)
    pipelines = PredictionPipelines(
        engine=engine, model_cache=model_cache, max_group_rows=100, inference_cache=cache
    )
    try:
        for n in range(3):
            await pipelines.run(job(logistic, [SETOSA], f"r{n}"))
        profile = await model_cache.profile(logistic)
    finally:
        model_cache.close()
    assert not profile.row_wise
    assert model_cache.calls == [1, 1, 1]
    assert len(cache) == 0


def metric(exposition: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def counters(http: httpx.AsyncClient) -> dict[str, float]:
    exposition = (await http.get("/metrics")).text
    names = {
        "hit": 'modelql_inference_cache_lookups_total{outcome="hit"}',
        "miss": 'modelql_inference_cache_lookups_total{outcome="miss"}',
        "rows": "modelql_inference_cache_rows",
        "calls": "modelql_inference_batch_size_count",
    }
    return {key: metric(exposition, name) for key, name in names.items()}


async def predict(http: httpx.AsyncClient, instances: list[dict[str, float]]) -> None:
    body = await graphql(
        http,
        PREDICT,
        {"input": {"model": "iris-classifier", "version": 2, "instances": instances}},
    )
    assert body["data"]["createPredictions"]["userErrors"] == [], body


async def test_hits_and_misses_are_on_metrics_and_verify_still_matches(
    settings, demo_catalogue: None, sessionmaker, artifact_store: ArtifactStore, engine
):
    """Traffic where rows scored in a batch come back alone, a row scored alone comes back
    in a group, and groups mix cached rows with new ones; then `audit verify`, which re-scores
    each group commit as one batch: every stored output matches. (A logistic regression
    served this way fails: its rows scored alone and in a batch differ in the last bit.)"""
    async with app_client(settings) as http:
        before = await counters(http)
        await predict(http, [iris(n) for n in range(6)])
        await predict(http, [iris(40)])
        for n in range(6):
            await predict(http, [iris(n)])
        await asyncio.gather(
            *(predict(http, [iris(n % 10)]) for n in range(20)),
            predict(http, [iris(n) for n in range(3, 12)]),
            predict(http, [iris(2), iris(2), iris(40)]),
        )
        after = await counters(http)

    assert after["hit"] - before["hit"] >= 6 + 6
    assert after["miss"] - before["miss"] >= 6 + 1 + 6
    assert after["rows"] >= 13
    assert await stored_count(engine) == 6 + 1 + 6 + 20 + 9 + 3
    report = await Verifier(
        sessionmaker=sessionmaker,
        catalogue=Catalogue(Freshness.never()),
        model_cache=ModelCache(artifact_store),
    ).verify(PredictionQuery())
    assert sum(t.checked for t in report.tallies.values()) == 45
    assert report.passed, report.mismatches


async def test_a_bound_of_zero_scores_every_request(
    database_url: str, data_dir, demo_catalogue: None
):
    settings = make_settings(database_url, data_dir, inference_cache_rows=0)
    async with app_client(settings) as http:
        before = await counters(http)
        for _ in range(3):
            await predict(http, [SETOSA])
        after = await counters(http)
    assert after["calls"] - before["calls"] == 3
    assert after["hit"] == before["hit"] and after["miss"] == before["miss"]
