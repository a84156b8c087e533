"""The read cases: one question each, asked of ModelQL (a GraphQL document), of PostGraphile (a
document over its generated schema, reading the same data as closely as that schema allows)
and of the hand-written peer (a route answering with ModelQL's JSON), and how to tell that the
answers hold the same data."""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MODEL = "iris-classifier"
DRIFT_MODEL = "wine-classifier"
"""Drift reads a model the write cases do not touch, so its sample is the loaded data."""

DRIFT_CONNECTIONS = 4
DRIFT_SECONDS = 10
"""A drift report reads and bins 10,000 predictions: 0.1 s to seconds of PostgreSQL CPU, so
on two cores more connections only queue, and the answers in flight all finish together,
seconds apart: a shorter round can end before any does."""

View = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Subjects:
    """What the documents name, picked in the loaded data."""

    prediction_id: uuid.UUID
    prediction_created_at: datetime
    """The rest of its primary key (the table is partitioned by it)."""
    day: datetime
    """A whole UTC day inside the loaded span (midnight)."""


@dataclass(frozen=True)
class ReadCase:
    name: str
    modelql: str
    route: str
    """The hand-written peer's GET path."""
    postgraphile: str | None
    """None: PostGraphile's schema cannot ask it (the README says why)."""
    modelql_view: View
    postgraphile_view: View
    """The answers reduced to the same comparable values."""
    max_connections: int | None = None
    """A cap on wrk's connections for answers that cost a large share of a core each."""
    min_seconds: int = 0
    """The shortest round that lets the slowest service answer a few times."""


CATALOGUE = """{ models { nodes { name defaultVersion { number algorithm
  f1: metric(name: "f1_macro") inputSchema { name type minimum maximum }
  performance(split: TEST) { slice numSamples metrics { name value } } } } } }"""
AUDIT = """{ predictions(first: 50, filter: {model: "iris-classifier"}) { nodes { id label
  confidence createdAt modelVersion { number } } } }"""
STATS = """{ predictionStats(filter: {model: "iris-classifier"%s}) { count
  groups(by: [LABEL]) { label count } } }"""
NODE = """{ node(id: "%s") { id ... on Prediction { label confidence latencyMs createdAt inputs
  probabilities { label probability } modelVersion { number } } } }"""
ACCURACY = """{ model(name: "iris-classifier") { versions { nodes { number
  accuracy: metric(name: "accuracy", split: LIVE) } } } }"""
DRIFT = """{ modelVersion(model: "wine-classifier", version: 1) { inputDrift {
  features { feature score drifted } } } }"""

PG_CATALOGUE = """{ allModels(first: 20, orderBy: NAME_ASC) { nodes { name defaultVersion {
  number algorithm inputSchema
  f1: performanceMetricsByVersionId(condition: {split: "TEST", slice: "overall",
    metric: "f1_macro"}) { nodes { value } }
  performance: performanceMetricsByVersionId(condition: {split: "TEST"}, orderBy: ID_ASC) {
    nodes { slice metric value numSamples } } } } } }"""
PG_AUDIT = """{ modelByName(name: "iris-classifier") { predictionsByModelId(first: 50,
  orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { nodeId label confidence createdAt
  modelVersionByModelVersionId { number } } } } }"""
PG_STATS = """{ modelByName(name: "iris-classifier") { predictionDailyRollupsByModelId%s {
  aggregates { sum { count } } groupedAggregates(groupBy: LABEL) { keys sum { count } } } } }"""
PG_NODE = """{ node(nodeId: "%s") { nodeId ... on Prediction { label confidence latencyMs
  createdAt inputs probabilities modelVersionByModelVersionId { number } } } }"""
PG_ACCURACY = """{ modelByName(name: "iris-classifier") { modelVersionsByModelId(first: 20,
  orderBy: NUMBER_DESC) { nodes { number liveAccuracy } } } }"""
PG_DRIFT = """{ modelByName(name: "wine-classifier") { modelVersionsByModelId(condition:
  {number: 1}) { nodes { inputDrift { nodes { feature score drifted } } } } } }"""


