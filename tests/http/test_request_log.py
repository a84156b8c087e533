"""One structured log line per request: who, what operation, how long, how it ended, and how
many predictions it stored."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from modelql.logs import RedactingJsonFormatter

PREDICT = """mutation Score { createPredictions(input: {model: "iris-classifier", instances: [
  {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2},
  {sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3}]}) {
  predictions { id } userErrors { code } } }"""


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "modelql.access"]


async def test_a_mutation_logs_one_line_with_its_outcome(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="modelql.access")
    await client.post("/graphql", json={"query": PREDICT}, headers={"X-Request-ID": "log-1"})
    [record] = access_records(caplog)
    line = json.loads(RedactingJsonFormatter().format(record))
    assert line["request_id"] == "log-1"
    assert line["operation_name"] == "Score"
    assert line["operation_type"] == "mutation"
    assert line["outcome"] == "ok"
    assert line["predictions_stored"] == 2
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["caller"] is None


async def test_failed_and_rejected_requests_say_so(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="modelql.access")
    await client.post("/graphql", json={"query": "{ nope }"})
    await client.post("/graphql", content="{", headers={"content-type": "application/json"})
    validation, malformed = access_records(caplog)
    assert validation.outcome == "error"
    assert validation.predictions_stored == 0
    assert malformed.outcome == "rejected"
    assert malformed.status == 400


async def test_probes_are_not_logged(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="modelql.access")
    await client.get("/healthz")
    assert access_records(caplog) == []
