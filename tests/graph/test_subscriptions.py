"""Subscriptions over graphql-transport-ws on a real socket: predictions as they commit (one
message per commit), catalogue events, and what ends a subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from live_support import Served, Subscriptions, served
from sklearn.dummy import DummyClassifier
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import make_settings

from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services import registration

PREDICTIONS = """subscription($filter: PredictionFilter) {
  predictionsCreated(filter: $filter) { id label requestId modelVersion { number model { name } } } }"""
CATALOGUE = """subscription($model: String) {
  catalogueEvents(model: $model) { kind alias at model { name } version { number aliases } } }"""
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PREDICT_MANY = """mutation($model: String!, $instances: [JSON!]!) {
  createPredictions(input: {model: $model, instances: $instances}) {
    predictions { id } userErrors { code } } }"""
DIABETES = dict.fromkeys(["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"], 0.01)


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    async with served(make_settings(database_url, data_dir)) as running:
        yield running


async def predict(base_url: str, model: str, instances: list[dict], request_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            "/graphql",
            json={"query": PREDICT_MANY, "variables": {"model": model, "instances": instances}},
            headers={"X-Request-ID": request_id},
        )
    payload = response.json()["data"]["createPredictions"]
    assert payload["userErrors"] == [], payload
    return [prediction["id"] for prediction in payload["predictions"]]


async def next_payload(connection: Subscriptions, operation: str) -> dict:
    message = await connection.receive()
    assert message["type"] == "next" and message["id"] == operation, message
    return message["payload"]


async def no_message(connection: Subscriptions, within: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await connection.receive(within=within)


async def test_each_commit_arrives_as_one_message_with_its_matching_predictions(server: Served):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(
            PREDICTIONS, {"filter": {"model": "iris-classifier"}}
        )
        await asyncio.sleep(0.3)

        ids = await predict(server.url, "iris-classifier", [IRIS, IRIS, IRIS], "batch-1")
        await predict(server.url, "diabetes-regressor", [DIABETES], "other-model")

        payload = await next_payload(connection, operation)
        predictions = payload["data"]["predictionsCreated"]
        assert [prediction["id"] for prediction in predictions] == ids
        assert {prediction["requestId"] for prediction in predictions} == {"batch-1"}
        assert predictions[0]["modelVersion"]["model"]["name"] == "iris-classifier"
        await no_message(connection)
        runtime = server.app.state.runtime
        assert runtime.engine.pool.checkedout() == 0, "an open subscription holds a connection"


async def test_a_filter_on_label_and_confidence_keeps_only_matching_predictions(server: Served):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(
            PREDICTIONS, {"filter": {"label": "virginica", "requestId": "labels"}}
        )
        await asyncio.sleep(0.3)
        virginica = {**IRIS, "petal_length": 6.0, "petal_width": 2.4, "sepal_length": 7.0}
        ids = await predict(server.url, "iris-classifier", [IRIS, virginica], "labels")

        predictions = (await next_payload(connection, operation))["data"]["predictionsCreated"]
        assert [(p["id"], p["label"]) for p in predictions] == [(ids[1], "virginica")]


async def test_catalogue_events_report_registrations_and_alias_moves(
    server: Served,
    sessionmaker: async_sessionmaker[AsyncSession],
    artifact_store: ArtifactStore,
):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(CATALOGUE, {"model": "live-feed-dummy"})
        await asyncio.sleep(0.3)

        async with sessionmaker.begin() as session:
            await registration.register_version(
                session,
                artifact_store,
                registration.VersionRegistration(
                    model_name="live-feed-dummy",
                    task="CLASSIFICATION",
                    algorithm="sklearn.dummy.DummyClassifier",
                    framework_version="1",
                    signature=[FeatureSpec(name="x", type=FeatureType.NUMBER)],
                    labels=["a", "b"],
                    aliases=["staging"],
                ),
                estimator=DummyClassifier().fit([[0.0], [1.0]], ["a", "b"]),
            )
        registered = (await next_payload(connection, operation))["data"]["catalogueEvents"]
        moved = (await next_payload(connection, operation))["data"]["catalogueEvents"]
        assert registered["kind"] == "VERSION_REGISTERED"
        assert registered["alias"] is None
        assert registered["model"]["name"] == "live-feed-dummy"
        assert registered["version"]["number"] == 1
        assert moved["kind"] == "ALIAS_MOVED"
        assert moved["alias"] == "staging"
        assert moved["version"] == {"number": 1, "aliases": ["staging"]}

        async with sessionmaker.begin() as session:
            await registration.set_alias(
                session, model_name="live-feed-dummy", alias="production", number=1
            )
        again = (await next_payload(connection, operation))["data"]["catalogueEvents"]
        assert (again["kind"], again["alias"]) == ("ALIAS_MOVED", "production")
        assert sorted(again["version"]["aliases"]) == ["production", "staging"]

        async with sessionmaker.begin() as session:
            await registration.set_alias(
                session, model_name="iris-classifier", alias="canary", number=1
            )
        await no_message(connection)


async def test_completing_a_subscription_frees_it_and_the_feed_goes_idle(server: Served):
    feeds = server.feeds
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        first = await connection.subscribe(PREDICTIONS)
        second = await connection.subscribe(CATALOGUE)
        await asyncio.sleep(0.3)
        assert len(feeds.subscriptions) == 2
        assert feeds.predictions.subscribers == 1

        await connection.complete(first)
        await asyncio.sleep(0.3)
        assert feeds.predictions.subscribers == 0
        assert not feeds.predictions.running
        assert len(feeds.subscriptions) == 1

        await predict(server.url, "iris-classifier", [IRIS], "after-complete")
        await no_message(connection)
        await connection.complete(second)
    await asyncio.sleep(0.3)
    assert len(feeds.subscriptions) == 0
    assert not feeds.catalogue.running


async def test_closing_the_socket_frees_its_subscriptions(server: Served):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        await connection.subscribe(PREDICTIONS)
        await connection.subscribe(PREDICTIONS, {"filter": {"model": "diabetes-regressor"}})
        await asyncio.sleep(0.3)
        assert server.feeds.predictions.subscribers == 2
    await asyncio.sleep(0.3)
    assert server.feeds.predictions.subscribers == 0
    assert len(server.feeds.subscriptions) == 0


async def test_a_document_that_does_not_validate_gets_an_error_message(server: Served):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe("subscription { predictionsCreated { nope } }")

        answer = await connection.receive()

    assert (answer["type"], answer["id"]) == ("error", operation), answer
    assert "Cannot query field 'nope'" in answer["payload"][0]["message"]


async def test_a_document_that_does_not_parse_closes_the_socket_saying_why(server: Served):
    """graphql-transport-ws: a subscribe message the server cannot parse is a protocol error
    (4400), with the syntax error as the reason, rather than a silent `complete`."""
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        await connection.subscribe("subscription { predictionsCreated {")

        messages, close = await connection.until_closed()

    assert messages == []
    assert close.code == 4400
    assert close.reason.startswith("Syntax Error")
