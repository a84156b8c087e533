"""createPrediction / createPredictions: scoring, validation, idempotency and transport, as a
client of the API sees them, checked against what PostgreSQL actually stores."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import app_client, graphql, make_settings

IRIS = "iris-classifier"
IRIS_LABELS = ["setosa", "versicolor", "virginica"]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}
DEMO_MODELS = [
    "iris-classifier",
    "wine-classifier",
    "breast-cancer-classifier",
    "diabetes-regressor",
]

PREDICTION_FIELDS = """
fragment PredictionFields on Prediction {
  id inputs label value probabilities { label probability } confidence latencyMs createdAt
  requestId caller idempotencyKey
  modelVersion { id number labels model { name task } }
}
"""
CREATE = (
    """mutation Create($input: CreatePredictionInput!) {
  createPrediction(input: $input) {
    prediction { ...PredictionFields }
    userErrors { field code message }
  }
}"""
    + PREDICTION_FIELDS
)
CREATE_MANY = (
    """mutation CreateMany($input: CreatePredictionsInput!) {
  createPredictions(input: $input) {
    predictions { ...PredictionFields }
    userErrors { field code message }
  }
}"""
    + PREDICTION_FIELDS
)
LOOKUP = (
    """query Lookup($id: ID!) {
  prediction(id: $id) { ...PredictionFields }
  node(id: $id) { id ... on Prediction { ...PredictionFields } }
}"""
    + PREDICTION_FIELDS
)


async def stored_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("select count(*) from predictions"))


async def create(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **input: Any
) -> dict:
    """The createPrediction payload; asserts the response has no GraphQL errors."""
    body = await graphql(http, CREATE, {"input": input}, headers)
    assert "errors" not in body, body
    return body["data"]["createPrediction"]


async def create_many(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **input: Any
) -> dict:
    body = await graphql(http, CREATE_MANY, {"input": input}, headers)
    assert "errors" not in body, body
    return body["data"]["createPredictions"]


async def midpoint_features(http: httpx.AsyncClient, model: str) -> dict[str, float]:
    """A valid instance for the model's default version: the middle of each training range."""
    body = await graphql(
        http,
        """query($m: String!) { modelVersion(model: $m) {
             inputSchema { name type required minimum maximum } } }""",
        {"m": model},
    )
    schema = body["data"]["modelVersion"]["inputSchema"]
    assert schema and all(spec["type"] in ("NUMBER", "INTEGER") for spec in schema)
    features: dict[str, float] = {}
    for spec in schema:
        middle = (spec["minimum"] + spec["maximum"]) / 2
        features[spec["name"]] = round(middle) if spec["type"] == "INTEGER" else middle
    return features


def only_error(payload: dict) -> dict:
    assert payload.get("prediction") is None and payload.get("predictions") in (None, [])
    assert len(payload["userErrors"]) == 1, payload["userErrors"]
    return payload["userErrors"][0]


# --- scoring and reading back -------------------------------------------------------------


@pytest.mark.parametrize("model", DEMO_MODELS)
async def test_each_demo_model_scores_stores_and_reads_back(
    client: httpx.AsyncClient, engine: AsyncEngine, model: str
):
    features = await midpoint_features(client, model)
    before = await stored_count(engine)

    payload = await create(client, model=model, features=features)

    assert payload["userErrors"] == []
    prediction = payload["prediction"]
    assert await stored_count(engine) == before + 1
    assert prediction["inputs"] == features
    assert prediction["modelVersion"]["model"]["name"] == model
    assert prediction["modelVersion"]["number"] == 1
    assert prediction["latencyMs"] >= 0
    assert prediction["caller"] is None
    assert prediction["idempotencyKey"] is None
    if prediction["modelVersion"]["model"]["task"] == "CLASSIFICATION":
        labels = prediction["modelVersion"]["labels"]
        probabilities = prediction["probabilities"]
        assert [item["label"] for item in probabilities] == labels
        assert prediction["label"] in labels
        assert prediction["value"] is None
        assert prediction["confidence"] == max(item["probability"] for item in probabilities)
        assert sum(item["probability"] for item in probabilities) == pytest.approx(1.0)
    else:
        assert isinstance(prediction["value"], float) and math.isfinite(prediction["value"])
        assert prediction["label"] is None
        assert prediction["probabilities"] is None
        assert prediction["confidence"] is None

    looked_up = await graphql(client, LOOKUP, {"id": prediction["id"]})
    assert "errors" not in looked_up
    assert looked_up["data"]["prediction"] == prediction
    assert looked_up["data"]["node"] == prediction

    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "select p.inputs, p.label, p.value, m.name, v.number from predictions p "
                    "join model_versions v on v.id = p.model_version_id "
                    "join models m on m.id = p.model_id order by p.created_at desc limit 1"
                )
            )
        ).one()
    assert row.inputs == features
    assert (row.label, row.value) == (prediction["label"], prediction["value"])
    assert (row.name, row.number) == (model, 1)


