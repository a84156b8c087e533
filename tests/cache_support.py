"""What the response-cache tests share: the documents they read and change, the changes made
through the API, and the generated sequences of changes and reads that the property tests run
against replicas (in one process or several)."""

from __future__ import annotations

import httpx
from hypothesis import strategies as st
from support import graphql

CATALOGUE = """{ models { nodes { name defaultVersion { number algorithm
  f1: metric(name: "f1_macro") inputSchema { name type } } } } }"""
ALIASES = '{ model(name: "iris-classifier") { aliases { alias version { number } } } }'
STATS = """{ predictionStats(filter: {model: "iris-classifier"}) { count labelled
  groups(by: [LABEL]) { label count } } }"""
LIVE = """{ model(name: "iris-classifier") { versions { nodes { number
  accuracy: metric(name: "accuracy", split: LIVE) } } } }"""
AUDIT = """query Page($first: Int!) { predictions(first: $first,
  filter: {model: "iris-classifier"}) { nodes { id label modelVersion { number } } } }"""
PREDICT = """mutation($version: Int!) { createPrediction(input: {model: "iris-classifier",
  version: $version, features: {sepal_length: 6.1, sepal_width: 2.8, petal_length: 4.7,
  petal_width: 1.2}}) { prediction { id label } userErrors { code } } }"""
SET_ALIAS = """mutation($version: Int!) { setAlias(input: {model: "iris-classifier",
  alias: "production", version: $version}) { userErrors { code } } }"""
RECORD = """mutation($id: ID!) { recordOutcomes(input: {outcomes: [{predictionId: $id,
  label: "versicolor"}]}) { userErrors { code } } }"""
READ_VARIABLES = {"first": 5}
"""What every generated read sends (AUDIT needs it; the others ignore it)."""


async def post(http: httpx.AsyncClient, query: str, variables: dict | None = None) -> bytes:
    """The answer's bytes, as a client would cache or compare them."""
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.content


async def predict(http: httpx.AsyncClient, version: int = 1) -> str:
    body = await graphql(http, PREDICT, {"version": version})
    assert body["data"]["createPrediction"]["userErrors"] == [], body
    return body["data"]["createPrediction"]["prediction"]["id"]


async def set_production(http: httpx.AsyncClient, version: int) -> None:
    body = await graphql(http, SET_ALIAS, {"version": version})
    assert body["data"]["setAlias"]["userErrors"] == [], body


def operations(*, max_size: int) -> st.SearchStrategy[list[tuple[str, int, str]]]:
    """(kind, which replica, query read): changes ("predict", "alias", "outcome") and reads."""
    return st.lists(
        st.tuples(
            st.sampled_from(["predict", "alias", "outcome", "read", "read"]),
            st.integers(0, 1),
            st.sampled_from([CATALOGUE, ALIASES, STATS, LIVE, AUDIT]),
        ),
        min_size=3,
        max_size=max_size,
    )


class Changes:
    """The changes of a generated sequence, alternating versions 1 and 2 as they go."""

    def __init__(self) -> None:
        self.predictions: list[str] = []

    async def make(self, kind: str, http: httpx.AsyncClient) -> bool:
        """Make the change `kind` names; False when it changed nothing (an outcome before any
        prediction)."""
        version = 1 + len(self.predictions) % 2
        if kind == "predict":
            self.predictions.append(await predict(http, version))
        elif kind == "alias":
            await set_production(http, version)
        elif kind == "outcome" and self.predictions:
            await graphql(http, RECORD, {"id": self.predictions[-1]})
        else:
            return False
        return True
