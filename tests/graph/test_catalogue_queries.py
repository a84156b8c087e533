"""The catalogue half of the API, as a GraphiQL user would query it."""

from __future__ import annotations

import httpx
import pytest
from support import graphql

DEMO_MODELS = [
    "breast-cancer-classifier",
    "diabetes-regressor",
    "iris-classifier",
    "wine-classifier",
]


async def test_models_list_the_demo_catalogue_with_default_versions(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ models { nodes { name task defaultVersion { number algorithm
             inputSchema { name type minimum maximum }
             trainingArguments { name value }
             performance(split: TEST, slice: "overall") { split slice numSamples
               metrics { name value } } } } } }""",
    )
    assert "errors" not in body
    nodes = {node["name"]: node for node in body["data"]["models"]["nodes"]}
    assert [name for name in nodes if name in DEMO_MODELS] == DEMO_MODELS
    iris = nodes["iris-classifier"]
    assert iris["task"] == "CLASSIFICATION"
    assert iris["defaultVersion"]["number"] == 1
    assert iris["defaultVersion"]["algorithm"] == "sklearn.linear_model.LogisticRegression"
    features = iris["defaultVersion"]["inputSchema"]
    assert [feature["name"] for feature in features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert features[2] == {"name": "petal_length", "type": "NUMBER", "minimum": 1.0, "maximum": 6.9}
    arguments = {
        argument["name"]: argument["value"]
        for argument in iris["defaultVersion"]["trainingArguments"]
    }
    assert arguments["max_iter"] == 1000
    assert arguments["test_size"] == 0.2
    [overall] = iris["defaultVersion"]["performance"]
    assert overall["split"] == "TEST" and overall["slice"] == "overall"
    assert overall["numSamples"] == 30
    metric_names = {metric["name"] for metric in overall["metrics"]}
    assert {
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
    } <= metric_names
    assert nodes["diabetes-regressor"]["task"] == "REGRESSION"


async def test_metric_lookups_agree_with_performance_slices(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ modelVersion(model: "iris-classifier", version: 1) {
             f1: metric(name: "f1_macro")
             trainF1: metric(name: "f1_macro", split: TRAIN)
             setosaRecall: metric(name: "recall", slice: "class:setosa")
             missing: metric(name: "no_such_metric")
             performance(split: TEST) { slice numSamples metrics { name value } } } }""",
    )
    version = body["data"]["modelVersion"]
    slices = {item["slice"]: item for item in version["performance"]}
    overall = {m["name"]: m["value"] for m in slices["overall"]["metrics"]}
    setosa = {m["name"]: m["value"] for m in slices["class:setosa"]["metrics"]}
    assert version["f1"] == overall["f1_macro"]
    assert version["setosaRecall"] == setosa["recall"]
    assert version["trainF1"] is not None and version["trainF1"] != version["f1"]
    assert version["missing"] is None
    assert "petal_length>=4" in slices


async def test_versions_aliases_and_selection(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ model(name: "iris-classifier") {
               aliases { alias version { number } }
               versions { nodes { number aliases algorithm } }
               byAlias: version(alias: "challenger") { number }
               byNumber: version(number: 1) { number }
               mismatch: version(number: 1, alias: "challenger") { number }
               unknown: version(number: 99) { number } }
             production: modelVersion(model: "iris-classifier", alias: "production") { number }
             default: modelVersion(model: "iris-classifier") { number }
             noModel: modelVersion(model: "nope") { number }
             noAlias: modelVersion(model: "iris-classifier", alias: "staging") { number } }""",
    )
    data = body["data"]
    model = data["model"]
    assert {a["alias"]: a["version"]["number"] for a in model["aliases"]} == {
        "challenger": 2,
        "production": 1,
    }
    assert [v["number"] for v in model["versions"]["nodes"]] == [2, 1]
    assert model["versions"]["nodes"][0]["algorithm"].endswith("RandomForestClassifier")
    assert model["byAlias"] == {"number": 2}
    assert model["byNumber"] == {"number": 1}
    assert model["mismatch"] is None
    assert model["unknown"] is None
    assert data["production"] == {"number": 1} == data["default"]
    assert data["noModel"] is None
    assert data["noAlias"] is None


async def test_unknown_names_resolve_to_null(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ model(name: "no-such-model") { name }
             version: modelVersion(model: "iris-classifier", version: 42) { number }
             modelVersion(model: "iris-classifier", version: 1) {
               trainingArgument(name: "no_such_argument") { value } } }""",
    )
    assert "errors" not in body
    assert body["data"]["model"] is None
    assert body["data"]["version"] is None
    assert body["data"]["modelVersion"]["trainingArgument"] is None


async def test_training_argument_by_name(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ modelVersion(model: "iris-classifier", version: 2) {
             trainingArgument(name: "n_estimators") { name value kind } } }""",
    )
    assert body["data"]["modelVersion"]["trainingArgument"] == {
        "name": "n_estimators",
        "value": 100,
        "kind": "HYPERPARAMETER",
    }


async def test_model_filter_by_task_tag_and_search(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ regression: models(filter: {task: REGRESSION, tag: "demo"}) { nodes { name } }
             iris: models(filter: {tag: "iris"}) { nodes { name } }
             search: models(filter: {search: "WINE"}) { nodes { name } }
             none: models(filter: {search: "%"}) { nodes { name } } }""",
    )
    data = body["data"]
    assert [n["name"] for n in data["regression"]["nodes"]] == ["diabetes-regressor"]
    assert [n["name"] for n in data["iris"]["nodes"]] == ["iris-classifier"]
    assert [n["name"] for n in data["search"]["nodes"]] == ["wine-classifier"]
    assert data["none"]["nodes"] == []


