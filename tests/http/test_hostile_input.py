"""Inputs that reach PostgreSQL or the JSON decoder in odd shapes are the client's mistake (4xx
or BAD_USER_INPUT), never a 500, and never spoil the rest of the request."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from support import graphql

import modelql.graph.endpoint
from modelql.graph.cursors import encode_cursor

CREATE = """mutation($features: JSON!, $key: String) {
  createPrediction(input: {model: "iris-classifier", features: $features, idempotencyKey: $key}) {
    prediction { id } userErrors { field code message } } }"""


async def test_deeply_nested_json_is_a_400_not_a_500(client: httpx.AsyncClient):
    body = '{"query": "{ __typename }", "variables": {"v": ' + "[" * 5000 + "]" * 5000 + "}}"
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_a_nul_character_is_bad_input_and_other_fields_still_resolve(
    client: httpx.AsyncClient,
):
    body = await graphql(
        client,
        """query($name: String!) { models { nodes { name defaultVersion { number } } }
             broken: model(name: $name) { name } }""",
        {"name": "iris\u0000classifier"},
    )
    [error] = body["errors"]
    assert error["path"] == ["broken"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert all(node["defaultVersion"] for node in body["data"]["models"]["nodes"])


@pytest.mark.parametrize(
    "filter_",
    [
        pytest.param({"createdAfter": "9999-12-31T23:59:59-14:00"}, id="after-the-last-year"),
        pytest.param({"createdBefore": "0001-01-01T00:00:00+01:00"}, id="before-the-first-year"),
        pytest.param({"label": "a\u0000b"}, id="nul-in-label"),
    ],
)
@pytest.mark.parametrize(
    "selection",
    ["predictions(filter: $f) { nodes { id } }", "predictionStats(filter: $f) { count }"],
)
async def test_unstorable_filter_values_are_bad_input(
    client: httpx.AsyncClient, filter_: dict, selection: str
):
    body = await graphql(client, f"query($f: PredictionFilter) {{ {selection} }}", {"f": filter_})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


@pytest.mark.parametrize(
    "document",
    [
        "{}",
        "query Q { }",
        "{ models { } }",
        "query { models { nodes { ...F } } } fragment F on Model { }",
    ],
)
async def test_an_empty_selection_set_is_a_validation_error(
    client: httpx.AsyncClient, document: str
):
    response = await client.post("/graphql", json={"query": document})

    assert response.status_code < 500
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"].startswith("Empty selection set")


@pytest.mark.parametrize(
    "document",
    [
        "query { models { nodes { ...Missing } } }",
        "query { models { nodes { ...A } } } fragment A on Model { name ...A }",
        "query { models { nodes { ...A } } } fragment A on Model { ...B } "
        "fragment B on Model { ...A }",
    ],
    ids=["unknown-fragment", "fragment-cycle", "fragments-in-a-cycle"],
)
async def test_broken_fragments_are_validation_errors(client: httpx.AsyncClient, document: str):
    response = await client.post("/graphql", json={"query": document})

    assert response.status_code < 500
    codes = {error["extensions"]["code"] for error in response.json()["errors"]}
    assert codes == {"GRAPHQL_VALIDATION_FAILED"}


IRIS = 'model(name: "iris-classifier")'
DATETIME_ARGUMENTS = {
    "versionAt": f'{{ {IRIS} {{ versionAt(alias: "production", at: $t) {{ number }} }} }}',
    "inputDrift": f"{{ {IRIS} {{ defaultVersion {{ inputDrift(since: $t) {{ referenceAvailable }} }} }} }}",
    "metric": f'{{ {IRIS} {{ defaultVersion {{ metric(name: "f1_macro", split: LIVE, until: $t) }} }} }}',
    "performance": f"{{ {IRIS} {{ defaultVersion {{ performance(split: LIVE, since: $t) {{ slice }} }} }} }}",
    "recordOutcomes": 'mutation { recordOutcomes(input: {outcomes: [{requestId: "r", batchIndex: 0, '
    'label: "setosa", observedAt: $t}]}) { userErrors { code } } }',
}  # fmt: skip


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("argument", DATETIME_ARGUMENTS)
async def test_a_time_outside_the_years_1_to_9999_in_utc_is_the_clients_error(
    client: httpx.AsyncClient, argument: str, moment: str
):
    """As a variable it is bad input; written into the document, a validation error."""
    document = DATETIME_ARGUMENTS[argument]
    operation = "mutation" if document.startswith("mutation") else "query"
    as_variable = await graphql(
        client, f"{operation}($t: DateTime!) {document.removeprefix(operation)}", {"t": moment}
    )
    as_literal = await graphql(client, document.replace("$t", f'"{moment}"'))

    assert as_variable["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", as_variable
    assert "outside the years 1 to 9999 in UTC" in as_variable["errors"][0]["message"]
    assert {e["extensions"]["code"] for e in as_literal["errors"]} == {
        "GRAPHQL_VALIDATION_FAILED"
    }, as_literal


async def test_a_version_cursor_out_of_range_is_bad_input(client: httpx.AsyncClient):
    cursor = encode_cursor("version", 2**40)
    body = await graphql(
        client,
        'query($c: String) { model(name: "iris-classifier") { versions(after: $c) { nodes { number } } } }',
        {"c": cursor},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_nul_in_the_idempotency_key_is_refused(client: httpx.AsyncClient):
    features = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    body = await graphql(client, CREATE, {"features": features, "key": "k\u0000"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_same_number_spelled_differently_replays(client: httpx.AsyncClient):
    first = {"sepal_length": 5, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    again = {**first, "sepal_length": 5.0}
    one = await graphql(client, CREATE, {"features": first, "key": "spelling-1"})
    two = await graphql(client, CREATE, {"features": again, "key": "spelling-1"})
    assert two["data"]["createPrediction"]["userErrors"] == []
    assert (
        one["data"]["createPrediction"]["prediction"]["id"]
        == two["data"]["createPrediction"]["prediction"]["id"]
    )


async def test_an_unhandled_failure_is_a_masked_500_with_the_request_id(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    async def broken(*args: object) -> None:
        raise RuntimeError("/srv/secret/path.py exploded")

    monkeypatch.setattr(modelql.graph.endpoint, "_identify", broken)
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": "boom-1"}
    )
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json()["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": "boom-1",
    }
    assert "secret" not in response.text


def test_cursor_encoding_is_opaque_base64():
    raw = base64.urlsafe_b64decode(encode_cursor("model", "x") + "==")
    assert json.loads(raw) == ["model", "x"]


LONE_SURROGATE = "\ud800"
IRIS_FEATURES = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


async def post_raw(client: httpx.AsyncClient, payload: dict) -> httpx.Response:
    """The payload as the standard encoder writes it: a lone surrogate as `\\ud800`."""
    body = json.dumps(payload)
    return await client.post("/graphql", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            {"query": CREATE, "variables": {"features": {**IRIS_FEATURES, LONE_SURROGATE: 1}}},
            id="feature-name",
        ),
        pytest.param(
            {
                "query": "query($s: DataSplit) { models { nodes { defaultVersion { "
                "performance(split: $s) { slice } } } } }",
                "variables": {"s": LONE_SURROGATE},
            },
            id="enum-value",
        ),
        pytest.param(
            {"query": "query A { __typename }", "operationName": LONE_SURROGATE},
            id="operation-name",
        ),
    ],
)
async def test_a_lone_surrogate_quoted_back_is_not_a_500(client: httpx.AsyncClient, payload):
    response = await post_raw(client, payload)

    assert response.status_code < 500, response.text
    assert LONE_SURROGATE.encode("utf-8", "surrogatepass") not in response.content


SET_SPLIT = """mutation($shares: [TrafficShareInput!]!) { setTrafficSplit(input: {
  model: "iris-classifier", shares: $shares}) { userErrors { code } } }"""


async def test_a_lone_surrogate_routing_key_is_drawn_like_any_other(client: httpx.AsyncClient):
    shares = [{"version": 1, "weight": 1}, {"version": 2, "weight": 1}]
    assert (await graphql(client, SET_SPLIT, {"shares": shares}))["data"]["setTrafficSplit"] == {
        "userErrors": []
    }
    create = """mutation($f: JSON!, $r: String) { createPrediction(input: {
      model: "iris-classifier", features: $f, routingKey: $r}) {
      prediction { routedBy } userErrors { code } } }"""
    try:
        response = await post_raw(
            client, {"query": create, "variables": {"f": IRIS_FEATURES, "r": LONE_SURROGATE}}
        )
    finally:
        await graphql(client, SET_SPLIT, {"shares": []})  # the next tests expect no split

    assert response.status_code == 200, response.text
    assert response.json()["data"]["createPrediction"]["prediction"]["routedBy"] == "SPLIT"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_subscription_over_http_is_refused_as_the_clients_mistake(
    client: httpx.AsyncClient, method: str
):
    query = "subscription { catalogueEvents { kind } }"
    if method == "GET":
        response = await client.get("/graphql", params={"query": query})
    else:
        response = await client.post("/graphql", json={"query": query})

    assert response.status_code == 400
    assert "WebSocket" in response.text
