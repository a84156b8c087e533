"""Abusive documents are refused with their own code before any resolver runs; unexpected
errors are masked; responses follow GraphQL over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from support import app_client, graphql, make_settings, running_app

from modelql.services import catalogue, prediction_audit
from modelql.settings import Settings


def nested_query(depth: int) -> str:
    """`{ models { nodes { defaultVersion { model { defaultVersion { ... } } } } } }`"""
    fields = [("defaultVersion", "model")[level % 2] for level in range(depth)]
    leaf = "name" if fields[-1] == "model" else "number"
    opening = " ".join(f"{field} {{" for field in fields)
    return f"{{ models {{ nodes {{ {opening} {leaf} {'}' * depth} }} }} }}"


async def test_a_query_nested_40_levels_is_refused(client: httpx.AsyncClient):
    body = await graphql(client, nested_query(40))
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert body.get("data") is None


async def test_a_query_within_the_depth_limit_runs(client: httpx.AsyncClient):
    body = await graphql(client, nested_query(6))
    assert "errors" not in body


async def test_a_document_with_2000_aliases_is_refused(client: httpx.AsyncClient):
    aliases = " ".join(f"a{index}: __typename" for index in range(2000))
    body = await graphql(client, f"{{ {aliases} }}")
    assert body["errors"][0]["extensions"]["code"] in {"TOO_MANY_ALIASES", "TOO_MANY_TOKENS"}
    assert body.get("data") is None


async def test_more_aliases_than_allowed_are_refused_with_their_own_code(
    client: httpx.AsyncClient,
):
    allowed = " ".join(f"a{index}: __typename" for index in range(50))
    assert "errors" not in await graphql(client, f"{{ {allowed} }}")
    body = await graphql(client, f"{{ {allowed} extra: __typename }}")
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"


async def test_a_document_with_too_many_tokens_is_refused(client: httpx.AsyncClient):
    document = "{ " + "__typename " * 5_000 + "}"
    body = await graphql(client, document)
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_TOKENS"


async def test_a_one_megabyte_document_that_is_mostly_a_comment_is_refused_unparsed(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    """Comments count no tokens: the length cap is what keeps them from costing parse time."""
    parsed: list[str] = []
    monkeypatch.setattr("strawberry.schema.schema.parse", lambda *a, **k: parsed.append("x"))
    document = "#" + "x" * 1_000_000 + "\n{ __typename }"
    body = await graphql(client, document)
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_LONG", "maximum": 65_536}
    assert body["data"] is None
    assert parsed == []


async def test_a_document_at_the_length_cap_runs(database_url: str, data_dir: Path):
    settings = make_settings(database_url, data_dir, max_query_length=1_000)
    document = "{ __typename }".ljust(1_000)
    async with app_client(settings) as http:
        assert await graphql(http, document) == {"data": {"__typename": "Query"}}
        refused = await graphql(http, document + " ")
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_LONG"


async def test_a_body_over_the_cap_is_413(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }", "padding": "x" * 5_000_000}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_an_operation_over_the_time_limit_is_stopped(
    database_url: str, data_dir: Path, demo_catalogue: None
):
    settings = make_settings(database_url, data_dir, execution_timeout_s=1e-6)
    async with app_client(settings) as http:
        body = await graphql(http, "{ models { nodes { name } } }")
    assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"


async def test_unexpected_errors_are_masked_and_carry_the_request_id(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("SELECT secret FROM /srv/modelql/internal.py line 42")

    monkeypatch.setattr(catalogue.Catalogue, "model_page", broken)
    response = await client.post(
        "/graphql",
        json={"query": "{ models { nodes { name } } }"},
        headers={"X-Request-ID": "masked-1"},
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "masked-1"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert any("secret" in (record.exc_text or "") for record in caplog.records)


async def test_client_errors_are_not_logged_as_server_errors(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    await graphql(client, "{ models(first: 1000) { nodes { name } } }")
    await graphql(client, "{ nope }")
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", "{ __typename }"), ("application/xml", "<q/>")],
)
async def test_wrong_content_types_get_a_4xx(client: httpx.AsyncClient, content_type, body):
    response = await client.post("/graphql", content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500


async def test_malformed_json_gets_400(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql", content="{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "{ nope }",
        "{ models(",
        "{" + "#" * 70_000 + "}",
        "query($n: Int!) { models(first: $n) { nodes { name } } }",
    ],
    ids=["validation", "parse", "too-long", "missing-variable"],
)
async def test_with_graphql_response_json_a_request_error_has_no_data_entry(
    client: httpx.AsyncClient, query: str
):
    """GraphQL over HTTP: a request error is 400 and its body has `errors` only."""
    response = await client.post(
        "/graphql",
        json={"query": query},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"]


@pytest.mark.parametrize("body", ["null", "5", '"q"', "true"])
async def test_a_json_body_that_is_not_an_object_is_400(client: httpx.AsyncClient, body: str):
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_null_variables_in_a_get_query_are_no_variables(client: httpx.AsyncClient):
    response = await client.get("/graphql", params={"query": "{ __typename }", "variables": "null"})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_variable_a_custom_scalar_refuses_has_a_code(client: httpx.AsyncClient):
    query = "query($d: DateTime) { predictions(filter: {createdAfter: $d}) { nodes { id } } }"
    body = await graphql(client, query, {"d": "yesterday"})
    [error] = body["errors"]
    assert error["message"].startswith("Variable '$d' has invalid value")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_value_the_output_type_cannot_represent_has_a_code(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    async def huge_count(*args: object, **kwargs: object) -> prediction_audit.Totals:
        return prediction_audit.Totals(2**40, None, None, None, None, None, 0, 0, 0)

    monkeypatch.setattr(prediction_audit, "totals", huge_count)
    body = await graphql(client, "{ predictionStats { count } }")
    [error] = body["errors"]
    assert "cannot represent" in error["message"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_a_websocket_speaking_another_protocol_is_refused_cleanly(settings: Settings):
    """Only graphql-transport-ws is served: another subprotocol gets close code 4406, never a
    500 (the legacy graphql-ws protocol is off)."""
    sent: list[dict] = []
    messages = iter([{"type": "websocket.connect"}])

    async def receive() -> dict:
        return next(messages, {"type": "websocket.disconnect", "code": 1000})

    async def send(message: dict) -> None:
        sent.append(message)

    async with running_app(settings) as (app, _http):
        scope = {
            "type": "websocket",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"sec-websocket-protocol", b"graphql-ws"),
            ],
            "subprotocols": ["graphql-ws"],
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "app": app,
        }
        await app(scope, receive, send)
    closes = [message for message in sent if message["type"] == "websocket.close"]
    assert [close["code"] for close in closes] == [4406]
    assert not [message for message in sent if message["type"] == "http.response.start"]


async def test_graphql_response_media_type_is_honoured(client: httpx.AsyncClient):
    accept = {"accept": "application/graphql-response+json"}
    ok = await client.post("/graphql", json={"query": "{ __typename }"}, headers=accept)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    invalid = await client.post("/graphql", json={"query": "{ nope }"}, headers=accept)
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    plain = await client.post("/graphql", json={"query": "{ nope }"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")


async def test_production_turns_off_introspection_and_graphiql(
    database_url: str, data_dir: Path, demo_catalogue: None
):
    settings = make_settings(database_url, data_dir, environment="production")
    async with app_client(settings) as http:
        introspection = await graphql(http, "{ __schema { types { name } } }")
        page = await http.get("/graphql", headers={"accept": "text/html"})
        catalogue_query = await graphql(http, "{ models { nodes { name } } }")
    assert introspection["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert page.status_code == 404
    assert "errors" not in catalogue_query
