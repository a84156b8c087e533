"""Predictions of concurrent requests are scored and stored together (one estimator call, one
transaction per group), and each request still gets exactly its own answer and its own errors."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import graphql

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DIABETES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
CREATE = """mutation($input: CreatePredictionInput!) { createPrediction(input: $input) {
  prediction { id inputs requestId value label } userErrors { field code message } } }"""
CREATE_MANY = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id } userErrors { field code message } } }"""


async def create(
    http: httpx.AsyncClient, request_id: str | None = None, **input: Any
) -> dict[str, Any]:
    headers = {"x-request-id": request_id} if request_id else None
    body = await graphql(http, CREATE, {"input": input}, headers)
    assert "errors" not in body, body
    return body["data"]["createPrediction"]


async def scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(text(sql))


async def test_concurrent_predictions_are_each_stored_once_with_their_own_answer(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    features = [dict(SETOSA, sepal_length=4.0 + index / 100) for index in range(200)]
    replies = await asyncio.gather(
        *(
            create(client, f"group-{index}", model="iris-classifier", features=one)
            for index, one in enumerate(features)
        )
    )

    for index, reply in enumerate(replies):
        assert reply["userErrors"] == []
        assert reply["prediction"]["inputs"] == features[index]
        assert reply["prediction"]["requestId"] == f"group-{index}"
    assert len({reply["prediction"]["id"] for reply in replies}) == 200
    assert await scalar(engine, "select count(*) from predictions") == 200
    assert await scalar(engine, "select count(distinct request_id) from predictions") == 200
    transactions = await scalar(engine, "select count(distinct created_at) from predictions")
    assert transactions < 200, "concurrent requests should share group commits"


async def test_an_input_the_model_cannot_score_fails_alone(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    schema = await graphql(
        client, '{ model(name: "wine-classifier") { defaultVersion { inputSchema { name } } } }'
    )
    names = [spec["name"] for spec in schema["data"]["model"]["defaultVersion"]["inputSchema"]]
    huge = dict.fromkeys(names, 1e308)
    ordinary = dict.fromkeys(names, 1.0)

    bad, *good = await asyncio.gather(
        create(client, model="wine-classifier", features=huge),
        *(create(client, model="wine-classifier", features=ordinary) for _ in range(10)),
    )

    [error] = bad["userErrors"]
    assert error["code"] == "INVALID_FEATURES"
    assert error["field"] == ["features"]
    assert "cannot score" in error["message"]
    assert bad["prediction"] is None
    assert all(reply["userErrors"] == [] and reply["prediction"] for reply in good)
    assert await scalar(engine, "select count(*) from predictions") == 10


async def test_a_non_finite_model_output_is_refused_alone_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    huge = dict.fromkeys(DIABETES, 1e308)
    ordinary = dict.fromkeys(DIABETES, 0.01)

    bad, *good = await asyncio.gather(
        create(client, model="diabetes-regressor", features=huge),
        *(create(client, model="diabetes-regressor", features=ordinary) for _ in range(10)),
    )

    [error] = bad["userErrors"]
    assert error["code"] == "MODEL_OUTPUT_INVALID"
    assert error["field"] == ["features"]
    assert "`value`" in error["message"]
    assert all(reply["prediction"]["value"] is not None for reply in good)
    assert await scalar(engine, "select count(*) from predictions") == 10
    assert await scalar(engine, "select count(*) from predictions where value = 'NaN'") == 0


async def test_a_non_finite_output_in_a_batch_names_its_instance_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    instances = [dict.fromkeys(DIABETES, 0.01), dict.fromkeys(DIABETES, 1e308)]
    body = await graphql(
        client, CREATE_MANY, {"input": {"model": "diabetes-regressor", "instances": instances}}
    )

    payload = body["data"]["createPredictions"]
    assert payload["predictions"] == []
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["instances", "1"], "MODEL_OUTPUT_INVALID")
    ]
    assert await scalar(engine, "select count(*) from predictions") == 0


async def test_duplicates_racing_in_one_group_store_once(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    other = dict(SETOSA, sepal_length=7.7)
    inputs = [SETOSA] * 10 + [other] * 5
    replies = await asyncio.gather(
        *(
            create(client, model="iris-classifier", features=one, idempotencyKey="race-1")
            for one in inputs
        )
    )

    assert await scalar(engine, "select count(*) from predictions") == 1
    stored_inputs = await scalar(engine, "select inputs from predictions")
    stored_id = await scalar(engine, "select id::text from predictions")
    for one, reply in zip(inputs, replies, strict=True):
        if one == stored_inputs:
            assert reply["userErrors"] == []
            assert reply["prediction"]["inputs"] == one
            assert stored_id in _local_id(reply["prediction"]["id"])
        else:
            assert [error["code"] for error in reply["userErrors"]] == ["IDEMPOTENCY_CONFLICT"]
            assert reply["prediction"] is None


def _local_id(global_id: str) -> str:
    return base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()


async def test_a_non_finite_number_an_older_database_stored_reads_as_null(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    async with engine.begin() as connection:
        # What an older database holds: the CHECK came NOT VALID, after such rows.
        check = await connection.scalar(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = 'ck_predictions_finite_numbers'"
            )
        )
        await connection.execute(
            text("ALTER TABLE predictions DROP CONSTRAINT ck_predictions_finite_numbers")
        )
        await connection.execute(
            text(
                "INSERT INTO predictions (id, model_id, model_version_id, inputs, value, "
                "latency_ms, request_id, batch_index, routed_by) "
                "SELECT gen_random_uuid(), v.model_id, v.id, '{}', 'NaN', 1.0, 'older', 0, "
                "'DEFAULT' FROM model_versions v JOIN models m ON m.id = v.model_id "
                "WHERE m.name = 'diabetes-regressor'"
            )
        )
        await connection.execute(
            text(f"ALTER TABLE predictions ADD CONSTRAINT ck_predictions_finite_numbers {check}")
        )

    body = await graphql(
        client, '{ predictions(filter: {requestId: "older"}) { nodes { requestId value } } }'
    )

    assert "errors" not in body, body
    assert body["data"]["predictions"]["nodes"] == [{"requestId": "older", "value": None}]
