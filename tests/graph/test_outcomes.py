"""Ground truth: recording outcomes by prediction id or request id, corrections, repeats,
refusals that store nothing, the `feedback` scope, and the prediction fields and filters."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import app_client, graphql, make_settings
from test_prediction_audit import local_id

from modelql.services import api_keys, outcomes
from modelql.services.api_keys import Scope
from modelql.services.catalogue import Catalogue
from modelql.services.errors import ErrorCode, UserInputError
from modelql.services.freshness import Freshness
from modelql.settings import AuthMode

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}
DIABETES = {
    "age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04,
    "s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02,
}  # fmt: skip

PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id label value requestId } userErrors { code } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  outcomes { label value observedAt recordedAt caller } userErrors { field code message } } }"""
PREDICTION = """query($id: ID!) { prediction(id: $id) {
  label value correct error outcome { label value } outcomeHistory { label value observedAt } } }"""
FILTERED = """query($filter: PredictionFilter) { predictions(filter: $filter) { nodes { id } }
  predictionStats(filter: $filter) { count } }"""


async def predict(
    http: httpx.AsyncClient, model: str, *instances: dict, request_id: str | None = None
) -> list[dict]:
    headers = {"X-Request-ID": request_id} if request_id else None
    body = await graphql(
        http, PREDICT, {"input": {"model": model, "instances": list(instances)}}, headers
    )
    payload = body["data"]["createPredictions"]
    assert payload["userErrors"] == []
    return payload["predictions"]


async def record(http: httpx.AsyncClient, *outcomes: dict, headers: dict | None = None) -> dict:
    body = await graphql(http, RECORD, {"outcomes": list(outcomes)}, headers)
    assert "errors" not in body, body
    return body["data"]["recordOutcomes"]


async def prediction(http: httpx.AsyncClient, global_id: str) -> dict:
    return (await graphql(http, PREDICTION, {"id": global_id}))["data"]["prediction"]


