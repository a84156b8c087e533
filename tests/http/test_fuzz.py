"""Property-based fuzzing: random JSON as features and random documents at /graphql never get a
5xx, and a rejected request never leaves a stored prediction behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import app_client, make_settings

pytestmark = pytest.mark.slow

FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CREATE = """mutation($features: JSON!) {
  createPrediction(input: {model: "iris-classifier", features: $features}) {
    prediction { id } userErrors { field code message } } }"""
COUNT = "{ predictionStats { count } }"
# A rejected request's errors: its features are invalid, or finite features overflow the model.
FEATURE_ERRORS = {"INVALID_FEATURES", "MODEL_OUTPUT_INVALID"}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from([*FEATURE_NAMES, "x", ""]), children, max_size=5)
    ),
    max_leaves=12,
)
features = st.one_of(
    json_values,
    st.fixed_dictionaries({name: json_scalars for name in FEATURE_NAMES}),
)
graphql_words = st.sampled_from(
    ["{", "}", "(", ")", ":", "$", "!", "...", "query", "mutation", "models", "nodes", "name",
     "model", "first", "after", "createPrediction", "input", "features", "fragment", "on",
     "Model", "1", "\"x\"", "null", "__typename", "@include", "[", "]", "predictions"]
)  # fmt: skip
documents = st.one_of(
    st.text(max_size=200),
    st.lists(graphql_words, max_size=40).map(" ".join),
)


class Session:
    """The app on its own event loop (in a thread), callable from synchronous Hypothesis tests."""

    def __init__(self, portal: BlockingPortal, http: httpx.AsyncClient) -> None:
        self.portal = portal
        self.http = http

    def post(self, body: Any, raw: bool = False) -> httpx.Response:
        if raw:
            return self.portal.call(
                lambda: self.http.post(
                    "/graphql", content=body, headers={"content-type": "application/json"}
                )
            )
        return self.portal.call(lambda: self.http.post("/graphql", json=body))

    def stored(self) -> int:
        return self.post({"query": COUNT}).json()["data"]["predictionStats"]["count"]


@pytest.fixture(scope="module")
def fuzz(database_url: str, data_dir: Path, demo_catalogue: None) -> Iterator[Session]:
    with start_blocking_portal() as portal:
        context = portal.wrap_async_context_manager(
            app_client(make_settings(database_url, data_dir))
        )
        with context as http:
            yield Session(portal, http)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=features)
@example(value=dict.fromkeys(FEATURE_NAMES, 4.4e307))
def test_random_features_never_fail_the_server_or_store_a_rejected_request(fuzz: Session, value):
    before = fuzz.stored()
    body = json.dumps({"query": CREATE, "variables": {"features": value}}, allow_nan=True)
    response = fuzz.post(body, raw=True)
    assert response.status_code < 500, response.text
    payload = response.json()
    result = (payload.get("data") or {}).get("createPrediction")
    stored = result is not None and result["prediction"] is not None
    assert fuzz.stored() == before + (1 if stored else 0)
    if result is not None and not stored:
        assert result["userErrors"], payload
        assert {error["code"] for error in result["userErrors"]} <= FEATURE_ERRORS, payload
        assert all(error["field"][0] == "features" for error in result["userErrors"]), payload


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents)
@example(document="{}")
def test_random_documents_never_get_a_5xx(fuzz: Session, document: str):
    response = fuzz.post({"query": document})
    assert response.status_code < 500, response.text
    assert "Unexpected error." not in response.text, (document, response.text)
