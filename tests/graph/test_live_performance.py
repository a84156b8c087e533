"""The LIVE split: metrics from stored predictions and their outcomes equal scikit-learn's own
functions on the same (outcome, prediction) pairs, per class and per stored slice, in a window,
in one SQL statement whatever the number of versions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sklearn import datasets
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    root_mean_squared_error,
)
from support import graphql, running_app
from test_statement_count import counting_statements

from modelql.models.metrics import PerformanceRecord
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services.errors import RegistrationError
from modelql.services.registration import VersionRegistration
from modelql.settings import Settings

PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id label value inputs } userErrors { code } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { code } } }"""
LIVE = """query($model: String!, $since: DateTime, $until: DateTime) { model(name: $model) {
  versions { nodes { number
    live: performance(split: LIVE, since: $since, until: $until) {
      split slice numSamples metrics { name value } }
    f1: metric(name: "f1_macro", split: LIVE, since: $since, until: $until)
    r2: metric(name: "r2", split: LIVE, since: $since, until: $until)
    test: metric(name: "f1_macro") } } } }"""


@pytest.fixture(scope="module")
async def app_and_client(
    settings: Settings, demo_catalogue: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings) as running:
        yield running


async def predict_and_label(
    http: httpx.AsyncClient, model: str, version: int, rows: list[dict], truths: list
) -> list[dict]:
    """Store predictions of `rows`, then record `truths` (None: leave unlabelled)."""
    body = await graphql(
        http, PREDICT, {"input": {"model": model, "version": version, "instances": rows}}
    )
    made = body["data"]["createPredictions"]["predictions"]
    key = "label" if isinstance(next(t for t in truths if t is not None), str) else "value"
    outcomes = [
        {"predictionId": p["id"], key: truth}
        for p, truth in zip(made, truths, strict=True)
        if truth is not None
    ]
    assert (await graphql(http, RECORD, {"outcomes": outcomes}))["data"]["recordOutcomes"][
        "userErrors"
    ] == []
    return [{**p, "truth": truth} for p, truth in zip(made, truths, strict=True)]


def iris_rows(rng: np.random.Generator, count: int) -> list[dict]:
    iris = datasets.load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    picked = iris.data[rng.integers(0, len(iris.data), count)] + rng.normal(0, 0.3, (count, 4))
    return [dict(zip(names, np.round(row, 2).tolist(), strict=True)) for row in picked]


def expected_classification(pairs: list[dict], labels: list[str]) -> dict[str, dict]:
    truth = [p["truth"] for p in pairs]
    predicted = [p["label"] for p in pairs]
    overall = {"accuracy": accuracy_score(truth, predicted)}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, predicted, average=average, zero_division=0
        )
        overall |= {f"precision_{average}": precision, f"recall_{average}": recall}
        overall[f"f1_{average}"] = f1
    expected = {"overall": overall}
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    for index, label in enumerate(labels):
        expected[f"class:{label}"] = {
            "precision": precision[index],
            "recall": recall[index],
            "f1": f1[index],
            "support": support[index],
        }
    return expected


def as_dict(live: list[dict]) -> dict[str, dict]:
    return {group["slice"]: {m["name"]: m["value"] for m in group["metrics"]} for group in live}


def assert_metrics_equal(ours: dict[str, dict], expected: dict[str, dict]) -> None:
    for slice_name, metrics in expected.items():
        assert ours[slice_name] == pytest.approx(metrics, abs=1e-12), slice_name


async def test_live_classification_metrics_equal_scikit_learns(app_and_client):
    app, http = app_and_client
    rng = np.random.default_rng(7)
    labels = ["setosa", "versicolor", "virginica"]
    labelled: dict[int, list[dict]] = {}
    for version in (1, 2):
        rows = iris_rows(rng, 80)
        truths = [None if i % 5 == 0 else str(rng.choice(labels)) for i in range(80)]
        made = await predict_and_label(http, "iris-classifier", version, rows, truths)
        labelled[version] = [p for p in made if p["truth"] is not None]

    with counting_statements(app) as statements:
        body = await graphql(http, LIVE, {"model": "iris-classifier"})
    versions = {v["number"]: v for v in body["data"]["model"]["versions"]["nodes"]}

    assert sum("latest_outcomes" in statement for statement in statements) == 1
    for number, pairs in labelled.items():
        ours = as_dict(versions[number]["live"])
        assert_metrics_equal(ours, expected_classification(pairs, labels))
        sliced = [p for p in pairs if p["inputs"]["petal_length"] >= 4]
        assert ours["petal_length>=4"] == pytest.approx(
            expected_classification(sliced, labels)["overall"], abs=1e-12
        )
        counts = {g["slice"]: g["numSamples"] for g in versions[number]["live"]}
        assert counts["overall"] == len(pairs) == 64
        assert counts["petal_length>=4"] == len(sliced)
        assert {g["split"] for g in versions[number]["live"]} == {"LIVE"}
        assert versions[number]["f1"] == pytest.approx(ours["overall"]["f1_macro"])
        assert versions[number]["test"] is not None


