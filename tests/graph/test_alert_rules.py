"""Alert rules over GraphQL: created with a secret shown once, listed with their states and
deliveries, refused with coded userErrors (nothing stored), and their changes sent to
`alertsChanged` subscribers as the evaluator moves them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from live_support import Served, Subscriptions, served
from support import make_settings

from modelql.services.alert_evaluation import AlertEvaluator
from modelql.services.catalogue import Catalogue
from modelql.services.drift import DriftPolicy
from modelql.services.freshness import Freshness

CREATE = """mutation($input: CreateAlertRuleInput!) {
  createAlertRule(input: $input) {
    rule { id name model version signal comparison threshold windowSeconds forSeconds state }
    secret userErrors { field code } } }"""
RULES = "{ alertRules { id state lastValue deliveries { attempts } } }"
CHANGED = "subscription { alertsChanged { id name state } }"
VOLUME = {
    "name": "no traffic",
    "model": "iris-classifier",
    "signal": "VOLUME",
    "comparison": "LT",
    "threshold": 1.0,
    "windowSeconds": 60.0,
    "forSeconds": 0.0,
}


def new_evaluator(sessionmaker, period_s: float, name: str) -> AlertEvaluator:
    """An evaluator with a catalogue of its own (no listener: it re-reads every 0 s)."""
    catalogue = Catalogue(Freshness(max_staleness_s=0.0, listening_since=lambda: None))
    return AlertEvaluator(
        sessionmaker,
        period_s=period_s,
        name=name,
        catalogue=catalogue,
        drift_policy=DriftPolicy(),
    )


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    settings = make_settings(
        database_url, data_dir, alert_evaluation_s=3600.0, alert_allow_private_webhooks=True
    )
    async with served(settings) as running:
        yield running


async def _post(server: Served, query: str, variables: dict | None = None) -> dict:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


async def test_created_listed_and_changes_sent_to_subscribers(server: Served, sessionmaker):
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(CHANGED)
        await asyncio.sleep(0.3)
        created = (await _post(server, CREATE, {"input": VOLUME}))["createAlertRule"]
        assert created["userErrors"] == []
        assert len(created["secret"]) >= 32
        rule = created["rule"]
        assert (rule["model"], rule["version"], rule["state"]) == ("iris-classifier", None, "ok")
        message = await connection.receive()
        assert message["id"] == operation
        assert message["payload"]["data"]["alertsChanged"] == [
            {"id": rule["id"], "name": "no traffic", "state": "ok"}
        ]

        evaluator = new_evaluator(sessionmaker, 15.0, "test")
        assert await evaluator.evaluate(datetime(2100, 1, 1, tzinfo=UTC)) is not None
        message = await connection.receive()
        assert message["payload"]["data"]["alertsChanged"] == [
            {"id": rule["id"], "name": "no traffic", "state": "firing"}
        ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        scraped = (await http.get("/metrics")).text
    labels = 'rule="no traffic",model="iris-classifier",signal="VOLUME"'
    assert f"modelql_alert_rule_value{{{labels}}} 0.0" in scraped
    assert f'modelql_alert_rule_state{{{labels},state="firing"}} 1' in scraped
    assert f'modelql_alert_rule_state{{{labels},state="ok"}} 0' in scraped
    listed = (await _post(server, RULES))["alertRules"]
    assert listed == [{"id": rule["id"], "state": "firing", "lastValue": 0.0, "deliveries": []}]

    switched = await _post(
        server,
        "mutation($id: ID!) { setAlertRuleEnabled(id: $id, enabled: false) {"
        " rule { enabled state } userErrors { code } } }",
        {"id": rule["id"]},
    )
    assert switched["setAlertRuleEnabled"]["rule"] == {"enabled": False, "state": "ok"}
    deleted = await _post(
        server,
        "mutation($id: ID!) { deleteAlertRule(id: $id) { userErrors { code } } }",
        {"id": rule["id"]},
    )
    assert deleted["deleteAlertRule"]["userErrors"] == []
    assert (await _post(server, RULES))["alertRules"] == []


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"signal": "MAE"}, ["signal"], "UNSUPPORTED_SIGNAL"),
        ({"model": "nope"}, ["model"], "MODEL_NOT_FOUND"),
        ({"windowSeconds": 0.0}, ["window"], "INVALID_DURATION"),
        ({"forSeconds": -5.0}, ["for"], "INVALID_DURATION"),
        ({"webhookUrl": "file:///etc/passwd"}, ["webhookUrl"], "INVALID_WEBHOOK"),
    ],
)
async def test_bad_input_is_a_coded_user_error(server: Served, change, field, code):
    answer = (await _post(server, CREATE, {"input": VOLUME | change}))["createAlertRule"]
    assert answer == {
        "rule": None,
        "secret": None,
        "userErrors": [{"field": field, "code": code}],
    }
    assert (await _post(server, RULES))["alertRules"] == []


async def test_an_unknown_rule_is_a_user_error(server: Served):
    for rule_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        answer = await _post(
            server,
            "mutation($id: ID!) { deleteAlertRule(id: $id) { userErrors { field code } } }",
            {"id": rule_id},
        )
        assert answer["deleteAlertRule"]["userErrors"] == [
            {"field": ["id"], "code": "ALERT_RULE_NOT_FOUND"}
        ]


PREDICT = """mutation($input: CreatePredictionInput!) {
  createPrediction(input: $input) { prediction { id } userErrors { field code } } }"""
DIABETES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


async def _predict(server: Served, **given: object) -> list[str]:
    """The codes of the request's userErrors (none: stored)."""
    payload = (await _post(server, PREDICT, {"input": given}))["createPrediction"]
    return [error["code"] for error in payload["userErrors"]]