async def test_models_paginate_by_cursor_without_gaps_or_repeats(client: httpx.AsyncClient):
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await graphql(
            client,
            """query($after: String) { models(first: 2, after: $after, filter: {tag: "demo"}) {
                 edges { cursor node { name } }
                 pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""",
            {"after": after},
        )
        connection = body["data"]["models"]
        seen += [edge["node"]["name"] for edge in connection["edges"]]
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert connection["pageInfo"]["startCursor"] == connection["edges"][0]["cursor"]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == DEMO_MODELS
    assert pages == 2


@pytest.mark.parametrize("cursor", ["not-a-cursor", "", "WyJ2ZXJzaW9uIiwxXQ", "%%%"])
async def test_malformed_cursors_are_clear_errors(client: httpx.AsyncClient, cursor: str):
    body = await graphql(
        client,
        "query($after: String) { models(after: $after) { nodes { name } } }",
        {"after": cursor},
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "not a valid cursor" in error["message"]
    assert body["data"] is None


async def test_a_cursor_of_one_connection_is_refused_by_another(client: httpx.AsyncClient):
    body = await graphql(
        client,
        '{ model(name: "iris-classifier") { versions(first: 1) { pageInfo { endCursor } } } }',
    )
    version_cursor = body["data"]["model"]["versions"]["pageInfo"]["endCursor"]
    refused = await graphql(
        client, "query($c: String) { models(after: $c) { nodes { name } } }", {"c": version_cursor}
    )
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_version_pages_walk_newest_first(client: httpx.AsyncClient):
    first = await graphql(
        client,
        '{ model(name: "iris-classifier") { versions(first: 1) { nodes { number } pageInfo { hasNextPage endCursor } } } }',
    )
    page = first["data"]["model"]["versions"]
    assert [n["number"] for n in page["nodes"]] == [2]
    assert page["pageInfo"]["hasNextPage"] is True
    second = await graphql(
        client,
        """query($after: String) { model(name: "iris-classifier") {
             versions(first: 1, after: $after) { nodes { number } pageInfo { hasNextPage } } } }""",
        {"after": page["pageInfo"]["endCursor"]},
    )
    page = second["data"]["model"]["versions"]
    assert [n["number"] for n in page["nodes"]] == [1]
    assert page["pageInfo"]["hasNextPage"] is False


async def test_node_resolves_models_and_versions_by_global_id(client: httpx.AsyncClient):
    body = await graphql(
        client,
        '{ model(name: "wine-classifier") { id name defaultVersion { id number } } }',
    )
    model = body["data"]["model"]
    resolved = await graphql(
        client,
        """query($model: ID!, $version: ID!) {
             model: node(id: $model) { __typename id ... on Model { name } }
             version: node(id: $version) { __typename ... on ModelVersion { number model { name } } } }""",
        {"model": model["id"], "version": model["defaultVersion"]["id"]},
    )
    assert resolved["data"]["model"] == {
        "__typename": "Model",
        "id": model["id"],
        "name": "wine-classifier",
    }
    assert resolved["data"]["version"] == {
        "__typename": "ModelVersion",
        "number": 1,
        "model": {"name": "wine-classifier"},
    }


async def test_node_with_an_unknown_or_malformed_id(client: httpx.AsyncClient):
    unknown = await graphql(
        client, '{ node(id: "TW9kZWw6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw") { id } }'
    )
    assert unknown == {"data": {"node": None}}
    malformed = await graphql(client, '{ node(id: "garbage") { id } }')
    assert malformed["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_page_size_is_capped(client: httpx.AsyncClient):
    body = await graphql(client, "{ models(first: 1000) { nodes { name } } }")
    assert body["errors"][0]["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"
    negative = await graphql(client, "{ models(first: -1) { nodes { name } } }")
    assert negative["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_dataset_labels_and_checksums(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ iris: modelVersion(model: "iris-classifier") { labels artifactSha256 framework
               frameworkVersion trainedAt createdAt dataset { name source numTrainSamples numTestSamples } }
             diabetes: modelVersion(model: "diabetes-regressor") { labels } }""",
    )
    iris = body["data"]["iris"]
    assert iris["labels"] == ["setosa", "versicolor", "virginica"]
    assert len(iris["artifactSha256"]) == 64
    assert iris["framework"] == "scikit-learn"
    assert iris["dataset"] == {
        "name": "iris",
        "source": "sklearn.datasets.load_iris",
        "numTrainSamples": 96,
        "numTestSamples": 30,
    }
    assert iris["createdAt"].endswith("+00:00")
    assert body["data"]["diabetes"]["labels"] is None


async def test_alias_history_tells_which_version_an_alias_pointed_at(client: httpx.AsyncClient):
    body = await graphql(
        client,
        """{ model(name: "iris-classifier") {
             all: aliasHistory { alias fromVersion { number } toVersion { number } changedAt changedBy }
             production: aliasHistory(alias: "production") { alias toVersion { number } } } }""",
    )
    model = body["data"]["model"]
    moves = {(move["alias"], move["toVersion"]["number"]) for move in model["all"]}
    assert moves == {("production", 1), ("challenger", 2)}
    assert all(move["fromVersion"] is None for move in model["all"])
    assert all(move["changedBy"] == "tests" for move in model["all"])
    assert model["production"] == [{"alias": "production", "toVersion": {"number": 1}}]