@pytest.mark.parametrize(
    ("selection", "number"),
    [
        ({}, 1),
        ({"version": 1}, 1),
        ({"alias": "production"}, 1),
        ({"version": 2}, 2),
        ({"alias": "challenger"}, 2),
        ({"version": 2, "alias": "challenger"}, 2),
    ],
)
async def test_textbook_setosa_with_the_version_asked_for(
    client: httpx.AsyncClient, engine: AsyncEngine, selection: dict, number: int
):
    payload = await create(client, model=IRIS, features=SETOSA, **selection)

    assert payload["userErrors"] == []
    prediction = payload["prediction"]
    assert prediction["label"] == "setosa"
    assert prediction["modelVersion"]["number"] == number
    assert [p["label"] for p in prediction["probabilities"]] == IRIS_LABELS
    probabilities = [p["probability"] for p in prediction["probabilities"]]
    assert sum(probabilities) == pytest.approx(1.0)
    assert prediction["confidence"] == max(probabilities) == probabilities[0]
    async with engine.connect() as connection:
        stored_number = await connection.scalar(
            text(
                "select v.number from predictions p "
                "join model_versions v on v.id = p.model_version_id"
            )
        )
    assert stored_number == number


async def test_batch_scores_every_instance_in_order(client: httpx.AsyncClient, engine: AsyncEngine):
    payload = await create_many(client, model=IRIS, instances=[SETOSA, VIRGINICA, SETOSA])

    assert payload["userErrors"] == []
    assert [p["label"] for p in payload["predictions"]] == ["setosa", "virginica", "setosa"]
    assert [p["inputs"] for p in payload["predictions"]] == [SETOSA, VIRGINICA, SETOSA]
    assert len({p["id"] for p in payload["predictions"]}) == 3
    assert await stored_count(engine) == 3


