"""Grouped statistics cost what their selection needs: the p95 latency (a sort of the raw
table when a label or caller is grouped on) is computed only when it is asked for, and totals
asked beside groups are read by the groups' statement."""

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
TOTALS_AND_GROUPS = """{ predictionStats(filter: {model: "iris-classifier"}) {
  count%s labelled groups(by: [LABEL]) { label count } } }"""
INCLUDED = " @include(if: true)"
"""A directive: the read executor leaves the document to Strawberry's execution."""
TWO_GROUPINGS = """{ predictionStats(filter: {model: "iris-classifier"}) { count
  labels: groups(by: [LABEL]) { label count } callers: groups(by: [CALLER]) { count } } }"""
REFUSED_GROUPS = """{ predictionStats(filter: {model: "iris-classifier"}) { count
  groups(by: [LABEL], first: -1) { count } } }"""


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


@pytest.mark.parametrize("directive", ["", INCLUDED], ids=["planned", "strawberry"])
async def test_totals_asked_beside_groups_are_read_in_the_groups_statement(app, directive):
    application, http = app
    with counting_statements(application) as statements:
        body = await graphql(http, TOTALS_AND_GROUPS % directive)
    stats = body["data"]["predictionStats"]
    assert stats["count"] == 2 == sum(g["count"] for g in stats["groups"])
    assert stats["labelled"] == 0
    assert len(statements) == 1, statements
    assert "GROUPING SETS" in statements[0]


async def test_only_the_first_groups_field_reads_the_totals(app):
    application, http = app
    with counting_statements(application) as statements:
        body = await graphql(http, TWO_GROUPINGS)
    stats = body["data"]["predictionStats"]
    assert stats["count"] == 2
    assert sum(g["count"] for g in stats["labels"]) == sum(g["count"] for g in stats["callers"])
    assert len(statements) == 2, statements
    assert sum("GROUPING SETS" in statement for statement in statements) == 1


async def test_totals_are_read_alone_when_the_groups_are_refused(app):
    application, http = app
    with counting_statements(application) as statements:
        body = await graphql(http, REFUSED_GROUPS)
    assert "`first`" in body["errors"][0]["message"]
    assert body["errors"][0]["path"] == ["predictionStats", "groups"]
    # (the planned execution stops at the error and Strawberry's runs again: one each)
    assert statements
    assert not any("GROUPING SETS" in statement for statement in statements), statements
