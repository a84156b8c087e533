"""The quality overview in one query (the issue's acceptance): per iris version TEST and LIVE
f1_macro side by side, its drift report, and its daily volume, latency and accuracy."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from support import graphql

PREDICT = """mutation($version: Int!, $instances: [JSON!]!) {
  createPredictions(input: {model: "iris-classifier", version: $version, instances: $instances}) {
    predictions { id label } userErrors { code } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { code } } }"""
OVERVIEW = """{
  model(name: "iris-classifier") {
    versions { nodes {
      number
      testF1: metric(name: "f1_macro", split: TEST)
      liveF1: metric(name: "f1_macro", split: LIVE)
      inputDrift { referenceAvailable sampleSize features { feature score drifted } }
    } }
  }
  predictionStats(filter: {model: "iris-classifier"}) {
    count labelled accuracy meanConfidence
    groups(by: [VERSION, TIME], interval: DAY) {
      version bucket count meanLatencyMs p95LatencyMs labelled accuracy model label
    }
    byLabel: groups(by: [LABEL]) { label count }
  }
}"""
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}


async def test_one_query_shows_test_and_live_quality_drift_and_daily_statistics(
    client: httpx.AsyncClient,
):
    for version, instances in ((1, [SETOSA] * 3 + [VIRGINICA] * 2), (2, [VIRGINICA] * 4)):
        body = await graphql(client, PREDICT, {"version": version, "instances": instances})
        made = body["data"]["createPredictions"]["predictions"]
        outcomes = [{"predictionId": p["id"], "label": "setosa"} for p in made[:3]]
        assert (await graphql(client, RECORD, {"outcomes": outcomes}))["data"]["recordOutcomes"][
            "userErrors"
        ] == []

    body = await graphql(client, OVERVIEW)

    assert "errors" not in body, body
    versions = {v["number"]: v for v in body["data"]["model"]["versions"]["nodes"]}
    assert versions[1]["liveF1"] == 1.0  # three setosas, all right
    assert versions[2]["liveF1"] == 0.0  # three virginicas that were setosas
    assert all(v["testF1"] > 0.9 for v in versions.values())
    assert versions[1]["inputDrift"]["sampleSize"] == 5
    assert versions[1]["inputDrift"]["referenceAvailable"] is True
    stats = body["data"]["predictionStats"]
    assert (stats["count"], stats["labelled"], stats["accuracy"]) == (9, 6, 0.5)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert [
        (
            g["version"],
            datetime.fromisoformat(g["bucket"]),
            g["count"],
            g["labelled"],
            g["accuracy"],
        )
        for g in stats["groups"]
    ] == [(1, today, 5, 3, 1.0), (2, today, 4, 3, 0.0)]  # a bucket: largest count first
    # version 2 (the forest) may have scored these rows earlier in the session: the inference
    # cache answers them, with a latency of 0; version 1 (the logistic regression) never uses it
    first, second = stats["groups"]
    assert first["meanLatencyMs"] > 0 and first["p95LatencyMs"] > 0
    assert second["meanLatencyMs"] >= 0 and second["p95LatencyMs"] > 0
    assert {(g["model"], g["label"]) for g in stats["groups"]} == {(None, None)}
    assert stats["byLabel"] == [{"label": "virginica", "count": 6}, {"label": "setosa", "count": 3}]
