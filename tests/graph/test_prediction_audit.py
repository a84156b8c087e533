"""Reading predictions back: every audit filter, keyset pages, statistics and SQL economy, each
checked against what PostgreSQL holds."""

from __future__ import annotations

import base64
import json
import statistics
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import graphql, running_app

from modelql.settings import Settings

IRIS = "iris-classifier"
WINE = "wine-classifier"
DIABETES = "diabetes-regressor"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VERSICOLOR = {"sepal_length": 6.4, "sepal_width": 3.2, "petal_length": 4.5, "petal_width": 1.5}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}
BORDERLINE = {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.0, "petal_width": 1.6}

FIELDS = "id label value confidence latencyMs createdAt requestId caller modelVersion { number model { name } }"
CREATE = f"""mutation($input: CreatePredictionInput!) {{ createPrediction(input: $input) {{
  prediction {{ {FIELDS} }} userErrors {{ field code message }} }} }}"""
CREATE_MANY = f"""mutation($input: CreatePredictionsInput!) {{ createPredictions(input: $input) {{
  predictions {{ {FIELDS} }} userErrors {{ field code message }} }} }}"""
LIST = f"""query($first: Int, $after: String, $filter: PredictionFilter) {{
  predictions(first: $first, after: $after, filter: $filter) {{
    edges {{ cursor node {{ {FIELDS} }} }}
    nodes {{ id }}
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
  }}
  predictionStats(filter: $filter) {{ count }}
}}"""
STATS = """query($filter: PredictionFilter) { predictionStats(filter: $filter) {
  count labelCounts { label count } meanLatencyMs p95LatencyMs meanValue firstAt lastAt } }"""


def local_id(global_id: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    type_name, local = raw.split(":", 1)
    assert type_name == "Prediction"
    return uuid.UUID(local)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


async def midpoint_features(http: httpx.AsyncClient, model: str, shift: float = 0.5) -> dict:
    """A valid instance: each feature at `shift` of the way through its training range."""
    body = await graphql(
        http,
        "query($m: String!) { modelVersion(model: $m) { inputSchema { name type minimum maximum } } }",
        {"m": model},
    )
    features = {}
    for spec in body["data"]["modelVersion"]["inputSchema"]:
        value = spec["minimum"] + (spec["maximum"] - spec["minimum"]) * shift
        features[spec["name"]] = round(value) if spec["type"] == "INTEGER" else value
    return features


async def create(http: httpx.AsyncClient, request_id: str, **input: Any) -> list[dict]:
    """Stores one request's predictions under the given request id; returns them."""
    batch = "instances" in input
    body = await graphql(
        http, CREATE_MANY if batch else CREATE, {"input": input}, {"X-Request-ID": request_id}
    )
    assert "errors" not in body, body
    payload = body["data"]["createPredictions" if batch else "createPrediction"]
    assert payload["userErrors"] == [], payload
    return payload["predictions"] if batch else [payload["prediction"]]


async def seed(http: httpx.AsyncClient) -> list[dict]:
    """13 predictions from 8 requests, oldest first: three models, both iris versions."""
    wine = [await midpoint_features(http, WINE, shift) for shift in (0.3, 0.7)]
    diabetes = [await midpoint_features(http, DIABETES, shift) for shift in (0.2, 0.5, 0.8)]
    requests = [
        ("audit-1", {"model": IRIS, "features": SETOSA}),
        ("audit-1", {"model": IRIS, "features": VERSICOLOR}),
        ("audit-2", {"model": IRIS, "features": VIRGINICA}),
        ("audit-2", {"model": IRIS, "alias": "challenger", "features": SETOSA}),
        ("audit-3", {"model": IRIS, "version": 2, "features": VIRGINICA}),
        ("audit-3", {"model": IRIS, "instances": [SETOSA, VERSICOLOR, BORDERLINE]}),
        ("audit-4", {"model": WINE, "instances": wine}),
        ("audit-5", {"model": DIABETES, "instances": diabetes}),
    ]
    created = []
    for request_id, input in requests:
        created.extend(await create(http, request_id, **input))
    assert len(created) == 13
    return created


async def listed(http: httpx.AsyncClient, filter: dict | None, first: int = 100) -> list[dict]:
    """The filtered predictions (one page); checks the connection agrees with predictionStats."""
    body = await graphql(http, LIST, {"first": first, "filter": filter})
    assert "errors" not in body, body
    connection = body["data"]["predictions"]
    assert connection["pageInfo"]["hasNextPage"] is False
    nodes = [edge["node"] for edge in connection["edges"]]
    assert [node["id"] for node in nodes] == [node["id"] for node in connection["nodes"]]
    assert body["data"]["predictionStats"]["count"] == len(nodes)
    return nodes


def ids(predictions: list[dict]) -> list[str]:
    return [prediction["id"] for prediction in predictions]


def newest_first(predictions: list[dict]) -> list[str]:
    """The ids ordered as the API must order them: (createdAt, id) descending."""
    ordered = sorted(
        predictions,
        key=lambda p: (parse_time(p["createdAt"]), local_id(p["id"])),
        reverse=True,
    )
    return ids(ordered)


async def sql_order(engine: AsyncEngine, where: str = "true", **parameters: Any) -> list[uuid.UUID]:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            text(
                "select p.id from predictions p join models m on m.id = p.model_id "
                f"where {where} order by p.created_at desc, p.id desc"
            ),
            parameters,
        )
        return list(rows)