async def stored_outcomes(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM prediction_outcomes"))


async def test_an_outcome_recorded_by_prediction_id_shows_on_the_prediction(
    client: httpx.AsyncClient,
):
    setosa, virginica = await predict(client, "iris-classifier", SETOSA, VIRGINICA)

    payload = await record(
        client,
        {"predictionId": setosa["id"], "label": "setosa", "observedAt": "2026-11-20T10:00:00Z"},
        {"predictionId": virginica["id"], "label": "versicolor"},
    )

    assert payload["userErrors"] == []
    assert [outcome["label"] for outcome in payload["outcomes"]] == ["setosa", "versicolor"]
    assert payload["outcomes"][0]["observedAt"] == "2026-11-20T10:00:00+00:00"
    right, wrong = await prediction(client, setosa["id"]), await prediction(client, virginica["id"])
    assert right["outcome"] == {"label": "setosa", "value": None}
    assert (right["correct"], right["error"]) == (True, None)
    assert wrong["label"] == "virginica"
    assert (wrong["correct"], wrong["outcome"]["label"]) == (False, "versicolor")


async def test_an_outcome_recorded_by_request_id_and_batch_index(client: httpx.AsyncClient):
    first, second = await predict(
        client, "iris-classifier", SETOSA, VIRGINICA, request_id="truth-by-request"
    )

    payload = await record(
        client,
        {"requestId": "truth-by-request", "label": "setosa"},
        {"requestId": "truth-by-request", "batchIndex": 1, "label": "virginica"},
    )

    assert payload["userErrors"] == []
    assert (await prediction(client, first["id"]))["outcome"]["label"] == "setosa"
    assert (await prediction(client, second["id"]))["outcome"]["label"] == "virginica"


async def test_a_regression_outcome_gives_the_error(client: httpx.AsyncClient):
    (made,) = await predict(client, "diabetes-regressor", DIABETES)

    await record(client, {"predictionId": made["id"], "value": 100.0})

    seen = await prediction(client, made["id"])
    assert seen["error"] == pytest.approx(made["value"] - 100.0)
    assert seen["correct"] is None


async def test_a_correction_is_kept_and_the_latest_counts(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    (made,) = await predict(client, "iris-classifier", SETOSA)
    await record(client, {"predictionId": made["id"], "label": "versicolor"})

    corrected = await record(client, {"predictionId": made["id"], "label": "setosa"})

    assert corrected["outcomes"][0]["label"] == "setosa"
    seen = await prediction(client, made["id"])
    assert [outcome["label"] for outcome in seen["outcomeHistory"]] == ["versicolor", "setosa"]
    assert (seen["outcome"]["label"], seen["correct"]) == ("setosa", True)
    assert await stored_outcomes(engine) == 2


async def test_recording_the_same_outcome_again_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    (made,) = await predict(client, "iris-classifier", SETOSA)
    first = await record(client, {"predictionId": made["id"], "label": "setosa"})

    again = await record(
        client,
        {"predictionId": made["id"], "label": "setosa"},
        {"predictionId": made["id"], "label": "setosa", "observedAt": "2026-01-01T00:00:00Z"},
    )

    assert again["outcomes"] == [first["outcomes"][0]] * 2
    assert await stored_outcomes(engine) == 1
    assert len((await prediction(client, made["id"]))["outcomeHistory"]) == 1


async def test_bad_outcomes_are_each_reported_and_nothing_is_stored(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    (iris,) = await predict(client, "iris-classifier", SETOSA)
    (diabetes,) = await predict(client, "diabetes-regressor", DIABETES)
    unknown = "UHJlZGljdGlvbjowMTkzMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA"  # no such row

    payload = await record(
        client,
        {"predictionId": iris["id"], "label": "setosa"},
        {"predictionId": iris["id"], "label": "tulip"},
        {"predictionId": diabetes["id"], "label": "setosa"},
        {"predictionId": iris["id"], "value": 1.0},
        {"predictionId": unknown, "label": "setosa"},
        {"predictionId": "not-an-id", "label": "setosa"},
        {"requestId": "no-such-request", "label": "setosa"},
        {"predictionId": iris["id"]},
        {"predictionId": iris["id"], "requestId": "both", "label": "setosa"},
    )

    assert payload["outcomes"] == []
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
        (["outcomes", "7"], "INVALID_OUTCOME"),
        (["outcomes", "8"], "INVALID_OUTCOME"),
        (["outcomes", "4", "predictionId"], "PREDICTION_NOT_FOUND"),
        (["outcomes", "5", "predictionId"], "PREDICTION_NOT_FOUND"),
        (["outcomes", "6", "requestId"], "PREDICTION_NOT_FOUND"),
        (["outcomes", "1", "label"], "INVALID_OUTCOME"),
        (["outcomes", "2", "label"], "INVALID_OUTCOME"),
        (["outcomes", "3", "value"], "INVALID_OUTCOME"),
    ]
    assert "setosa, versicolor, virginica" in payload["userErrors"][5]["message"]
    assert await stored_outcomes(engine) == 0


async def test_a_non_finite_value_is_an_invalid_outcome(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
):
    """GraphQL variables cannot carry NaN (a Float error); the CLI import reaches the service."""
    (made,) = await predict(client, "diabetes-regressor", DIABETES)
    request = outcomes.OutcomeRequest(prediction_id=local_id(made["id"]), value=math.inf)

    with pytest.raises(UserInputError) as refused:
        async with sessionmaker.begin() as session:
            await outcomes.record(
                session, Catalogue(Freshness.never()), [request], caller=None, max_batch_size=10
            )

    assert [(p.path, p.code) for p in refused.value.problems] == [
        (("outcomes", "0", "value"), ErrorCode.INVALID_OUTCOME)
    ]
    assert await stored_outcomes(engine) == 0


async def test_a_value_whose_squared_error_overflows_is_an_invalid_outcome(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    """1e200 is finite, but the roll-ups sum squared errors, which would overflow."""
    (made,) = await predict(client, "diabetes-regressor", DIABETES)

    payload = await record(client, {"predictionId": made["id"], "value": 1e200})

    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["outcomes", "0", "value"], "INVALID_OUTCOME")
    ]
    assert await stored_outcomes(engine) == 0


async def test_outcomes_are_written_in_the_callers_transaction(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
):
    """With the catalogue warm, recording runs no statement through the session itself: its
    transaction must still hold every write, so that a failure after them stores nothing."""
    first, second = await predict(client, "iris-classifier", SETOSA, VIRGINICA)
    catalogue = Catalogue(Freshness.never())

    async def record_in(session: AsyncSession, made: dict) -> None:
        request = outcomes.OutcomeRequest(prediction_id=local_id(made["id"]), label="setosa")
        await outcomes.record(session, catalogue, [request], caller=None, max_batch_size=10)

    async def record_then_fail() -> None:
        async with sessionmaker.begin() as session:
            await record_in(session, second)
            raise RuntimeError("the caller's transaction fails after recording")

    async with sessionmaker.begin() as session:
        await record_in(session, first)  # reads the version into the catalogue
    with pytest.raises(RuntimeError):
        await record_then_fail()

    assert await stored_outcomes(engine) == 1
    assert (await prediction(client, second["id"]))["outcome"] is None


async def test_more_outcomes_than_the_batch_cap_are_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    (made,) = await predict(client, "iris-classifier", SETOSA)

    payload = await record(client, *[{"predictionId": made["id"], "label": "setosa"}] * 1001)

    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["outcomes"], "BATCH_TOO_LARGE")
    ]
    assert await stored_outcomes(engine) == 0