async def test_live_regression_metrics_equal_scikit_learns(app_and_client):
    _, http = app_and_client
    rng = np.random.default_rng(11)
    diabetes = datasets.load_diabetes()
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    picked = rng.integers(0, len(diabetes.data), 50)
    rows = [dict(zip(names, diabetes.data[i].tolist(), strict=True)) for i in picked]
    truths = [float(diabetes.target[i]) for i in picked]

    made = await predict_and_label(http, "diabetes-regressor", 1, rows, truths)
    body = await graphql(http, LIVE, {"model": "diabetes-regressor"})

    (version,) = body["data"]["model"]["versions"]["nodes"]
    truth, predicted = truths, [p["value"] for p in made]
    ours = as_dict(version["live"])
    assert ours["overall"] == pytest.approx(
        {
            "rmse": root_mean_squared_error(truth, predicted),
            "mae": mean_absolute_error(truth, predicted),
            "r2": r2_score(truth, predicted),
        },
        rel=1e-9,
    )
    bmi = [i for i, row in enumerate(rows) if row["bmi"] >= 0]
    assert ours["bmi>=0"]["r2"] == pytest.approx(
        r2_score([truth[i] for i in bmi], [predicted[i] for i in bmi]), rel=1e-9
    )
    assert version["r2"] == pytest.approx(ours["overall"]["r2"])


async def test_a_window_outside_every_prediction_has_no_live_metrics(app_and_client):
    _, http = app_and_client
    rows = iris_rows(np.random.default_rng(3), 5)
    await predict_and_label(http, "iris-classifier", 1, rows, ["setosa"] * 5)

    inside = await graphql(
        http, LIVE, {"model": "iris-classifier", "since": "2000-01-01T00:00:00Z"}
    )
    before = await graphql(
        http, LIVE, {"model": "iris-classifier", "until": "2000-01-01T00:00:00Z"}
    )

    (one,) = [v for v in inside["data"]["model"]["versions"]["nodes"] if v["number"] == 1]
    assert one["live"][0]["numSamples"] == 5
    for version in before["data"]["model"]["versions"]["nodes"]:
        assert (version["live"], version["f1"]) == ([], None)


def test_live_metrics_cannot_be_registered():
    registration = VersionRegistration(
        model_name="m",
        task="REGRESSION",
        algorithm="a",
        framework_version="1",
        signature=[FeatureSpec("x", FeatureType.NUMBER)],
        performance=[PerformanceRecord("LIVE", "overall", 1, {"r2": 1.0})],
    )
    with pytest.raises(RegistrationError, match="LIVE"):
        registration.check()


ROLLED_AND_RAW = """{ model(name: "iris-classifier") { version(number: 1) {
  rolled: metric(name: "accuracy", split: LIVE)
  rolledSince: metric(name: "accuracy", split: LIVE, since: "2000-01-01T00:00:00Z")
  rawSince: metric(name: "accuracy", split: LIVE, since: "2000-01-01T00:00:01Z")
  raw: performance(split: LIVE) { slice metrics { name value } } } } }"""


async def test_corrections_move_the_outcome_rollups_like_the_outcomes(app_and_client):
    """Whole-hour windows read the outcome roll-ups; they agree with the outcomes after
    corrections (other windows and named slices read the outcomes themselves)."""
    _, http = app_and_client
    rows = iris_rows(np.random.default_rng(5), 12)
    made = await predict_and_label(http, "iris-classifier", 1, rows, ["setosa"] * 12)
    corrections = [{"predictionId": p["id"], "label": p["label"]} for p in made[:7]]
    assert (await graphql(http, RECORD, {"outcomes": corrections}))["data"]["recordOutcomes"][
        "userErrors"
    ] == []

    body = await graphql(http, ROLLED_AND_RAW)

    version = body["data"]["model"]["version"]
    truth = [p["label"] for p in made[:7]] + ["setosa"] * 5
    expected = accuracy_score(truth, [p["label"] for p in made])
    raw = as_dict(version["raw"])["overall"]["accuracy"]
    assert version["rolled"] == version["rolledSince"] == version["rawSince"] == raw
    assert raw == pytest.approx(expected)