async def test_an_error_rate_rule_fires_above_its_threshold_on_real_failed_requests(
    server: Served, sessionmaker
):
    """Three stored predictions, one refused input and one non-finite output: 2 failed of 5,
    0.4. Not counted: a request that names no version of the model (it fails before one is
    known) and a reused idempotency key (answered before)."""
    rules = {}
    for name, threshold in (("errors above 0.3", 0.3), ("errors above 0.5", 0.5)):
        created = await _post(
            server,
            CREATE,
            {
                "input": VOLUME
                | {
                    "name": name,
                    "model": "diabetes-regressor",
                    "signal": "ERROR_RATE",
                    "comparison": "GT",
                    "threshold": threshold,
                    "windowSeconds": 3600.0,
                }
            },
        )
        rules[name] = created["createAlertRule"]["rule"]["id"]
    ordinary = dict.fromkeys(DIABETES, 0.01)
    for _ in range(2):
        assert await _predict(server, model="diabetes-regressor", features=ordinary) == []
    keyed = {"model": "diabetes-regressor", "idempotencyKey": "error-rate-1"}
    assert await _predict(server, **keyed, features=ordinary) == []
    reused = await _predict(server, **keyed, features=dict.fromkeys(DIABETES, 0.02))
    assert reused == ["IDEMPOTENCY_CONFLICT"]
    refused = await _predict(server, model="diabetes-regressor", features={"age": 0.01})
    unscorable = await _predict(
        server, model="diabetes-regressor", features=dict.fromkeys(DIABETES, 1e308)
    )
    no_version = await _predict(server, model="diabetes-regressor", version=99, features=ordinary)
    assert refused and unscorable == ["MODEL_OUTPUT_INVALID"]
    assert no_version == ["VERSION_NOT_FOUND"]

    evaluator = new_evaluator(sessionmaker, 15.0, "test")
    changes = await evaluator.evaluate(datetime.now(UTC))

    assert changes is not None
    states = {
        rule["id"]: (rule["state"], rule["lastValue"])
        for rule in (await _post(server, RULES))["alertRules"]
    }
    assert states == {
        rules["errors above 0.3"]: ("firing", pytest.approx(0.4)),
        rules["errors above 0.5"]: ("ok", pytest.approx(0.4)),
    }
    async with httpx.AsyncClient(base_url=server.url) as http:
        scraped = (await http.get("/metrics")).text
    labels = 'rule="errors above 0.3",model="diabetes-regressor",signal="ERROR_RATE"'
    assert f"modelql_alert_rule_value{{{labels}}} 0.4" in scraped
    assert f'modelql_alert_rule_state{{{labels},state="firing"}} 1' in scraped