def modelql_id(local: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"Prediction:{local}".encode()).decode().rstrip("=")


def postgraphile_id(local: uuid.UUID, created_at: datetime) -> str:
    """PostGraphile v4's node id: base64 of the JSON array [table, *primary key]."""
    key = ["predictions", str(local), created_at.isoformat()]
    return base64.b64encode(json.dumps(key).encode()).decode()


def _from_modelql_id(value: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    return uuid.UUID(raw.split(":", 1)[1])


def _from_postgraphile_id(value: str) -> uuid.UUID:
    return uuid.UUID(json.loads(base64.b64decode(value))[1])


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


# Each answer reduced to comparable values: *_mq from ModelQL's, *_pg from PostGraphile's.


def _catalogue_mq(answer: dict[str, Any]) -> Any:
    found = []
    for node in answer["models"]["nodes"]:
        version = node["defaultVersion"]
        schema = [
            (s["name"], s["type"], s["minimum"], s["maximum"]) for s in version["inputSchema"]
        ]
        performance = [
            (s["slice"], s["numSamples"], [(m["name"], m["value"]) for m in s["metrics"]])
            for s in version["performance"]
        ]
        found.append((node["name"], version["number"], version["algorithm"], version["f1"]))
        found.append((schema, performance))
    return found


def _catalogue_pg(answer: dict[str, Any]) -> Any:
    found = []
    for node in answer["allModels"]["nodes"]:
        version = node["defaultVersion"]
        f1 = version["f1"]["nodes"]
        schema = [
            (s["name"], s["type"], s.get("minimum"), s.get("maximum"))
            for s in version["inputSchema"]
        ]
        slices: dict[str, tuple[str, int, list[tuple[str, float]]]] = {}
        for row in version["performance"]["nodes"]:
            entry = slices.setdefault(row["slice"], (row["slice"], row["numSamples"], []))
            entry[2].append((row["metric"], row["value"]))
        found.append(
            (node["name"], version["number"], version["algorithm"], f1[0]["value"] if f1 else None)
        )
        found.append((schema, list(slices.values())))
    return found


def _audit_mq(answer: dict[str, Any]) -> Any:
    return [
        (_from_modelql_id(n["id"]), n["label"], n["confidence"], _moment(n["createdAt"]), number)
        for n in answer["predictions"]["nodes"]
        for number in [n["modelVersion"]["number"]]
    ]


def _audit_pg(answer: dict[str, Any]) -> Any:
    return [
        (
            _from_postgraphile_id(n["nodeId"]),
            n["label"],
            n["confidence"],
            _moment(n["createdAt"]),
            number,
        )
        for n in answer["modelByName"]["predictionsByModelId"]["nodes"]
        for number in [n["modelVersionByModelVersionId"]["number"]]
    ]


def _stats_mq(answer: dict[str, Any]) -> Any:
    stats = answer["predictionStats"]
    return stats["count"], sorted((g["label"], g["count"]) for g in stats["groups"])


def _stats_pg(answer: dict[str, Any]) -> Any:
    rollups = answer["modelByName"]["predictionDailyRollupsByModelId"]
    groups = [(g["keys"][0] or None, int(g["sum"]["count"])) for g in rollups["groupedAggregates"]]
    return int(rollups["aggregates"]["sum"]["count"] or 0), sorted(groups)


def _node_mq(answer: dict[str, Any]) -> Any:
    node = answer["node"]
    return (
        _from_modelql_id(node["id"]),
        node["label"],
        node["confidence"],
        node["latencyMs"],
        _moment(node["createdAt"]),
        node["inputs"],
        node["probabilities"],
        node["modelVersion"]["number"],
    )


def _node_pg(answer: dict[str, Any]) -> Any:
    node = answer["node"]
    return (
        _from_postgraphile_id(node["nodeId"]),
        node["label"],
        node["confidence"],
        node["latencyMs"],
        _moment(node["createdAt"]),
        node["inputs"],
        node["probabilities"],
        node["modelVersionByModelVersionId"]["number"],
    )


def _accuracy_mq(answer: dict[str, Any]) -> Any:
    return [(n["number"], n["accuracy"]) for n in answer["model"]["versions"]["nodes"]]


def _accuracy_pg(answer: dict[str, Any]) -> Any:
    nodes = answer["modelByName"]["modelVersionsByModelId"]["nodes"]
    return [(n["number"], n["liveAccuracy"]) for n in nodes]


def _drift_mq(answer: dict[str, Any]) -> Any:
    features = answer["modelVersion"]["inputDrift"]["features"]
    return [(f["feature"], f["score"], f["drifted"]) for f in features]


def _drift_pg(answer: dict[str, Any]) -> Any:
    [version] = answer["modelByName"]["modelVersionsByModelId"]["nodes"]
    return [(f["feature"], f["score"], f["drifted"]) for f in version["inputDrift"]["nodes"]]


def read_cases(subjects: Subjects) -> list[ReadCase]:
    """The seven read cases, naming the given prediction and day."""
    after = subjects.day.isoformat()
    before = (subjects.day + timedelta(days=1)).isoformat()
    window = f', createdAfter: "{after}", createdBefore: "{before}"'
    pg_window = f'(filter: {{day: {{greaterThanOrEqualTo: "{after}", lessThan: "{before}"}}}})'
    day_query = f"&created_after={after}&created_before={before}".replace("+", "%2B")
    node_id = modelql_id(subjects.prediction_id)
    return [
        ReadCase(
            "nested catalogue query",
            CATALOGUE,
            "/catalogue",
            PG_CATALOGUE,
            _catalogue_mq,
            _catalogue_pg,
        ),
        ReadCase(
            "audit page of 50",
            AUDIT,
            f"/predictions?model={MODEL}&first=50",
            PG_AUDIT,
            _audit_mq,
            _audit_pg,
        ),
        ReadCase(
            "predictionStats by label, all history",
            STATS % "",
            f"/stats?model={MODEL}",
            PG_STATS % "",
            _stats_mq,
            _stats_pg,
        ),
        ReadCase(
            "predictionStats by label, one day",
            STATS % window,
            f"/stats?model={MODEL}{day_query}",
            PG_STATS % pg_window,
            _stats_mq,
            _stats_pg,
        ),
        ReadCase(
            "node(id:) of a prediction",
            NODE % node_id,
            f"/node/{node_id}",
            PG_NODE % postgraphile_id(subjects.prediction_id, subjects.prediction_created_at),
            _node_mq,
            _node_pg,
        ),
        ReadCase(
            "metric(accuracy, LIVE) per version",
            ACCURACY,
            f"/models/{MODEL}/live-metric?metric=accuracy",
            PG_ACCURACY,
            _accuracy_mq,
            _accuracy_pg,
        ),
        ReadCase(
            "inputDrift of a version",
            DRIFT,
            f"/models/{DRIFT_MODEL}/versions/1/drift",
            PG_DRIFT,
            _drift_mq,
            _drift_pg,
            max_connections=DRIFT_CONNECTIONS,
            min_seconds=DRIFT_SECONDS,
        ),
    ]


def close(left: Any, right: Any) -> bool:
    """Equal, floats within a relative 1e-9 (PostgreSQL may sum in another order)."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(close, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(close(left[k], right[k]) for k in left)
    return left == right


def problems(case: ReadCase, answers: dict[str, dict[str, Any]]) -> list[str]:
    """What is wrong with each service's answer against ModelQL's: GraphQL errors; the
    hand-written peer and ModelQL without its cache must answer exactly ModelQL's JSON,
    PostGraphile the same values."""
    found = [
        f"{service}: {answer['errors']}"
        for service, answer in answers.items()
        if "errors" in answer
    ]
    if found:
        return found
    ours = answers["modelql"]
    for service, answer in answers.items():
        if service == "postgraphile":
            same = close(case.modelql_view(ours["data"]), case.postgraphile_view(answer["data"]))
        else:
            same = answer == ours
        if not same:
            found.append(f"{service} answered {json.dumps(answer)[:400]}")
    if found:
        found.append(f"modelql answered {json.dumps(ours)[:400]}")
    return found