# --- filters --------------------------------------------------------------------------------


async def test_every_filter_field_narrows_the_list(client: httpx.AsyncClient, engine: AsyncEngine):
    created = await seed(client)
    one, two, three, four, five = created[:5]
    batch = created[5:8]
    by_id = {p["id"]: p for p in created}

    def where(**expected: Any) -> list[str]:
        return newest_first([p for p in created if all(f(p) for f in expected.values())])

    # Everything, newest first, exactly as PostgreSQL orders it.
    everything = await listed(client, None)
    assert ids(everything) == newest_first(created)
    assert [local_id(i) for i in ids(everything)] == await sql_order(engine)
    assert await listed(client, {}) == everything

    # model
    iris = await listed(client, {"model": IRIS})
    assert len(iris) == 8
    assert ids(iris) == where(m=lambda p: p["modelVersion"]["model"]["name"] == IRIS)
    assert len(await listed(client, {"model": WINE})) == 2
    assert len(await listed(client, {"model": DIABETES})) == 3
    assert await listed(client, {"model": "no-such-model"}) == []

    # version, alone and with a model
    iris_v2 = await listed(client, {"model": IRIS, "version": 2})
    assert sorted(ids(iris_v2)) == sorted([four["id"], five["id"]])
    assert {p["modelVersion"]["number"] for p in iris_v2} == {2}
    assert len(await listed(client, {"model": IRIS, "version": 1})) == 6
    assert ids(await listed(client, {"version": 2})) == ids(iris_v2)
    assert ids(await listed(client, {"version": 1})) == where(
        v=lambda p: p["modelVersion"]["number"] == 1
    )
    assert await listed(client, {"model": WINE, "version": 2}) == []
    assert await listed(client, {"model": IRIS, "version": 3}) == []

    # label
    setosa = await listed(client, {"label": "setosa"})
    assert {one["id"], four["id"], batch[0]["id"]} <= set(ids(setosa))
    assert ids(setosa) == where(label=lambda p: p["label"] == "setosa")
    assert await listed(client, {"label": "no-such-label"}) == []

    # caller: auth is off, so nothing has a caller
    assert all(p["caller"] is None for p in created)
    assert await listed(client, {"caller": "x"}) == []
    assert ids(await listed(client, {"caller": None})) == ids(everything)

    # requestId
    audit_3 = await listed(client, {"requestId": "audit-3"})
    assert sorted(ids(audit_3)) == sorted([five["id"], *ids(batch)])
    assert {p["requestId"] for p in audit_3} == {"audit-3"}
    assert len(await listed(client, {"requestId": "audit-1"})) == 2
    assert await listed(client, {"requestId": "audit"}) == []

    # createdAfter is inclusive, createdBefore exclusive
    t3, t5 = three["createdAt"], five["createdAt"]
    assert parse_time(one["createdAt"]) < parse_time(two["createdAt"]) < parse_time(t3)
    after_three = await listed(client, {"createdAfter": t3})
    assert three["id"] in ids(after_three)
    assert ids(after_three) == where(t=lambda p: parse_time(p["createdAt"]) >= parse_time(t3))
    assert len(after_three) == 11
    before_three = await listed(client, {"createdBefore": t3})
    assert sorted(ids(before_three)) == sorted([one["id"], two["id"]])
    window = await listed(client, {"createdAfter": t3, "createdBefore": t5})
    assert sorted(ids(window)) == sorted([three["id"], four["id"]])
    assert await listed(client, {"createdAfter": t3, "createdBefore": t3}) == []
    later = (parse_time(created[-1]["createdAt"]) + timedelta(seconds=1)).isoformat()
    assert await listed(client, {"createdAfter": later}) == []
    assert len(await listed(client, {"createdBefore": later})) == 13
    in_other_zone = parse_time(t3).astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert ids(await listed(client, {"createdAfter": in_other_zone.isoformat()})) == ids(
        after_three
    )

    # minConfidence / maxConfidence are inclusive; predictions without confidence never match
    confidences = sorted({p["confidence"] for p in created if p["confidence"] is not None})
    assert len(confidences) >= 4
    middle = confidences[len(confidences) // 2]
    at_least = await listed(client, {"minConfidence": middle})
    at_most = await listed(client, {"maxConfidence": middle})
    assert ids(at_least) == where(
        c=lambda p: p["confidence"] is not None and p["confidence"] >= middle
    )
    assert ids(at_most) == where(
        c=lambda p: p["confidence"] is not None and p["confidence"] <= middle
    )
    assert set(ids(at_least)) & set(ids(at_most)) == {
        p["id"] for p in created if p["confidence"] == middle
    }
    classified = await listed(client, {"minConfidence": 0})
    assert len(classified) == 10
    assert all(by_id[i]["modelVersion"]["model"]["name"] != DIABETES for i in ids(classified))
    assert len(await listed(client, {"minConfidence": 0, "maxConfidence": 1})) == 10
    assert await listed(client, {"minConfidence": 0.9, "maxConfidence": 0.1}) == []

    # every field given must hold
    combined = await listed(client, {"model": IRIS, "label": "setosa", "requestId": "audit-3"})
    assert ids(combined) == [batch[0]["id"]]


async def test_model_and_version_predictions_stay_in_scope(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    created = await seed(client)
    body = await graphql(
        client,
        """query($other: PredictionFilter) {
             iris: model(name: "iris-classifier") {
               predictions { nodes { id modelVersion { number model { name } } } }
               setosa: predictions(filter: {label: "setosa"}) { nodes { id label } }
               wine: predictions(filter: $other) { nodes { id } }
             }
             wine: model(name: "wine-classifier") { predictions { nodes { id } } }
             v2: modelVersion(model: "iris-classifier", version: 2) {
               predictions { nodes { id modelVersion { number model { name } } } }
               v1: predictions(filter: {version: 1}) { nodes { id } }
               audit2: predictions(filter: {requestId: "audit-2"}) { nodes { id } }
             }
             v1: modelVersion(model: "iris-classifier", version: 1) {
               predictions(first: 3) { nodes { id } pageInfo { hasNextPage } }
             }
           }""",
        {"other": {"model": WINE}},
    )
    assert "errors" not in body, body
    data = body["data"]

    def made_by(model: str, number: int | None = None) -> list[str]:
        return newest_first(
            [
                p
                for p in created
                if p["modelVersion"]["model"]["name"] == model
                and number in (None, p["modelVersion"]["number"])
            ]
        )

    assert ids(data["iris"]["predictions"]["nodes"]) == made_by(IRIS)
    assert {p["label"] for p in data["iris"]["setosa"]["nodes"]} == {"setosa"}
    assert len(data["iris"]["setosa"]["nodes"]) >= 3
    assert data["iris"]["wine"]["nodes"] == []
    assert ids(data["wine"]["predictions"]["nodes"]) == made_by(WINE)
    v2 = data["v2"]["predictions"]["nodes"]
    assert ids(v2) == made_by(IRIS, 2)
    assert len(v2) == 2
    assert {(p["modelVersion"]["model"]["name"], p["modelVersion"]["number"]) for p in v2} == {
        (IRIS, 2)
    }
    assert data["v2"]["v1"]["nodes"] == []
    assert ids(data["v2"]["audit2"]["nodes"]) == [created[3]["id"]]
    assert ids(data["v1"]["predictions"]["nodes"]) == made_by(IRIS, 1)[:3]
    assert data["v1"]["predictions"]["pageInfo"]["hasNextPage"] is True


# --- pagination -----------------------------------------------------------------------------


async def walk(
    http: httpx.AsyncClient,
    filter: dict | None,
    first: int,
    during: Any = None,
) -> tuple[list[str], list[dict]]:
    """Every id seen following endCursor, and every page's pageInfo."""
    seen: list[str] = []
    infos: list[dict] = []
    after = None
    while True:
        body = await graphql(http, LIST, {"first": first, "after": after, "filter": filter})
        assert "errors" not in body, body
        connection = body["data"]["predictions"]
        edges = connection["edges"]
        info = connection["pageInfo"]
        infos.append(info)
        assert len(edges) <= first
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        seen.extend(edge["node"]["id"] for edge in edges)
        if during is not None and len(infos) == 2:
            await during()
        if not info["hasNextPage"]:
            return seen, infos
        assert len(edges) == first
        after = info["endCursor"]
        assert len(infos) < 100, "the walk does not end"


async def test_walking_pages_sees_every_prediction_once_newest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    for index in range(10):
        await create(
            client, f"walk-{index}", model=IRIS, features={**SETOSA, "sepal_length": 4 + index / 10}
        )
    for index in range(3):
        await create(client, f"walk-batch-{index}", model=IRIS, instances=[VERSICOLOR] * 5)
    wine = await midpoint_features(client, WINE)
    await create(client, "walk-wine", model=WINE, instances=[wine] * 5)
    expected = await sql_order(engine)
    assert len(expected) == 30

    seen, infos = await walk(client, None, 7)

    assert [local_id(i) for i in seen] == expected
    assert [info["hasNextPage"] for info in infos] == [True, True, True, True, False]
    assert [info["hasPreviousPage"] for info in infos] == [False, True, True, True, True]

    iris_seen, iris_infos = await walk(client, {"model": IRIS}, 7)
    assert [local_id(i) for i in iris_seen] == await sql_order(engine, "m.name = :m", m=IRIS)
    assert len(iris_seen) == 25
    assert iris_infos[-1]["hasNextPage"] is False

    exact, exact_infos = await walk(client, {"model": WINE}, 5)
    assert len(exact) == 5
    assert [info["hasNextPage"] for info in exact_infos] == [False]


async def test_new_predictions_during_a_walk_do_not_shift_its_pages(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    for index in range(4):
        await create(client, f"shift-{index}", model=IRIS, instances=[SETOSA, VIRGINICA, SETOSA])
    before = await sql_order(engine)

    async def more() -> None:
        await create(client, "shift-late", model=IRIS, instances=[VIRGINICA] * 4)

    seen, _ = await walk(client, None, 5, during=more)

    assert [local_id(i) for i in seen] == before
    assert len(await sql_order(engine)) == len(before) + 4


async def test_empty_and_zero_sized_pages(client: httpx.AsyncClient, engine: AsyncEngine):
    empty = await graphql(client, LIST, {"first": 10})
    await create(client, "zero", model=IRIS, features=SETOSA)
    zero = await graphql(client, LIST, {"first": 0})

    assert empty["data"]["predictions"]["edges"] == []
    assert empty["data"]["predictions"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }
    assert zero["data"]["predictions"]["edges"] == []
    assert zero["data"]["predictions"]["pageInfo"]["hasNextPage"] is True


def _cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


MALFORMED_CURSORS = [
    pytest.param("garbage", id="garbage"),
    pytest.param("", id="empty"),
    pytest.param("!!!not base64!!!", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
    pytest.param(_cursor("model", "iris-classifier"), id="model-cursor"),
    pytest.param(_cursor("prediction", "yesterday", str(uuid.uuid4())), id="bad-time"),
    pytest.param(_cursor("prediction", "2026-01-01T00:00:00+00:00", "x"), id="bad-uuid"),
    pytest.param(_cursor("prediction", "2026-01-01T00:00:00+00:00"), id="short"),
    pytest.param(_cursor("prediction", 1, 2), id="numbers"),
    pytest.param(_cursor("prediction", None, None), id="nulls"),
    pytest.param(base64.urlsafe_b64encode(b'{"a": 1}').decode(), id="object"),
]


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS)
async def test_a_malformed_cursor_is_bad_user_input(
    client: httpx.AsyncClient, engine: AsyncEngine, cursor: str
):
    await create(client, "cursor", model=IRIS, features=SETOSA)
    body = await graphql(
        client,
        """query($after: String) {
             predictions(first: 5, after: $after) { nodes { id } }
             model(name: "iris-classifier") { predictions(after: $after) { nodes { id } } } }""",
        {"after": cursor},
    )

    assert body.get("data") is None or body["data"]["predictions"] is None
    codes = {error["extensions"]["code"] for error in body["errors"]}
    assert codes == {"BAD_USER_INPUT"}, body
    assert {tuple(error["path"]) for error in body["errors"]} >= {("predictions",)}
    assert all("after" in error["message"] for error in body["errors"])


async def test_a_naive_timestamp_cursor_is_not_a_500(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    await create(client, "naive", model=IRIS, features=SETOSA)
    cursor = _cursor("prediction", "2999-01-01T00:00:00", str(uuid.uuid4()))

    body = await graphql(
        client,
        "query($after: String) { predictions(after: $after) { nodes { id } } }",
        {"after": cursor},
    )

    for error in body.get("errors", []):
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    if "errors" not in body:
        assert len(body["data"]["predictions"]["nodes"]) == 1


# --- statistics -----------------------------------------------------------------------------

STATS_CASES = [
    pytest.param(None, "true", {}, id="everything"),
    pytest.param({"model": IRIS}, "m.name = :model", {"model": IRIS}, id="iris"),
    pytest.param(
        {"model": IRIS, "version": 2},
        "m.name = :model and v.number = 2",
        {"model": IRIS},
        id="iris-v2",
    ),
    pytest.param({"model": DIABETES}, "m.name = :model", {"model": DIABETES}, id="regressor"),
    pytest.param({"requestId": "audit-3"}, "p.request_id = 'audit-3'", {}, id="request"),
    pytest.param({"label": "setosa"}, "p.label = 'setosa'", {}, id="label"),
    pytest.param({"minConfidence": 0.9}, "p.confidence >= 0.9", {}, id="confident"),
]


@pytest.mark.parametrize(("filter", "where", "parameters"), STATS_CASES)
async def test_stats_equal_a_recomputation_over_the_same_rows(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    filter: dict | None,
    where: str,
    parameters: dict,
):
    await seed(client)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "select p.label, p.value, p.latency_ms, p.created_at from predictions p "
                    "join models m on m.id = p.model_id "
                    "join model_versions v on v.id = p.model_version_id "
                    f"where {where}"
                ),
                parameters,
            )
        ).all()
    assert rows, "the case must select something"

    body = await graphql(client, STATS, {"filter": filter})

    assert "errors" not in body, body
    stats = body["data"]["predictionStats"]
    assert stats["count"] == len(rows)
    expected_labels = Counter(row.label for row in rows if row.label is not None)
    assert {item["label"]: item["count"] for item in stats["labelCounts"]} == expected_labels
    counts = [item["count"] for item in stats["labelCounts"]]
    assert counts == sorted(counts, reverse=True)
    latencies = [row.latency_ms for row in rows]
    assert stats["meanLatencyMs"] == pytest.approx(statistics.fmean(latencies), rel=1e-9)
    # Exact from the raw table; within 5% when the roll-ups' histograms answer, whose first
    # bucket holds everything under 0.001 ms (the schema says; rows the inference cache answered
    # have a latency of 0).
    exact = "confidence" in where
    assert stats["p95LatencyMs"] == pytest.approx(
        float(np.percentile(latencies, 95, method="linear")),
        rel=1e-9 if exact else 0.05,
        abs=0 if exact else 0.0011,
    )
    values = [row.value for row in rows if row.value is not None]
    if values:
        assert stats["meanValue"] == pytest.approx(statistics.fmean(values), rel=1e-9)
    else:
        assert stats["meanValue"] is None
    assert parse_time(stats["firstAt"]) == min(row.created_at for row in rows)
    assert parse_time(stats["lastAt"]) == max(row.created_at for row in rows)


async def test_labels_are_counted_most_frequent_first(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    await create(
        client, "counts", model=IRIS, instances=[VIRGINICA] * 5 + [SETOSA] * 2 + [VERSICOLOR] * 3
    )

    body = await graphql(client, STATS, {"filter": {"model": IRIS}})

    assert body["data"]["predictionStats"]["labelCounts"] == [
        {"label": "virginica", "count": 5},
        {"label": "versicolor", "count": 3},
        {"label": "setosa", "count": 2},
    ]
    assert body["data"]["predictionStats"]["meanValue"] is None


@pytest.mark.parametrize(
    "filter",
    [
        pytest.param(None, id="nothing-stored"),
        pytest.param({"model": "no-such-model"}, id="unknown-model"),
        pytest.param({"createdAfter": "2999-01-01T00:00:00+00:00"}, id="future"),
        pytest.param({"createdAfter": "9999-12-31T01:00:00+00:00"}, id="last-day-there-is"),
        pytest.param({"caller": "x"}, id="caller"),
    ],
)
async def test_stats_of_an_empty_selection(
    client: httpx.AsyncClient, engine: AsyncEngine, filter: dict | None
):
    if filter is not None:
        await seed(client)

    body = await graphql(client, STATS, {"filter": filter})

    assert "errors" not in body, body
    assert body["data"]["predictionStats"] == {
        "count": 0,
        "labelCounts": [],
        "meanLatencyMs": None,
        "p95LatencyMs": None,
        "meanValue": None,
        "firstAt": None,
        "lastAt": None,
    }


# --- SQL economy ----------------------------------------------------------------------------


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(connection, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


NESTED_PAGE = """query($first: Int!) {
  predictions(first: $first) {
    edges { cursor node { id label value modelVersion { number model { name } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
NESTED_PER_MODEL = """query($first: Int!) {
  models { nodes { name predictions(first: $first) {
    nodes { id modelVersion { number model { name } } } } } }
}"""


async def test_nested_pages_issue_a_constant_number_of_statements(
    settings: Settings, demo_catalogue: None, engine: AsyncEngine
):
    async with running_app(settings) as (app, http):
        await create(http, "sql-1", model=IRIS, instances=[SETOSA, VIRGINICA] * 10)
        await create(http, "sql-2", model=IRIS, alias="challenger", instances=[VERSICOLOR] * 15)
        wine = await midpoint_features(http, WINE)
        await create(http, "sql-3", model=WINE, instances=[wine] * 10)
        diabetes = await midpoint_features(http, DIABETES)
        await create(http, "sql-4", model=DIABETES, instances=[diabetes] * 5)
        app_engine: AsyncEngine = app.state.runtime.engine
        await graphql(http, NESTED_PAGE, {"first": 1})  # warm-up

        counts: dict[tuple[str, int], int] = {}
        bodies: dict[tuple[str, int], dict] = {}
        for name, query in (("page", NESTED_PAGE), ("per-model", NESTED_PER_MODEL)):
            for first in (5, 50):
                with counting_statements(app_engine) as statements:
                    bodies[(name, first)] = await graphql(http, query, {"first": first})
                counts[(name, first)] = len(statements)

    page = bodies[("page", 50)]["data"]["predictions"]
    assert "errors" not in bodies[("page", 50)]
    assert len(page["edges"]) == 50
    assert page["pageInfo"]["hasNextPage"] is False
    pairs = Counter(
        (edge["node"]["modelVersion"]["model"]["name"], edge["node"]["modelVersion"]["number"])
        for edge in page["edges"]
    )
    assert pairs == {(IRIS, 1): 20, (IRIS, 2): 15, (WINE, 1): 10, (DIABETES, 1): 5}
    assert len(bodies[("page", 5)]["data"]["predictions"]["edges"]) == 5
    per_model = {
        node["name"]: node["predictions"]["nodes"]
        for node in bodies[("per-model", 50)]["data"]["models"]["nodes"]
    }
    assert len(per_model[IRIS]) == 35 and len(per_model[WINE]) == 10
    assert all(
        p["modelVersion"]["model"]["name"] == name
        for name, nodes in per_model.items()
        for p in nodes
    )

    assert counts[("page", 5)] == counts[("page", 50)], counts
    assert counts[("page", 50)] <= 3, counts
    assert counts[("per-model", 5)] == counts[("per-model", 50)], counts


PAGE_SHAPES = {
    "labels only": ("{ predictions(first: 5) { nodes { id label } } }", set()),
    "inputs through a fragment": (
        "{ predictions(first: 5) { nodes { id ...Scored } } } "
        "fragment Scored on Prediction { inputs }",
        {"inputs"},
    ),
    "probabilities through edges": (
        "{ predictions(first: 5) { edges { node { id ... on Prediction { probabilities "
        "{ label probability } } } } } }",
        {"probabilities"},
    ),
    "inputs under @include": (
        "query($with: Boolean!) { predictions(first: 5) { nodes { id inputs @include(if: $with) "
        "label } } }",
        {"inputs", "probabilities"},
    ),
}


@pytest.mark.parametrize("shape", PAGE_SHAPES)
async def test_a_page_reads_inputs_and_probabilities_only_when_a_prediction_asks_for_them(
    settings: Settings, demo_catalogue: None, shape: str
):
    document, read = PAGE_SHAPES[shape]
    async with running_app(settings) as (app, http):
        stored = await create(http, "columns", model=IRIS, instances=[SETOSA, VIRGINICA])
        full = await graphql(
            http,
            "{ predictions(first: 5) { nodes { id inputs probabilities { label probability } } } }",
        )
        with counting_statements(app.state.runtime.engine) as statements:
            body = await graphql(http, document, {"with": True} if "$with" in document else None)

    assert "errors" not in body, body
    [page] = [s for s in statements if "FROM predictions" in s and "ORDER BY" in s]
    assert {c for c in ("inputs", "probabilities") if f"predictions.{c}" in page} == read
    nodes = body["data"]["predictions"].get("nodes") or [
        edge["node"] for edge in body["data"]["predictions"]["edges"]
    ]
    assert [node["id"] for node in nodes] == [p["id"] for p in reversed(stored)]
    answers = {node["id"]: node for node in full["data"]["predictions"]["nodes"]}
    for node in nodes:
        for field in ("inputs", "probabilities"):
            if field in node:
                assert node[field] == answers[node["id"]][field]
    assert any("inputs" in node or "probabilities" in node for node in nodes) == bool(read)
