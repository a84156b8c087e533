"""Grouped statistics cost what their selection needs: the p95 latency (a sort of the raw
table when a label or caller is grouped on) is computed only when it is asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from support import graphql, running_app
from test_statement_count import counting_statements

from modelql.settings import Settings

PREDICT = """mutation { createPredictions(input: {model: "iris-classifier", version: 1,
  instances: [{sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2},
              {sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5}]})
  { userErrors { code } } }"""
COUNTS = """{ predictionStats(filter: {model: "iris-classifier"}) {
  groups(by: [LABEL]) { label count } } }"""
WITH_P95 = """{ predictionStats(filter: {model: "iris-classifier"}) {
  groups(by: [LABEL]) { label ...Latency } } }
fragment Latency on PredictionGroup { count p95LatencyMs }"""


@pytest.fixture
async def app(settings: Settings, demo_catalogue: None) -> AsyncIterator[tuple[FastAPI, Any]]:
    uncached = settings.model_copy(update={"response_cache": False})
    async with running_app(uncached) as running:
        body = await graphql(running[1], PREDICT)
        assert body["data"]["createPredictions"]["userErrors"] == []
        yield running


async def test_counts_per_label_read_the_roll_ups_only(app):
    application, http = app
    with counting_statements(application) as statements:
        body = await graphql(http, COUNTS)
    assert sorted(g["count"] for g in body["data"]["predictionStats"]["groups"]) == [1, 1]
    assert len(statements) == 1, statements
    assert "rollups" in statements[0]
    assert "percentile_cont" not in statements[0]


async def test_the_p95_latency_per_label_is_computed_when_asked_for(app):
    application, http = app
    with counting_statements(application) as statements:
        body = await graphql(http, WITH_P95)
    groups = body["data"]["predictionStats"]["groups"]
    assert all(group["p95LatencyMs"] is not None for group in groups), groups
    assert any("percentile_cont" in statement for statement in statements)
