"""Release safety through the API: aliases moved by admins and looked up in the past, traffic
splits that route and say so, signature diffs, and comparing versions on stored traffic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import app_client, graphql, make_settings

from modelql.graph.types.node import from_global_id
from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services import api_keys, registration
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode

X = np.array([[0.0, 1.0], [0.5, 1.5], [1.0, 0.5], [3.0, 4.0], [3.5, 3.0], [4.0, 5.0]])
Y = np.array(["low", "low", "low", "high", "high", "high"])
POINT = {"a": 1.0, "b": 2.0}

SET_ALIAS = """mutation($input: SetAliasInput!) {
  setAlias(input: $input) { model { aliases { alias version { number } } }
                            userErrors { field code message } } }"""
SET_SPLIT = """mutation($input: SetTrafficSplitInput!) {
  setTrafficSplit(input: $input) {
    model { trafficSplit { version { number } weight } }
    userErrors { field code message } } }"""
PREDICT = """mutation($input: CreatePredictionInput!) {
  createPrediction(input: $input) {
    prediction { id routedBy modelVersion { number } } userErrors { field code message } } }"""
VERSION_AT = """query($m: String!, $at: DateTime!) {
  model(name: $m) { versionAt(alias: "production", at: $at) { number } } }"""


def signature(**changes: dict[str, Any]) -> list[FeatureSpec]:
    specs = {
        "a": {"name": "a", "type": FeatureType.NUMBER, "minimum": 0.0, "maximum": 4.0},
        "b": {"name": "b", "type": FeatureType.NUMBER, "minimum": 0.5, "maximum": 5.0},
    }
    for name, change in changes.items():
        specs[name] = {**specs.get(name, {"name": name}), **change}
    return [FeatureSpec(**spec) for spec in specs.values() if spec.get("type")]


async def register_model(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: ArtifactStore,
    signatures: list[list[FeatureSpec]],
) -> str:
    """A new model with one version per signature, v1 aliased production; its name."""
    name = f"zz-release-{uuid.uuid4().hex[:10]}"  # after the demo models, by name
    for number, specs in enumerate(signatures, start=1):
        columns = [spec.name for spec in specs]
        data = np.array([[row[0] if c == "a" else row[-1] for c in columns] for row in X])
        estimator = LogisticRegression(C=number, max_iter=200).fit(data, Y)
        described = registration.VersionRegistration(
            model_name=name,
            task="CLASSIFICATION",
            algorithm="sklearn.linear_model.LogisticRegression",
            framework_version=sklearn.__version__,
            signature=specs,
            labels=["high", "low"],
            aliases=["production"] if number == 1 else [],
        )
        async with sessionmaker.begin() as session:
            await registration.register_version(
                session, store, described, estimator=estimator, actor="tests"
            )
    return name


@pytest.fixture
async def model(
    sessionmaker: async_sessionmaker[AsyncSession], artifact_store: ArtifactStore, client
) -> str:
    """A model of three versions sharing one signature; production on v1."""
    return await register_model(sessionmaker, artifact_store, [signature()] * 3)


async def payload(http: httpx.AsyncClient, query: str, name: str, **variables: Any) -> dict:
    body = await graphql(http, query, variables)
    assert "errors" not in body, body
    return body["data"][name]


async def clock(engine: AsyncEngine) -> datetime:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT clock_timestamp()"))


# --- aliases in time ----------------------------------------------------------------------


async def test_version_at_follows_every_move_of_the_alias(
    client: httpx.AsyncClient, engine: AsyncEngine, sessionmaker, model: str
):
    moments = [await clock(engine)]  # production already on v1 (set at registration)
    for number in (3, 2, 3):
        result = await payload(
            client,
            SET_ALIAS,
            "setAlias",
            input={"model": model, "alias": "production", "version": number},
        )
        assert result["userErrors"] == []
        assert {"alias": "production", "version": {"number": number}} in result["model"]["aliases"]
        moments.append(await clock(engine))

    answers = []
    for moment in moments:
        found = await payload(client, VERSION_AT, "model", m=model, at=moment.isoformat())
        answers.append(found["versionAt"]["number"])
    assert answers == [1, 3, 2, 3]

    long_ago = (moments[0] - timedelta(days=1)).isoformat()
    assert (await payload(client, VERSION_AT, "model", m=model, at=long_ago))["versionAt"] is None
    history = await payload(
        client,
        """query($m: String!) { model(name: $m) {
             aliasHistory(alias: "production") { toVersion { number } } } }""",
        "model",
        m=model,
    )
    assert [move["toVersion"]["number"] for move in history["aliasHistory"]] == [3, 2, 3, 1]


async def test_set_alias_refusals_name_the_input(client: httpx.AsyncClient, model: str):
    cases = [
        (
            {"model": "no-such-model", "alias": "production", "version": 1},
            "model",
            "MODEL_NOT_FOUND",
        ),
        ({"model": model, "alias": "production", "version": 9}, "version", "VERSION_NOT_FOUND"),
        ({"model": model, "alias": "Not An Alias", "version": 1}, "alias", "INVALID_ALIAS"),
    ]
    for input, field, code in cases:
        result = await payload(client, SET_ALIAS, "setAlias", input=input)
        assert result["model"] is None
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [([field], code)]


# --- traffic splits -----------------------------------------------------------------------


async def predict(http: httpx.AsyncClient, model: str, **input: Any) -> dict:
    result = await payload(
        http, PREDICT, "createPrediction", input={"model": model, "features": POINT, **input}
    )
    assert result["userErrors"] == [], result
    return result["prediction"]


async def test_a_split_routes_requests_naming_no_version_and_says_why(
    client: httpx.AsyncClient, engine: AsyncEngine, model: str
):
    assert (await predict(client, model))["routedBy"] == "DEFAULT"

    result = await payload(
        client,
        SET_SPLIT,
        "setTrafficSplit",
        input={
            "model": model,
            "shares": [{"version": 3, "weight": 1}, {"version": 2, "weight": 3}],
        },
    )
    assert result == {
        "model": {
            "trafficSplit": [
                {"version": {"number": 2}, "weight": 3.0},
                {"version": {"number": 3}, "weight": 1.0},
            ]
        },
        "userErrors": [],
    }

    drawn: dict[str, int] = {}
    for key in (f"user-{n}" for n in range(40)):
        first = await predict(client, model, routingKey=key)
        again = await predict(client, model, routingKey=key)
        assert first["routedBy"] == again["routedBy"] == "SPLIT"
        assert first["modelVersion"] == again["modelVersion"], "a routing key is sticky"
        drawn[key] = first["modelVersion"]["number"]
    assert set(drawn.values()) == {2, 3}

    named = await predict(client, model, version=1, routingKey="user-0")
    aliased = await predict(client, model, alias="production", routingKey="user-0")
    assert (named["routedBy"], named["modelVersion"]["number"]) == ("VERSION", 1)
    assert (aliased["routedBy"], aliased["modelVersion"]["number"]) == ("ALIAS", 1)
    async with engine.connect() as connection:
        stored = await connection.scalar(
            text("SELECT routed_by FROM predictions WHERE id = :id"),
            {"id": from_global_id(named["id"])[1]},
        )
    assert stored == "VERSION"

    removed = await payload(
        client, SET_SPLIT, "setTrafficSplit", input={"model": model, "shares": []}
    )
    assert removed["model"]["trafficSplit"] == []
    after = await predict(client, model, routingKey="user-0")
    assert (after["routedBy"], after["modelVersion"]["number"]) == ("DEFAULT", 1)

    history = await payload(
        client,
        """query($m: String!) { model(name: $m) {
             trafficSplitHistory { shares { version weight } changedBy } } }""",
        "model",
        m=model,
    )
    assert history["trafficSplitHistory"] == [
        {"shares": [], "changedBy": None},
        {
            "shares": [{"version": 3, "weight": 1.0}, {"version": 2, "weight": 3.0}],
            "changedBy": None,
        },
    ]


async def test_bad_weights_are_refused_each_with_its_path(client: httpx.AsyncClient, model: str):
    shares = [
        {"version": 1, "weight": 0},
        {"version": 2, "weight": -1.5},
        {"version": 9, "weight": 1},
        {"version": 1, "weight": 1},
    ]
    result = await payload(
        client, SET_SPLIT, "setTrafficSplit", input={"model": model, "shares": shares}
    )
    assert result["model"] is None
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == [
        (["shares", "0", "weight"], "INVALID_TRAFFIC_SPLIT"),
        (["shares", "1", "weight"], "INVALID_TRAFFIC_SPLIT"),
        (["shares", "2", "version"], "VERSION_NOT_FOUND"),
        (["shares", "3", "version"], "INVALID_TRAFFIC_SPLIT"),
    ]
    split = await payload(
        client,
        "query($m: String!) { model(name: $m) { trafficSplit { weight } } }",
        "model",
        m=model,
    )
    assert split["trafficSplit"] == []


async def test_weights_whose_sum_overflows_are_refused(client: httpx.AsyncClient, model: str):
    """Each is finite, their sum is not: every draw would land on the last version."""
    shares = [{"version": 1, "weight": 1.7e308}, {"version": 2, "weight": 1.7e308}]
    result = await payload(
        client, SET_SPLIT, "setTrafficSplit", input={"model": model, "shares": shares}
    )
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == [
        (["shares"], "INVALID_TRAFFIC_SPLIT")
    ]


# --- scopes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def secured(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with app_client(settings) as http:
        yield http


async def test_catalogue_changes_need_admin_and_comparisons_need_audit(
    secured: httpx.AsyncClient, sessionmaker, model: str
):
    keys = {}
    for scopes in ({Scope.READ, Scope.PREDICT, Scope.AUDIT}, {Scope.ADMIN, Scope.READ}):
        name = f"release-{'-'.join(sorted(scopes))}-{uuid.uuid4().hex[:6]}"
        async with sessionmaker.begin() as session:
            _, keys[Scope.ADMIN in scopes] = await api_keys.create(
                session, name=name, scopes=frozenset(scopes)
            )
    change = {"model": model, "alias": "production", "version": 2}
    compare = """query($m: String!) { compareVersions(model: $m, candidate: {version: 2}) {
                   compared } }"""

    async def ask(query: str, variables: dict, admin: bool) -> dict:
        return await graphql(secured, query, variables, {"Authorization": f"Bearer {keys[admin]}"})

    refused = await ask(SET_ALIAS, {"input": change}, admin=False)
    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN", "requiredScope": "admin"}
    split = {"input": {"model": model, "shares": [{"version": 2, "weight": 1}]}}
    refused = await ask(SET_SPLIT, split, admin=False)
    assert refused["errors"][0]["extensions"]["requiredScope"] == "admin"

    moved = await ask(SET_ALIAS, {"input": change}, admin=True)
    assert moved["data"]["setAlias"]["userErrors"] == []
    history = await ask(
        """query($m: String!) { model(name: $m) { aliasHistory { changedBy } } }""",
        {"m": model},
        admin=True,
    )
    assert history["data"]["model"]["aliasHistory"][0]["changedBy"].startswith("release-admin")

    assert (await ask(compare, {"m": model}, admin=False))["data"]["compareVersions"] == {
        "compared": 0
    }
    refused = await ask(compare, {"m": model}, admin=True)
    assert refused["errors"][0]["extensions"]["requiredScope"] == "audit"


# --- signatures and comparisons -------------------------------------------------------------


async def test_signature_changes_between_two_versions(
    client: httpx.AsyncClient, sessionmaker, artifact_store: ArtifactStore
):
    model = await register_model(
        sessionmaker,
        artifact_store,
        [
            signature(),
            signature(
                a={"minimum": -1.0, "required": False},
                b={"type": FeatureType.INTEGER},
                c={"type": FeatureType.CATEGORY, "allowed_values": ("x", "y")},
            ),
        ],
    )
    found = await payload(
        client,
        """query($m: String!) { modelVersion(model: $m, version: 2) {
             signatureChanges(from: 1) { feature kind before { minimum required type }
                                         after { minimum required type allowedValues } } } }""",
        "modelVersion",
        m=model,
    )
    changes = [(change["feature"], change["kind"]) for change in found["signatureChanges"]]
    assert changes == [
        ("a", "RANGE_CHANGED"),
        ("a", "REQUIRED_CHANGED"),
        ("b", "RETYPED"),
        ("c", "ADDED"),
    ]
    added = found["signatureChanges"][-1]
    assert added["before"] is None and added["after"]["allowedValues"] == ["x", "y"]

    body = await graphql(
        client,
        """query($m: String!) { modelVersion(model: $m, version: 2) {
             signatureChanges(from: 7) { feature } } }""",
        {"m": model},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


COMPARE = """query($m: String!, $candidate: VersionSelector!, $baseline: VersionSelector) {
  compareVersions(model: $m, candidate: $candidate, baseline: $baseline) {
    candidate { number } baseline { number } compared skipped agreement
    labelChanges { from to count } meanAbsoluteDifference baselineMetrics { name } candidateMetrics { name }
    examples(first: 3) { prediction { id label } candidateLabel baselineLabel skippedReason }
  }
}"""


async def test_a_version_compared_with_itself_agrees_everywhere(
    client: httpx.AsyncClient, model: str
):
    for n in range(6):
        await predict(client, model, features={"a": n * 0.8, "b": 5 - n * 0.8})

    found = await payload(
        client,
        COMPARE,
        "compareVersions",
        m=model,
        candidate={"version": 1},
        baseline={"alias": "production"},
    )
    assert (found["candidate"], found["baseline"]) == ({"number": 1}, {"number": 1})
    assert (found["compared"], found["skipped"], found["agreement"]) == (6, 0, 1.0)
    assert found["labelChanges"] == []
    assert found["baselineMetrics"] == found["candidateMetrics"] == []
    assert all(e["candidateLabel"] == e["baselineLabel"] for e in found["examples"])

    served = await payload(client, COMPARE, "compareVersions", m=model, candidate={"version": 1})
    assert (served["baseline"], served["compared"], served["agreement"]) == (None, 6, 1.0)
    assert all(e["baselineLabel"] == e["prediction"]["label"] for e in served["examples"])


async def test_inputs_the_candidate_refuses_are_skipped_with_the_reason(
    client: httpx.AsyncClient, sessionmaker, artifact_store: ArtifactStore
):
    model = await register_model(
        sessionmaker,
        artifact_store,
        [signature(), signature(b={"type": FeatureType.INTEGER})],
    )
    await predict(client, model, features={"a": 1.0, "b": 2.0})  # b whole: v2 takes it
    await predict(client, model, features={"a": 1.0, "b": 2.5})  # v2 refuses 2.5

    found = await payload(client, COMPARE, "compareVersions", m=model, candidate={"version": 2})
    assert (found["compared"], found["skipped"]) == (1, 1)
    reason = found["examples"][0]["skippedReason"]
    assert "version 2" in reason and "'b'" in reason and "whole number" in reason
    assert found["examples"][0]["candidateLabel"] is None


async def test_inputs_the_candidates_estimator_refuses_are_skipped_with_the_reason(
    client: httpx.AsyncClient,
):
    """The forest (v2) works in float32: 1e39 passes v1 and its signature, not v2's trees."""
    features = {"sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
    await predict(client, "iris-classifier", features={"sepal_length": 5.9, **features})
    await predict(client, "iris-classifier", features={"sepal_length": 1e39, **features})

    found = await payload(
        client, COMPARE, "compareVersions", m="iris-classifier", candidate={"version": 2}
    )

    assert (found["compared"], found["skipped"]) == (1, 1)
    reason = found["examples"][0]["skippedReason"]
    assert reason.startswith("Version 2 cannot score this input"), reason


async def test_comparison_refuses_unknown_versions_and_oversized_samples(
    client: httpx.AsyncClient, model: str
):
    unknown = await graphql(client, COMPARE, {"m": model, "candidate": {"version": 9}})
    assert unknown["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argument": "candidate.version",
    }
    huge = await graphql(
        client,
        "query($m: String!) { compareVersions(model: $m, candidate: {version: 1}, sample: 10001) { compared } }",
        {"m": model},
    )
    assert huge["errors"][0]["extensions"]["argument"] == "sample"


async def test_regression_versions_are_compared_by_their_values(client: httpx.AsyncClient):
    diabetes = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03}
    diabetes |= {"s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}
    for bmi in (-0.05, 0.0, 0.06):
        await predict(client, "diabetes-regressor", features={**diabetes, "bmi": bmi})

    found = await payload(
        client,
        """{ compareVersions(model: "diabetes-regressor", candidate: {version: 1}) {
             compared agreement labelChanges { count } meanAbsoluteDifference
             examples { baselineValue candidateValue } } }""",
        "compareVersions",
    )
    assert (found["compared"], found["agreement"], found["labelChanges"]) == (3, None, [])
    assert found["meanAbsoluteDifference"] == pytest.approx(0.0, abs=1e-9)
    assert all(e["baselineValue"] == pytest.approx(e["candidateValue"]) for e in found["examples"])
