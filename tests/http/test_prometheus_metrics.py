"""GET /metrics in the Prometheus text format: requests by operation and outcome, predictions by
model and version, inference, the connection pool, the model cache and rate limiting."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support import app_client, make_settings, running_app

from modelql.metrics import PrometheusPredictionMetrics
from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode, Settings

RULES = (Path(__file__).resolve().parents[2] / "docs" / "prometheus-alert-rules.yml").read_text()
"""The example alerting rules README points Alertmanager users to."""


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (name, labels)."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_prediction_metrics_are_counted_per_model_and_version(settings: Settings):
    async with running_app(settings) as (app, http):
        before = await scrape(http)
        reporter = app.state.runtime.prediction_metrics
        assert isinstance(reporter, PrometheusPredictionMetrics)
        reporter.stored("iris-classifier", 2, 3)
        reporter.stored("iris-classifier", 1, 1)
        reporter.rejected("iris-classifier", 2, 2)
        reporter.rejected("no-such-model", None, 1)
        reporter.inference(0.004, 3)
        reporter.inference(0.2, 700)
        after = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    stored = "modelql_predictions_stored_total"
    assert delta(stored, model="iris-classifier", version="2") == 3
    assert delta(stored, model="iris-classifier", version="1") == 1
    rejected = "modelql_predictions_rejected_total"
    assert delta(rejected, model="iris-classifier", version="2") == 2
    assert delta(rejected, model="no-such-model", version="") == 1
    assert delta("modelql_inference_duration_seconds_count") == 2
    assert delta("modelql_inference_batch_size_bucket", le="5.0") == 1
    assert delta("modelql_inference_batch_size_bucket", le="1000.0") == 2


async def test_predictions_made_through_the_api_are_counted_by_the_pipeline(
    client: httpx.AsyncClient,
):
    # an input never sent before in this session: the inference cache has not scored it
    sepal = 5 + uuid.uuid4().int % 10**6 / 10**7
    features = f"{{sepal_length: {sepal}, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}"
    good = (
        f'createPrediction(input: {{model: "iris-classifier", version: 2, features: {features}}})'
    )
    bad = 'createPrediction(input: {model: "iris-classifier", version: 2, features: {x: 1}})'
    before = await scrape(client)
    for mutation in (good, good, bad):
        await client.post(
            "/graphql", json={"query": f"mutation {{ {mutation} {{ userErrors {{ code }} }} }}"}
        )
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("modelql_predictions_stored_total", model="iris-classifier", version="2") == 2
    assert delta("modelql_predictions_rejected_total", model="iris-classifier", version="2") == 1
    assert delta("modelql_inference_duration_seconds_count") == 1  # the repeat was cached
    lookups = "modelql_inference_cache_lookups_total"
    assert (delta(lookups, outcome="miss"), delta(lookups, outcome="hit")) == (1, 1)


async def test_requests_are_counted_by_operation_type_name_and_outcome(
    client: httpx.AsyncClient,
):
    name = f"Catalogue{uuid.uuid4().hex[:8]}"
    before = await scrape(client)
    await client.post(
        "/graphql", json={"query": f"query {name} {{ models {{ nodes {{ name }} }} }}"}
    )
    await client.post(
        "/graphql", json={"query": f"query {name} {{ models {{ nodes {{ name }} }} }}"}
    )
    await client.post("/graphql", json={"query": "{ nope }"})
    await client.post(
        "/graphql",
        json={
            "query": "mutation Bad { createPrediction(input: {model: 5}) { userErrors { code } } }"
        },
    )
    after = await scrape(client)

    def delta(**labels: str) -> float:
        metric = "modelql_graphql_request_duration_seconds_count"
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert delta(operation_type="query", operation_name=name, outcome="ok") == 2
    assert delta(operation_type="query", operation_name="anonymous", outcome="error") == 1
    assert delta(operation_type="mutation", operation_name="Bad", outcome="error") == 1
    assert value(after, "modelql_db_pool_connections_in_use") == 0
    assert value(after, "modelql_model_cache_versions") >= 4


async def test_client_chosen_operation_names_cannot_flood_the_labels(client: httpx.AsyncClient):
    hostile = "Q" + "x" * 100
    before = await scrape(client)
    await client.post("/graphql", json={"query": f"query {hostile} {{ __typename }}"})
    response = await client.get("/metrics")
    after = await scrape(client)
    assert hostile not in response.text
    metric = "modelql_graphql_request_duration_seconds_count"
    labels = {"operation_type": "query", "operation_name": "other", "outcome": "ok"}
    assert value(after, metric, **labels) - value(before, metric, **labels) == 1


async def test_rate_limited_requests_are_counted(
    database_url: str, data_dir: Path, demo_catalogue: None, sessionmaker
):
    async with sessionmaker.begin() as session:
        _, key = await api_keys.create(
            session,
            name=f"metrics-{uuid.uuid4().hex[:8]}",
            scopes=frozenset({Scope.READ}),
            rate_limit="1/minute",
        )
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    headers = {"Authorization": f"Bearer {key}"}
    async with app_client(settings) as http:
        before = await scrape(http)
        for _ in range(3):
            await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        after = await scrape(http)
    limited = "modelql_rate_limited_requests_total"
    assert value(after, limited) - value(before, limited) == 2
    metric = "modelql_graphql_request_duration_seconds_count"
    labels = {"operation_type": "none", "operation_name": "anonymous", "outcome": "rate_limited"}
    assert value(after, metric, **labels) - value(before, metric, **labels) == 2


async def test_a_setting_turns_metrics_off(database_url: str, data_dir: Path, demo_catalogue: None):
    settings = make_settings(database_url, data_dir, metrics=False)
    async with running_app(settings) as (app, http):
        assert (await http.get("/metrics")).status_code == 404
        assert app.state.runtime.prediction_metrics is None


async def test_the_example_alerting_rules_use_only_series_the_service_exports(settings: Settings):
    used = {re.sub(r"_bucket$", "", name) for name in re.findall(r"\bmodelql_[a-z_]+", RULES)}
    async with app_client(settings) as http:
        response = await http.get("/metrics")
    exported = {
        name
        for family in text_string_to_metric_families(response.text)
        for name in (family.name, f"{family.name}_total")
    }
    assert used and used <= exported, used - exported