async def test_values_outside_the_training_range_are_scored(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    extreme = {"sepal_length": -5.0, "sepal_width": 100, "petal_length": 250.5, "petal_width": 0}

    payload = await create(client, model=IRIS, features=extreme)

    assert payload["userErrors"] == []
    assert payload["prediction"]["label"] in IRIS_LABELS
    assert payload["prediction"]["inputs"] == extreme
    assert await stored_count(engine) == 1


async def test_unknown_prediction_ids_resolve_to_null(client: httpx.AsyncClient):
    global_id = base64.urlsafe_b64encode(f"Prediction:{uuid.uuid4()}".encode()).decode()
    body = await graphql(
        client,
        "query($id: ID!) { prediction(id: $id) { id } node(id: $id) { id } }",
        {"id": global_id},
    )
    assert "errors" not in body
    assert body["data"] == {"prediction": None, "node": None}


# --- user errors ----------------------------------------------------------------------------


def _without(name: str) -> dict:
    return {key: value for key, value in SETOSA.items() if key != name}


BAD_SINGLE_INPUTS = [
    pytest.param(
        {"model": "no-such-model", "features": SETOSA},
        "MODEL_NOT_FOUND",
        ["model"],
        ["no-such-model"],
        id="unknown-model",
    ),
    pytest.param(
        {"model": IRIS, "version": 99, "features": SETOSA},
        "VERSION_NOT_FOUND",
        ["version"],
        ["99"],
        id="unknown-version",
    ),
    pytest.param(
        {"model": IRIS, "alias": "staging", "features": SETOSA},
        "VERSION_NOT_FOUND",
        ["alias"],
        ["staging"],
        id="unknown-alias",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_colour": 3}},
        "INVALID_FEATURES",
        ["features", "petal_colour"],
        ["petal_colour", "petal_length"],
        id="unknown-feature",
    ),
    pytest.param(
        {"model": IRIS, "features": _without("petal_width")},
        "INVALID_FEATURES",
        ["features", "petal_width"],
        ["petal_width", "number"],
        id="missing-feature",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_length": "1.4"}},
        "INVALID_FEATURES",
        ["features", "petal_length"],
        ["petal_length", "number", "string"],
        id="string-for-number",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_length": True}},
        "INVALID_FEATURES",
        ["features", "petal_length"],
        ["petal_length", "number", "boolean"],
        id="boolean-for-number",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_length": None}},
        "INVALID_FEATURES",
        ["features", "petal_length"],
        ["petal_length", "number", "null"],
        id="null-value",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_length": [1.4]}},
        "INVALID_FEATURES",
        ["features", "petal_length"],
        ["petal_length", "number"],
        id="list-for-number",
    ),
    pytest.param(
        {"model": IRIS, "features": {**SETOSA, "petal_length": {"cm": 1.4}}},
        "INVALID_FEATURES",
        ["features", "petal_length"],
        ["petal_length", "number"],
        id="object-for-number",
    ),
    pytest.param(
        {"model": IRIS, "features": list(SETOSA.values())},
        "INVALID_FEATURES",
        ["features"],
        ["object", "sepal_length"],
        id="features-list",
    ),
    pytest.param(
        {"model": IRIS, "features": 5.1},
        "INVALID_FEATURES",
        ["features"],
        ["object", "sepal_length"],
        id="features-number",
    ),
    pytest.param(
        {"model": IRIS, "features": "sepal_length=5.1"},
        "INVALID_FEATURES",
        ["features"],
        ["object", "sepal_length"],
        id="features-string",
    ),
]


@pytest.mark.parametrize(("input", "code", "field", "mentions"), BAD_SINGLE_INPUTS)
async def test_bad_single_input_is_a_user_error_and_stores_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    input: dict,
    code: str,
    field: list[str],
    mentions: list[str],
):
    before = await stored_count(engine)

    body = await graphql(client, CREATE, {"input": input})

    assert "errors" not in body, body
    error = only_error(body["data"]["createPrediction"])
    assert error["code"] == code
    assert error["field"] == field
    for mention in mentions:
        assert mention in error["message"], error["message"]
    assert await stored_count(engine) == before