async def test_filters_on_outcomes(client: httpx.AsyncClient):
    right, wrong, unlabelled = await predict(client, "iris-classifier", SETOSA, VIRGINICA, SETOSA)
    await record(
        client,
        {"predictionId": right["id"], "label": "setosa"},
        {"predictionId": wrong["id"], "label": "versicolor"},
    )

    async def ids(**where: object) -> set[str]:
        body = await graphql(client, FILTERED, {"filter": where})
        found = {node["id"] for node in body["data"]["predictions"]["nodes"]}
        assert body["data"]["predictionStats"]["count"] == len(found)
        return found

    assert await ids(hasOutcome=True) == {right["id"], wrong["id"]}
    assert await ids(hasOutcome=False) == {unlabelled["id"]}
    assert await ids(correct=True) == {right["id"]}
    assert await ids(correct=False) == {wrong["id"]}


@pytest.fixture(scope="module")
async def secured(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with app_client(settings) as http:
        yield http


async def make_key(sessionmaker: async_sessionmaker[AsyncSession], name: str, *scopes: Scope):
    async with sessionmaker.begin() as session:
        _, plain = await api_keys.create(session, name=name, scopes=frozenset(scopes))
    return {"Authorization": f"Bearer {plain}"}


async def test_recording_outcomes_needs_the_feedback_scope(
    secured: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
):
    predictor = await make_key(sessionmaker, "outcome-predictor", Scope.PREDICT, Scope.AUDIT)
    labeller = await make_key(sessionmaker, "outcome-labeller", Scope.FEEDBACK)
    body = await graphql(
        secured, PREDICT, {"input": {"model": "iris-classifier", "instances": [SETOSA]}}, predictor
    )
    made = body["data"]["createPredictions"]["predictions"][0]
    outcome = {"predictionId": made["id"], "label": "setosa"}

    refused = await graphql(secured, RECORD, {"outcomes": [outcome]}, predictor)
    accepted = await record(secured, outcome, headers=labeller)

    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN", "requiredScope": "feedback"}
    assert accepted["outcomes"][0]["caller"] == "outcome-labeller"
    assert await stored_outcomes(engine) == 1
