"""The HTTP surface around GraphQL: probes, request ids, GraphiQL, GET queries and bad requests."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from support import graphql

from modelql.graph.endpoint import EXAMPLE_QUERY

DEMO_MODELS = {
    "breast-cancer-classifier",
    "diabetes-regressor",
    "iris-classifier",
    "wine-classifier",
}


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


async def test_healthz_answers_json(client: httpx.AsyncClient):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_migrations_and_models(client: httpx.AsyncClient):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
    }


async def test_readyz_logs_nothing_when_ready(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert (await client.get("/readyz")).status_code == 200
    server_side = [record for record in caplog.records if not record.name.startswith("httpx")]
    assert [record.getMessage() for record in server_side] == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/graphql?query={__typename}"])
async def test_a_sane_request_id_is_honoured_and_echoed(client: httpx.AsyncClient, path: str):
    response = await client.get(path, headers={"X-Request-ID": "abc-123.def:456_7"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123.def:456_7"


async def test_a_request_id_is_echoed_on_graphql_posts(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": "trace-42"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    assert response.headers.get_list("x-request-id") == ["trace-42"]


@pytest.mark.parametrize(
    "given",
    [None, b"", b"x" * 300, b"has spaces in it", b"semi;colon", b"tab\there", "ünï".encode()],
    ids=["absent", "empty", "300-chars", "spaces", "semicolon", "tab", "non-ascii"],
)
async def test_a_request_id_is_generated_when_absent_or_unacceptable(
    client: httpx.AsyncClient, given: bytes | None
):
    headers = {} if given is None else {b"X-Request-ID": given}
    response = await client.get("/healthz", headers=headers)
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert _is_uuid(echoed), echoed
    assert response.headers.get_list("x-request-id") == [echoed]


async def test_a_request_id_of_200_characters_is_still_honoured(client: httpx.AsyncClient):
    given = "r" * 200
    response = await client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


async def test_generated_request_ids_differ_per_request(client: httpx.AsyncClient):
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_browser_gets_graphiql_with_a_working_example_query(client: httpx.AsyncClient):
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "graphiql" in html.lower()
    assert EXAMPLE_QUERY.splitlines()[0] in html
    assert "models(first: 10)" in html

    body = await graphql(client, EXAMPLE_QUERY)
    assert "errors" not in body, body["errors"]
    nodes = body["data"]["models"]["nodes"]
    names = [node["name"] for node in nodes]
    # the first ten by name: the demo's first ones, whatever other tests registered after them
    assert names == sorted(names)
    assert {"breast-cancer-classifier", "diabetes-regressor"} <= set(names)
    for node in nodes:
        assert node["defaultVersion"]["inputSchema"], node["name"]


async def test_queries_over_get(client: httpx.AsyncClient):
    response = await client.get("/graphql", params={"query": "{models{nodes{name}}}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    assert {node["name"] for node in body["data"]["models"]["nodes"]} >= DEMO_MODELS


async def test_get_with_variables(client: httpx.AsyncClient):
    response = await client.get(
        "/graphql",
        params={
            "query": "query($name: String!) { model(name: $name) { name task } }",
            "variables": '{"name": "iris-classifier"}',
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["model"] == {"name": "iris-classifier", "task": "CLASSIFICATION"}


async def test_mutations_are_refused_over_get(client: httpx.AsyncClient):
    query = (
        'mutation { createPrediction(input: {model: "iris-classifier", features: {}}) '
        "{ userErrors { code } } }"
    )
    response = await client.get("/graphql", params={"query": query})
    assert 400 <= response.status_code < 500
    assert response.status_code != 500


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"query": ', b"", b"[1, 2"],
    ids=["garbage", "truncated", "empty", "unclosed-list"],
)
async def test_malformed_json_bodies_are_400(client: httpx.AsyncClient, body: bytes):
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_a_body_that_is_not_utf8_is_400(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "payload",
    [{"variables": {}}, {"query": 42}, {"query": "{ __typename }", "variables": "nope"}, [1, 2]],
    ids=["no-query", "query-not-string", "variables-not-object", "json-array"],
)
async def test_malformed_requests_are_4xx_not_500(client: httpx.AsyncClient, payload: object):
    response = await client.post("/graphql", json=payload)
    assert 400 <= response.status_code < 500, response.text


async def test_a_syntax_error_is_a_parse_failure(client: httpx.AsyncClient):
    body = await graphql(client, "{ models { nodes { name }")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert error["message"].startswith("Syntax Error")
    assert error["locations"] == [{"line": 1, "column": 26}]
    assert body.get("data") is None


async def test_an_unknown_field_is_a_validation_failure_without_suggestions(
    client: httpx.AsyncClient,
):
    body = await graphql(client, '{ models { nodes { nam } } modle(name: "x") { name } }')
    assert body["errors"]
    for error in body["errors"]:
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Did you mean" not in error["message"]
    messages = " ".join(error["message"] for error in body["errors"])
    assert "nam" in messages and "modle" in messages
    assert body.get("data") is None


async def test_an_unknown_argument_is_a_validation_failure(client: httpx.AsyncClient):
    body = await graphql(client, "{ models(frist: 2) { nodes { name } } }")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert body.get("data") is None


@pytest.mark.parametrize(
    "query",
    [
        "{ models(frist: 2) { nodes { name } } }",
        "{ models(filter: {task: CLASIFICATION}) { nodes { name } } }",
        '{ models(filter: {tgs: "x"}) { nodes { name } } }',
    ],
    ids=["argument", "enum-value", "input-field"],
)
async def test_no_suggestions_for_misspelled_arguments(client: httpx.AsyncClient, query: str):
    body = await graphql(client, query)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Did you mean" not in error["message"]


@pytest.mark.parametrize(
    "query",
    [
        '{ models(first: "ten") { nodes { name } } }',
        "{ model(name: 5) { name } }",
        "{ models(filter: {task: BANANA}) { nodes { name } } }",
        '{ models(filter: {task: "CLASSIFICATION"}) { nodes { name } } }',
        "{ model { name } }",
        '{ modelVersion(model: "iris-classifier", version: 1.5) { number } }',
        '{ modelVersion(model: "iris-classifier") { metric(name: "accuracy", split: HOLDOUT) } }',
        "{ models { nodes { name { inner } } } }",
        "{ models }",
    ],
)
async def test_wrong_argument_types_are_validation_errors(client: httpx.AsyncClient, query: str):
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"]
    assert body.get("data") is None
    for error in body["errors"]:
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error


@pytest.mark.parametrize(
    "variables",
    [{"n": "ten"}, {"n": 1.5}, {"n": [1]}, {"n": {"a": 1}}, {"n": 2**40}],
    ids=["string", "float", "list", "object", "too-big"],
)
async def test_wrongly_typed_variables_are_coded_errors_not_500(
    client: httpx.AsyncClient, variables: dict[str, object]
):
    response = await client.post(
        "/graphql",
        json={
            "query": "query($n: Int) { models(first: $n) { nodes { name } } }",
            "variables": variables,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    [error] = body["errors"]
    assert "$n" in error["message"]
    assert error["extensions"]["code"] in {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}
    assert body.get("data") is None


async def test_an_unknown_operation_name_is_not_a_500(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql", json={"query": "query A { __typename }", "operationName": "B"}
    )
    assert 200 <= response.status_code < 500, response.text
    assert response.status_code != 500


@pytest.mark.parametrize(
    "query",
    [
        "{ models(first: null) { nodes { name } } }",
        '{ model(name: "iris-classifier") { versions(first: null) { nodes { number } } } }',
        '{ modelVersion(model: "iris-classifier") { metric(name: "accuracy", split: null, slice: null) } }',
    ],
    ids=["models", "versions", "metric"],
)
async def test_explicit_nulls_for_defaulted_arguments_mean_the_default(
    client: httpx.AsyncClient, query: str
):
    """The contract's `first: Int = 20`, `split: DataSplit = TEST` ... accept an explicit null."""
    body = await graphql(client, query)
    assert "errors" not in body, body["errors"]
    data = next(iter(body["data"].values()))
    assert data is not None
    if "metric" in data:
        assert isinstance(data["metric"], float)
