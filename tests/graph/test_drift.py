"""Drift against the training profile: a sample drawn from the training data is not flagged,
a shifted one is; bins are shares ready to chart; small samples get no score."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split
from support import graphql

from modelql.models.training import RANDOM_STATE, TEST_SIZE, VALIDATION_SIZE

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  userErrors { code } } }"""
DRIFT = """{ model(name: "iris-classifier") { version(number: 1) { inputDrift {
  referenceAvailable sampleSize
  features { feature method score drifted outOfRangeRate bins { label reference live } }
  prediction { feature score drifted bins { label reference live } } } } } }"""


def training_rows() -> np.ndarray:
    """The iris rows version 1 was trained on (the same splits as training)."""
    iris = datasets.load_iris()
    rest, _ = train_test_split(
        np.arange(len(iris.target)),
        test_size=TEST_SIZE,
        random_state=RANDOM_STATE,
        stratify=iris.target,
    )
    train, _ = train_test_split(
        rest,
        test_size=VALIDATION_SIZE,
        random_state=RANDOM_STATE,
        stratify=iris.target[rest],
    )
    return iris.data[train]


async def predict(http: httpx.AsyncClient, rows: np.ndarray) -> None:
    instances = [dict(zip(NAMES, row.tolist(), strict=True)) for row in rows]
    body = await graphql(
        http, PREDICT, {"input": {"model": "iris-classifier", "version": 1, "instances": instances}}
    )
    assert body["data"]["createPredictions"]["userErrors"] == []


async def drift(http: httpx.AsyncClient) -> dict:
    body = await graphql(http, DRIFT)
    assert "errors" not in body, body
    return body["data"]["model"]["version"]["inputDrift"]


async def test_a_sample_of_the_training_data_has_not_drifted(client: httpx.AsyncClient):
    rows = training_rows()
    await predict(client, rows[np.random.default_rng(1).integers(0, len(rows), 400)])

    report = await drift(client)

    assert (report["referenceAvailable"], report["sampleSize"]) == (True, 400)
    assert [f["feature"] for f in report["features"]] == NAMES
    for feature in [*report["features"], report["prediction"]]:
        assert feature["drifted"] is False, feature
        assert feature["score"] < 0.1
    assert {f["outOfRangeRate"] for f in report["features"]} == {0.0}


async def test_a_shifted_sample_has_drifted(client: httpx.AsyncClient):
    rows = training_rows()[np.random.default_rng(2).integers(0, 96, 400)].copy()
    rows[:, 2] += 2.5  # petal length

    await predict(client, rows)

    report = await drift(client)

    petal = report["features"][2]
    assert (petal["feature"], petal["method"], petal["drifted"]) == ("petal_length", "psi", True)
    assert petal["score"] > 1
    assert petal["outOfRangeRate"] == pytest.approx(np.mean(rows[:, 2] > 6.9))
    assert report["features"][0]["drifted"] is False
    assert report["prediction"]["drifted"] is True


async def test_bins_are_shares_ready_to_chart(client: httpx.AsyncClient):
    await predict(client, training_rows()[:40])

    report = await drift(client)

    for feature in [*report["features"], report["prediction"]]:
        assert sum(b["reference"] for b in feature["bins"]) == pytest.approx(1)
        assert sum(b["live"] for b in feature["bins"]) == pytest.approx(1)
    labels = [b["label"] for b in report["features"][2]["bins"]]
    assert labels[0].startswith("< ") and labels[-1].startswith(">= ")
    assert {b["label"] for b in report["prediction"]["bins"]} == {
        "setosa",
        "versicolor",
        "virginica",
    }


async def test_too_small_a_sample_gets_no_score(client: httpx.AsyncClient):
    await predict(client, training_rows()[:5])

    report = await drift(client)

    assert report["sampleSize"] == 5
    assert {(f["score"], f["drifted"]) for f in report["features"]} == {(None, None)}