async def test_version_and_alias_that_disagree_are_version_not_found(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    payload = await create(client, model=IRIS, version=1, alias="challenger", features=SETOSA)

    error = only_error(payload)
    assert error["code"] == "VERSION_NOT_FOUND"
    assert error["field"] in (["version"], ["alias"])
    assert "challenger" in error["message"]
    assert await stored_count(engine) == 0


def raw_body(input_json: str, *, batch: bool = False) -> str:
    """A request body whose variables are written by hand (NaN, Infinity, 1e999 included)."""
    query = CREATE_MANY if batch else CREATE
    return f'{{"query": {json.dumps(query)}, "variables": {{"input": {input_json}}}}}'


@pytest.mark.parametrize(
    "literal",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        pytest.param("1" + "0" * 400, id="huge-integer"),
    ],
)
async def test_non_finite_numbers_are_invalid_features(
    client: httpx.AsyncClient, engine: AsyncEngine, literal: str
):
    features = f'{{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": {literal}, "petal_width": 0.2}}'
    response = await client.post(
        "/graphql",
        content=raw_body(f'{{"model": "iris-classifier", "features": {features}}}'),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    error = only_error(body["data"]["createPrediction"])
    assert error["code"] == "INVALID_FEATURES"
    assert error["field"] == ["features", "petal_length"]
    assert "petal_length" in error["message"] and "finite" in error["message"]
    assert await stored_count(engine) == 0


async def test_non_finite_number_in_a_batch_is_reported_at_its_instance(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    good = json.dumps(SETOSA)
    bad = '{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
    response = await client.post(
        "/graphql",
        content=raw_body(
            f'{{"model": "iris-classifier", "instances": [{good}, {bad}]}}', batch=True
        ),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200, response.text
    payload = response.json()["data"]["createPredictions"]
    error = only_error(payload)
    assert error["code"] == "INVALID_FEATURES"
    assert error["field"] == ["instances", "1", "sepal_length"]
    assert await stored_count(engine) == 0


async def test_a_batch_with_one_bad_instance_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    instances = [SETOSA, VIRGINICA, {**SETOSA, "petal_length": "long"}, SETOSA]

    payload = await create_many(client, model=IRIS, instances=instances)

    assert payload["predictions"] == []
    error = only_error(payload)
    assert error["code"] == "INVALID_FEATURES"
    assert error["field"] == ["instances", "2", "petal_length"]
    assert "petal_length" in error["message"] and "number" in error["message"]
    assert await stored_count(engine) == 0


async def test_every_problem_of_a_request_is_reported_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    single = await create(
        client,
        model=IRIS,
        features={"sepal_length": "5.1", "sepal_width": 3.5, "petal_length": None, "colour": 1},
    )
    batch = await create_many(
        client,
        model=IRIS,
        instances=[
            {**SETOSA, "sepal_width": False},
            SETOSA,
            [1, 2, 3, 4],
            _without("sepal_length"),
        ],
    )

    assert single["prediction"] is None
    assert {tuple(e["field"]) for e in single["userErrors"]} == {
        ("features", "sepal_length"),
        ("features", "petal_length"),
        ("features", "petal_width"),
        ("features", "colour"),
    }
    assert {e["code"] for e in single["userErrors"]} == {"INVALID_FEATURES"}
    for error in single["userErrors"]:
        assert error["field"][-1] in error["message"]
    assert batch["predictions"] == []
    assert {tuple(e["field"]) for e in batch["userErrors"]} == {
        ("instances", "0", "sepal_width"),
        ("instances", "2"),
        ("instances", "3", "sepal_length"),
    }
    assert await stored_count(engine) == 0


async def test_unknown_model_in_a_batch_names_the_model(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    payload = await create_many(client, model="no-such-model", instances=[SETOSA])

    error = only_error(payload)
    assert (error["code"], error["field"]) == ("MODEL_NOT_FOUND", ["model"])
    assert await stored_count(engine) == 0


async def test_an_empty_batch_is_a_user_error(client: httpx.AsyncClient, engine: AsyncEngine):
    payload = await create_many(client, model=IRIS, instances=[])

    error = only_error(payload)
    assert error["code"] == "INVALID_FEATURES"
    assert error["field"] == ["instances"]
    assert await stored_count(engine) == 0


async def test_batch_size_limit(
    database_url: str, data_dir: Path, demo_catalogue: None, engine: AsyncEngine
):
    async with app_client(make_settings(database_url, data_dir, max_batch_size=3)) as http:
        too_many = await create_many(http, model=IRIS, instances=[SETOSA] * 4)
        assert await stored_count(engine) == 0
        at_limit = await create_many(http, model=IRIS, instances=[SETOSA] * 3)

    error = only_error(too_many)
    assert error["code"] == "BATCH_TOO_LARGE"
    assert error["field"] == ["instances"]
    assert "3" in error["message"] and "4" in error["message"]
    assert at_limit["userErrors"] == []
    assert len(at_limit["predictions"]) == 3
    assert await stored_count(engine) == 3


async def test_graphql_level_mistakes_are_coded_errors_not_500s(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    missing_features = await graphql(
        client,
        'mutation { createPrediction(input: {model: "iris-classifier"}) { prediction { id } } }',
    )
    unknown_field = await graphql(
        client,
        """mutation { createPrediction(input: {model: "iris-classifier", features: {}}) {
             prediction { id colour } } }""",
    )
    empty_key = await graphql(
        client, CREATE, {"input": {"model": IRIS, "features": SETOSA, "idempotencyKey": ""}}
    )

    assert missing_features["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert unknown_field["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert empty_key["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "idempotencyKey" in empty_key["errors"][0]["message"]
    assert await stored_count(engine) == 0


WRONG_VARIABLE_TYPES = [
    pytest.param({"model": IRIS, "version": "two", "features": SETOSA}, id="string-version"),
    pytest.param({"model": IRIS, "version": 1.5, "features": SETOSA}, id="float-version"),
    pytest.param({"model": IRIS, "features": None}, id="null-features"),
    pytest.param({"features": SETOSA}, id="missing-model"),
    pytest.param({"model": IRIS, "features": SETOSA, "colour": 1}, id="unknown-input-field"),
]


@pytest.mark.parametrize("input", WRONG_VARIABLE_TYPES)
async def test_wrong_variable_types_are_errors_not_500s(
    client: httpx.AsyncClient, engine: AsyncEngine, input: dict
):
    body = await graphql(client, CREATE, {"input": input})

    assert body["data"] is None
    assert body["errors"] and "$input" in body["errors"][0]["message"]
    assert body["errors"][0].get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"
    assert await stored_count(engine) == 0


@pytest.mark.parametrize("input", WRONG_VARIABLE_TYPES)
async def test_wrong_variable_types_carry_an_error_code(client: httpx.AsyncClient, input: dict):
    body = await graphql(client, CREATE, {"input": input})

    assert body["errors"][0]["extensions"]["code"] in (
        "BAD_USER_INPUT",
        "GRAPHQL_VALIDATION_FAILED",
    )


# --- idempotency ----------------------------------------------------------------------------


async def test_same_key_same_input_replays_the_stored_prediction(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    first = await create(client, model=IRIS, features=SETOSA, idempotencyKey="order-17")
    reordered = dict(reversed(list(SETOSA.items())))
    again = await create(
        client,
        {"X-Request-ID": "retry-1"},
        model=IRIS,
        features=reordered,
        idempotencyKey="order-17",
    )

    assert first["userErrors"] == [] == again["userErrors"]
    assert again["prediction"] == first["prediction"]
    assert first["prediction"]["idempotencyKey"] == "order-17"
    assert await stored_count(engine) == 1


async def test_same_key_different_input_is_a_conflict(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    first = await create(client, model=IRIS, features=SETOSA, idempotencyKey="order-18")
    other_features = await create(client, model=IRIS, features=VIRGINICA, idempotencyKey="order-18")
    other_version = await create(
        client, model=IRIS, version=2, features=SETOSA, idempotencyKey="order-18"
    )
    as_batch = await create_many(client, model=IRIS, instances=[SETOSA], idempotencyKey="order-18")

    assert first["prediction"] is not None
    for payload in (other_features, other_version, as_batch):
        error = only_error(payload)
        assert error["code"] == "IDEMPOTENCY_CONFLICT"
        assert error["field"] == ["idempotencyKey"]
        assert "order-18" in error["message"]
    assert await stored_count(engine) == 1
    replay = await create(client, model=IRIS, features=SETOSA, idempotencyKey="order-18")
    assert replay["prediction"]["id"] == first["prediction"]["id"]


async def test_batches_replay_in_order(client: httpx.AsyncClient, engine: AsyncEngine):
    instances = [VIRGINICA, SETOSA, VIRGINICA, SETOSA, SETOSA]
    first = await create_many(client, model=IRIS, instances=instances, idempotencyKey="batch-1")
    again = await create_many(client, model=IRIS, instances=instances, idempotencyKey="batch-1")
    changed = await create_many(
        client, model=IRIS, instances=instances[:-1], idempotencyKey="batch-1"
    )

    assert [p["id"] for p in again["predictions"]] == [p["id"] for p in first["predictions"]]
    assert again["predictions"] == first["predictions"]
    assert [p["inputs"] for p in again["predictions"]] == instances
    assert only_error(changed)["code"] == "IDEMPOTENCY_CONFLICT"
    assert await stored_count(engine) == 5


async def test_different_keys_store_separately(client: httpx.AsyncClient, engine: AsyncEngine):
    one = await create(client, model=IRIS, features=SETOSA, idempotencyKey="k-1")
    two = await create(client, model=IRIS, features=SETOSA, idempotencyKey="k-2")
    keyless = [await create(client, model=IRIS, features=SETOSA) for _ in range(2)]

    ids = {one["prediction"]["id"], two["prediction"]["id"]} | {
        p["prediction"]["id"] for p in keyless
    }
    assert len(ids) == 4
    assert await stored_count(engine) == 4


async def test_a_bad_request_does_not_claim_its_key(client: httpx.AsyncClient, engine: AsyncEngine):
    bad = await create(
        client, model=IRIS, features={**SETOSA, "petal_length": "x"}, idempotencyKey="k-bad"
    )
    good = await create(client, model=IRIS, features=SETOSA, idempotencyKey="k-bad")

    assert only_error(bad)["code"] == "INVALID_FEATURES"
    assert good["userErrors"] == [] and good["prediction"] is not None
    assert await stored_count(engine) == 1


async def test_concurrent_requests_with_one_key_store_one_prediction(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    async def attempt(index: int) -> dict:
        return await create(
            client,
            {"X-Request-ID": f"race-{index}"},
            model=IRIS,
            features=SETOSA,
            idempotencyKey="race-key",
        )

    payloads = await asyncio.gather(*(attempt(index) for index in range(20)))

    assert all(payload["userErrors"] == [] for payload in payloads), payloads
    ids = {payload["prediction"]["id"] for payload in payloads}
    assert len(ids) == 1
    assert await stored_count(engine) == 1
    async with engine.connect() as connection:
        records = await connection.scalar(text("select count(*) from idempotency_records"))
    assert records == 1


async def test_concurrent_batches_with_one_key_store_one_batch(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    instances = [SETOSA, VIRGINICA, SETOSA]
    payloads = await asyncio.gather(
        *(
            create_many(client, model=IRIS, instances=instances, idempotencyKey="race-batch")
            for _ in range(10)
        )
    )

    assert all(payload["userErrors"] == [] for payload in payloads), payloads
    assert len({tuple(p["id"] for p in payload["predictions"]) for payload in payloads}) == 1
    assert await stored_count(engine) == 3


async def test_300_concurrent_predictions_are_all_stored(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    before = await stored_count(engine)
    gate = asyncio.Semaphore(50)

    async def one(index: int) -> dict:
        features = {**SETOSA, "petal_length": 1.0 + index / 100}
        async with gate:
            return await create(client, model=IRIS, features=features)

    payloads = await asyncio.gather(*(one(index) for index in range(300)))

    assert all(payload["userErrors"] == [] for payload in payloads)
    assert len({payload["prediction"]["id"] for payload in payloads}) == 300
    assert await stored_count(engine) == before + 300


# --- request ids ----------------------------------------------------------------------------


async def test_request_id_is_echoed_and_stored(client: httpx.AsyncClient, engine: AsyncEngine):
    single = await client.post(
        "/graphql",
        json={"query": CREATE, "variables": {"input": {"model": IRIS, "features": SETOSA}}},
        headers={"X-Request-ID": "my-request-1"},
    )
    batch = await client.post(
        "/graphql",
        json={
            "query": CREATE_MANY,
            "variables": {"input": {"model": IRIS, "instances": [SETOSA, VIRGINICA]}},
        },
        headers={"X-Request-ID": "my-request-2"},
    )

    assert single.headers["x-request-id"] == "my-request-1"
    assert single.json()["data"]["createPrediction"]["prediction"]["requestId"] == "my-request-1"
    assert batch.headers["x-request-id"] == "my-request-2"
    assert [p["requestId"] for p in batch.json()["data"]["createPredictions"]["predictions"]] == [
        "my-request-2",
        "my-request-2",
    ]
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                text("select request_id, count(*) from predictions group by 1 order by 1")
            )
        ).all()
    assert [tuple(row) for row in stored] == [("my-request-1", 1), ("my-request-2", 2)]


@pytest.mark.parametrize("given", [None, "", "has spaces and ünïcode", "x" * 201])
async def test_a_request_id_is_generated_when_missing_or_unusable(
    client: httpx.AsyncClient, engine: AsyncEngine, given: str | None
):
    headers = {} if given is None else {"X-Request-ID": given}
    response = await client.post(
        "/graphql",
        json={"query": CREATE, "variables": {"input": {"model": IRIS, "features": SETOSA}}},
        headers={key: value.encode() for key, value in headers.items()},
    )

    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert str(uuid.UUID(echoed)) == echoed
    assert response.json()["data"]["createPrediction"]["prediction"]["requestId"] == echoed
    async with engine.connect() as connection:
        stored = await connection.scalar(text("select request_id from predictions"))
    assert stored == echoed


async def test_request_ids_differ_between_requests(client: httpx.AsyncClient, engine: AsyncEngine):
    first = await create(client, model=IRIS, features=SETOSA)
    second = await create(client, model=IRIS, features=SETOSA)

    assert first["prediction"]["requestId"] != second["prediction"]["requestId"]


# --- transport ------------------------------------------------------------------------------


async def test_oversized_bodies_are_refused_with_413(
    database_url: str, data_dir: Path, demo_catalogue: None, engine: AsyncEngine
):
    padding = "#" + "x" * 3000 + "\n"
    big = json.dumps(
        {"query": padding + CREATE, "variables": {"input": {"model": IRIS, "features": SETOSA}}}
    ).encode()
    assert len(big) > 2048

    async def streamed():
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    small_query = """mutation($input: CreatePredictionInput!) {
      createPrediction(input: $input) { prediction { id } userErrors { code } } }"""
    async with app_client(make_settings(database_url, data_dir, max_body_bytes=2048)) as http:
        declared = await http.post(
            "/graphql", content=big, headers={"content-type": "application/json"}
        )
        chunked = await http.post(
            "/graphql", content=streamed(), headers={"content-type": "application/json"}
        )
        assert await stored_count(engine) == 0
        small = await graphql(http, small_query, {"input": {"model": IRIS, "features": SETOSA}})

    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "content-length" not in chunked.request.headers
    assert small["data"]["createPrediction"]["prediction"]["id"]
    assert await stored_count(engine) == 1


async def test_mutations_are_refused_over_get(client: httpx.AsyncClient, engine: AsyncEngine):
    response = await client.get(
        "/graphql",
        params={
            "query": CREATE,
            "variables": json.dumps({"input": {"model": IRIS, "features": SETOSA}}),
        },
        headers={"accept": "application/json"},
    )

    assert 400 <= response.status_code < 500, response.text
    assert await stored_count(engine) == 0
    query_over_get = await client.get(
        "/graphql",
        params={"query": '{ model(name: "iris-classifier") { name } }'},
        headers={"accept": "application/json"},
    )
    assert query_over_get.status_code == 200
    assert query_over_get.json()["data"]["model"]["name"] == IRIS


@pytest.mark.parametrize(
    "mutation",
    [
        "createPrediction(input: {model: $model, features: {FEATURES}}) { prediction { inputs } }",
        "createPredictions(input: {model: $model, instances: [{FEATURES}]}) { "
        "predictions { inputs } }",
    ],
    ids=["one", "batch"],
)
async def test_an_integer_past_64_bits_is_scored_and_stored_as_the_float_it_is(
    client: httpx.AsyncClient, mutation: str
):
    """Written in the document, an integer keeps all its digits (a JSON body's decoder would
    already have made it a float)."""
    features = "sepal_length: 100000000000000000000, sepal_width: 3.5, petal_length: 1.4, "
    features += "petal_width: 0.2"
    document = "mutation($model: String!) { " + mutation.replace("FEATURES", features) + " }"

    body = await graphql(client, document, {"model": IRIS})

    assert "errors" not in body, body
    created = next(iter(body["data"].values()))
    stored = created["prediction"] if "prediction" in created else created["predictions"][0]
    assert stored["inputs"]["sepal_length"] == 1e20
