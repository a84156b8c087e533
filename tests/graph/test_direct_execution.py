"""What the direct executor plans and what it leaves to the general one, and the behaviours the
generated parity cases (test_direct_parity.py) do not reach: payloads broken above the use case,
scopes, and arguments kept for many requests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelql.graph import mutations
from modelql.graph.direct import DirectExecutor
from modelql.graph.mutations import DIRECT_MUTATIONS, CreatePredictionPayload
from modelql.graph.request_log import RequestLog
from modelql.graph.schema import build_schema
from modelql.services.api_keys import Scope

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


def _returning(payload: Any) -> Any:
    async def handler(context: Any, input: Any) -> Any:
        return payload

    return handler


BROKEN_PAYLOADS = {  # broken predictions and failing use cases: test_direct_parity.py
    "null in a non-null list": _returning(
        CreatePredictionPayload(prediction=None, user_errors=None)  # type: ignore[arg-type]
    ),
    "null as a non-null item": _returning(
        CreatePredictionPayload(prediction=None, user_errors=[None])  # type: ignore[list-item]
    ),
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
