"""The direct executor answers the prediction mutations exactly as the general one would: same
data, same errors and paths, same null propagation; documents it cannot plan go the general way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from support import app_client, make_settings

from modelql.graph import mutations
from modelql.graph.direct import DirectExecutor
from modelql.graph.errors import ClientError, ErrorCode
from modelql.graph.mutations import (
    DIRECT_MUTATIONS,
    CreatePredictionPayload,
    UserError,
)
from modelql.graph.request_log import RequestLog
from modelql.graph.schema import build_schema
from modelql.graph.types.nodes import PredictionType
from modelql.models.vocabulary import RoutingReason
from modelql.services.api_keys import Scope
from modelql.services.errors import ErrorCode as DomainCode
from modelql.settings import Settings

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
EVERY_PLAIN_FIELD = """id inputs label value confidence latencyMs createdAt requestId caller
  idempotencyKey routedBy probabilities { label probability __typename } __typename"""
ONE = f"""mutation($input: CreatePredictionInput!) {{ createPrediction(input: $input) {{
  prediction {{ {EVERY_PLAIN_FIELD} }} userErrors {{ field code message }} __typename }} }}"""
MANY = """mutation Score($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { ...Scored ... on Node { id } } errors: userErrors { field code } } }
fragment Scored on Prediction { label top: confidence }"""
TWO = """mutation { a: createPrediction(input: {model: "iris-classifier", features: {
  sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  ... on CreatePredictionPayload { prediction { label } } }
  b: createPrediction(input: {model: "nope", features: {}}) { userErrors { code field } } }"""
LITERAL = """mutation { createPrediction(input: {model: "iris-classifier", version: 1, features: {
  sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}, routingKey: null}) {
  prediction { label probabilities { label } } userErrors { code } } }"""
VARYING = {"id", "createdAt", "requestId", "latencyMs"}

DOCUMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("every plain field", ONE, {"input": {"model": "iris-classifier", "features": SETOSA}}),
    (
        "a feature the model does not know",
        ONE,
        {"input": {"model": "iris-classifier", "features": {**SETOSA, "colour": "red"}}},
    ),
    (
        "an unusable idempotency key",
        ONE,
        {"input": {"model": "iris-classifier", "features": SETOSA, "idempotencyKey": ""}},
    ),
    ("an unknown model", ONE, {"input": {"model": "nope", "features": SETOSA}}),
    ("a variable of the wrong type", ONE, {"input": {"model": 5, "features": SETOSA}}),
    ("a missing variable", ONE, {}),
    (
        "a batch, fragments and aliases",
        MANY,
        {"input": {"model": "iris-classifier", "instances": [SETOSA, SETOSA]}},
    ),
    (
        "a batch with one bad instance",
        MANY,
        {"input": {"model": "iris-classifier", "instances": [SETOSA, {"sepal_length": "x"}]}},
    ),
    ("two mutations in one document", TWO, {}),
    ("arguments written in the document", LITERAL, {}),
]


@pytest.fixture(scope="module")
async def general(settings: Settings, demo_catalogue: None) -> AsyncIterator[httpx.AsyncClient]:
    """The same application with the direct executor switched off."""
    general_settings = make_settings(
        str(settings.database_url), Path(settings.data_dir), direct_execution=False
    )
    async with app_client(general_settings) as http:
        yield http


def _comparable(value: Any) -> Any:
    """The answer without what differs between two runs (ids, times, request ids)."""
    if isinstance(value, dict):
        return {
            key: "<varies>" if key in VARYING else _comparable(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


@pytest.mark.parametrize(
    ("document", "variables", "operation_name"),
    [
        *(pytest.param(query, variables, None, id=name) for name, query, variables in DOCUMENTS),
        pytest.param(MANY, DOCUMENTS[6][2], "Score", id="an operation named"),
        pytest.param(MANY, DOCUMENTS[6][2], ["Score"], id="an operation name that is a list"),
        pytest.param(MANY, DOCUMENTS[6][2], {"a": 1}, id="an operation name that is an object"),
    ],
)
async def test_the_direct_answer_is_the_general_answer(
    client: httpx.AsyncClient,
    general: httpx.AsyncClient,
    document: str,
    variables: dict[str, Any],
    operation_name: Any,
):
    body = {"query": document, "variables": variables, "operationName": operation_name}
    direct = await client.post("/graphql", json=body)
    generic = await general.post("/graphql", json=body)

    assert (direct.status_code, direct.headers["content-type"]) == (
        generic.status_code,
        generic.headers["content-type"],
    )
    if "json" in generic.headers["content-type"]:
        assert _comparable(direct.json()) == _comparable(generic.json())
    else:
        assert direct.text == generic.text


def _executor(**handlers: Any) -> DirectExecutor:
    schema = build_schema()
    return DirectExecutor(
        schema=schema,
        prepare=schema.documents,
        handlers=handlers or DIRECT_MUTATIONS,
        cache_size=8,
    )


@pytest.mark.parametrize(
    "document",
    [
        ONE,
        MANY,
        TWO,
        'mutation { createPredictions(input: {model: "m", instances: []}) { __typename } }',
    ],
)
def test_prediction_mutations_reading_plain_fields_are_planned(document: str):
    assert _executor().plan(document, None) is not None


@pytest.mark.parametrize(
    "document",
    [
        "{ __typename }",
        'mutation { createPrediction(input: {model: "m", features: {}}) { prediction { '
        "modelVersion { number } } } }",
        'mutation { createPrediction(input: {model: "m", features: {}}) { prediction { '
        "outcome { label } } } }",
        'mutation($x: Boolean!) { createPrediction(input: {model: "m", features: {}}) { '
        "prediction @include(if: $x) { id } } }",
        'mutation { setAlias(input: {model: "m", alias: "a", version: 1}) { __typename } }',
        "mutation { createPrediction(input: {}) { __typename } }",
        "mutation A { __typename } mutation B { __typename }",
        "not a document",
    ],
    ids=[
        "a query",
        "an async field",
        "a field with a loader",
        "a directive",
        "another mutation",
        "an invalid document",
        "an ambiguous operation",
        "a syntax error",
    ],
)
def test_other_documents_take_the_general_path(document: str):
    assert _executor().plan(document, None) is None


def _prediction(**changes: Any) -> PredictionType:
    row = SimpleNamespace(
        id=uuid.uuid4(),
        model_version_id=uuid.uuid4(),
        inputs=SETOSA,
        label="setosa",
        value=None,
        probabilities=[{"label": "setosa", "probability": 1.0}],
        confidence=1.0,
        latency_ms=0.1,
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
        request_id="request",
        caller=None,
        idempotency_key=None,
        routed_by=RoutingReason.DEFAULT,
    )
    prediction = PredictionType.from_row(row)
    for name, value in changes.items():
        setattr(prediction, name, value)
    return prediction


async def _raise_client_error(context: Any, input: Any) -> Any:
    raise ClientError("The model cannot be loaded.", ErrorCode.MODEL_UNAVAILABLE)


async def _raise_unexpected(context: Any, input: Any) -> Any:
    raise RuntimeError("a bug")


def _returning(payload: Any) -> Any:
    async def handler(context: Any, input: Any) -> Any:
        return payload

    return handler


BROKEN_PAYLOADS = {
    "null in a non-null list": _returning(
        CreatePredictionPayload(prediction=None, user_errors=None)
    ),  # type: ignore[arg-type]
    "a value its type cannot represent": _returning(
        CreatePredictionPayload(prediction=_prediction(confidence=float("nan")), user_errors=[])
    ),
    "null as a non-null item": _returning(
        CreatePredictionPayload(prediction=_prediction(), user_errors=[None])  # type: ignore[list-item]
    ),
    "null inside a non-null item": _returning(
        CreatePredictionPayload(
            prediction=None,
            user_errors=[UserError(field=["x"], code=DomainCode.MODEL_NOT_FOUND, message=None)],  # type: ignore[arg-type]
        )
    ),
    "null in a non-null field of a nullable object": _returning(
        CreatePredictionPayload(prediction=_prediction(request_id=None), user_errors=[])
    ),
    "a client error": _raise_client_error,
    "an unexpected error": _raise_unexpected,
    "a null payload": _returning(None),
}


@pytest.mark.parametrize("handler", BROKEN_PAYLOADS.values(), ids=BROKEN_PAYLOADS.keys())
async def test_broken_answers_fail_as_graphql_core_fails_them(
    handler: Any, monkeypatch: pytest.MonkeyPatch
):
    document = f"""mutation {{ createPrediction(input: {{model: "m", features: {{}}}}) {{
      prediction {{ {EVERY_PLAIN_FIELD} }} userErrors {{ field code message }} }} }}"""
    monkeypatch.setattr(mutations, "create_prediction", handler)

    def context() -> SimpleNamespace:
        return SimpleNamespace(
            scopes=frozenset(Scope), request_log=RequestLog(), request_id="r", response=None
        )

    general = await build_schema().execute(document, context_value=context())
    direct = await _executor(createPrediction=handler).execute(document, None, {}, context())

    assert direct is not None
    assert direct.data == general.data
    assert [error.formatted for error in direct.errors or []] == [
        error.formatted for error in general.errors or []
    ]


async def test_a_caller_without_the_scope_gets_the_general_refusal():
    document = 'mutation { createPrediction(input: {model: "m", features: {}}) { __typename } }'
    caller = SimpleNamespace(scopes=frozenset({Scope.READ}), request_log=RequestLog())

    assert await _executor().execute(document, None, {}, caller) is None


async def test_arguments_written_in_the_document_are_never_shared_by_two_requests():
    seen: list[dict[str, Any]] = []

    async def handler(context: Any, input: Any) -> Any:
        seen.append(dict(input.features))
        input.features["sepal_length"] = -1
        return CreatePredictionPayload(prediction=None, user_errors=[])

    executor = _executor(createPrediction=handler)
    caller = SimpleNamespace(scopes=frozenset(Scope), request_log=RequestLog(), response=None)
    for _ in range(2):
        assert await executor.execute(LITERAL, None, {}, caller) is not None

    assert seen == [SETOSA, SETOSA]
