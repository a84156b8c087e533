"""Query answers are kept until what they read changes: repeated reads cost no SQL, every
change made through ModelQL (by this replica or another) is seen, and nothing is shared
between callers of different scopes or kept when it carried errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from cache_support import (
    ALIASES,
    AUDIT,
    CATALOGUE,
    LIVE,
    READ_VARIABLES,
    RECORD,
    STATS,
    Changes,
    operations,
    post,
    predict,
    set_production,
)
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import ExecutionResult
from support import graphql, make_settings, running_app
from test_statement_count import counting_statements

from modelql.graph.response_cache import ResponseCache
from modelql.graph.schema import build_schema
from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.services.generations import Generations
from modelql.services.shared_answers import FRESHNESS_BOUND_S
from modelql.settings import AuthMode, Settings


@pytest.fixture(scope="module")
async def app(settings: Settings, demo_catalogue: None) -> AsyncIterator[tuple[FastAPI, Any]]:
    async with running_app(settings) as running:
        yield running


async def test_a_repeated_query_is_answered_without_sql_and_byte_for_byte_the_same(app):
    application, http = app
    first = await post(http, CATALOGUE)
    with counting_statements(application) as statements:
        again = await post(http, CATALOGUE)
        reworded = await post(http, CATALOGUE.replace("\n", "\n   ").replace("{ ", "{"))
    assert again == first
    assert reworded == first
    assert statements == []


async def test_a_different_variable_is_a_different_answer(app):
    _, http = app
    for _ in range(3):
        await predict(http)
    one = await graphql(http, AUDIT, {"first": 1})
    two = await graphql(http, AUDIT, {"first": 2})
    assert len(one["data"]["predictions"]["nodes"]) == 1
    assert len(two["data"]["predictions"]["nodes"]) == 2


async def test_a_stored_prediction_is_counted_by_the_next_read(app):
    _, http = app
    before = (await graphql(http, STATS))["data"]["predictionStats"]["count"]
    await predict(http)
    after = (await graphql(http, STATS))["data"]["predictionStats"]["count"]
    assert after == before + 1


async def test_a_recorded_outcome_is_seen_by_the_next_read(app):
    _, http = app
    prediction_id = await predict(http)
    assert (await graphql(http, STATS))["data"]["predictionStats"]["labelled"] == 0
    live_before = await graphql(http, LIVE)
    body = await graphql(http, RECORD, {"id": prediction_id})
    assert body["data"]["recordOutcomes"]["userErrors"] == []
    assert (await graphql(http, STATS))["data"]["predictionStats"]["labelled"] == 1
    assert await graphql(http, LIVE) != live_before


async def test_a_moved_alias_is_seen_by_the_next_read(app):
    _, http = app
    try:
        await set_production(http, 2)
        aliases = (await graphql(http, ALIASES))["data"]["model"]["aliases"]
        assert {"alias": "production", "version": {"number": 2}} in aliases
        await set_production(http, 1)
        aliases = (await graphql(http, ALIASES))["data"]["model"]["aliases"]
        assert {"alias": "production", "version": {"number": 1}} in aliases
    finally:
        await set_production(http, 1)


async def test_catalogue_answers_stay_kept_while_predictions_are_stored(app):
    application, http = app
    await post(http, CATALOGUE)
    await predict(http)
    with counting_statements(application) as statements:
        await post(http, CATALOGUE)
    assert statements == []


async def test_an_answer_with_errors_is_never_kept(app):
    _, http = app
    too_large = """{ predictions(first: 100000) { nodes { id } }
      modelVersion(model: "wine-classifier") { number } }"""
    for _ in range(2):
        misses = _lookups("miss")
        body = await graphql(http, too_large)
        assert body["errors"][0]["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"
        assert _lookups("miss") == misses + 1, "executed each time"


@pytest.mark.parametrize("operation_name", [[1], {"name": "Page"}])
async def test_an_operation_name_that_is_not_a_string_is_refused_as_without_the_cache(
    app, operation_name: object
):
    _, http = app
    body = {"query": "{ __typename }", "operationName": operation_name}
    response = await http.post("/graphql", json=body)
    assert response.status_code == 400
    assert "Unknown operation" in response.text


async def test_variables_nested_too_deeply_to_key_are_answered_and_not_kept(app):
    _, http = app
    deep = "[" * 1000 + "]" * 1000  # within the decoder's depth, past the key's encoder's
    body = '{"query": "{ __typename }", "variables": {"unused": ' + deep + "}}"
    for _ in range(2):
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}


async def test_an_answer_orjson_cannot_encode_is_answered_and_not_kept():
    """e.g. a JSON training argument nested deeper than orjson encodes (the endpoint falls
    back to the standard encoder)."""
    deep: object = 0
    for _ in range(300):
        deep = [deep]
    schema = build_schema()
    cache = ResponseCache(
        schema=schema._schema,
        prepare=schema.documents,
        generations=Generations(listening_since=lambda: 0.0),
        max_bytes=1 << 20,
        ttl_s=60.0,
        plan_cache_size=8,
    )
    plan = cache.plan("{ __typename }", None)
    assert plan is not None
    executions = 0

    async def execute() -> ExecutionResult:
        nonlocal executions
        executions += 1
        return ExecutionResult(data={"deep": deep}, errors=None)

    for _ in range(2):
        assert (await cache.answer(plan, None, frozenset(), None, execute)).data == {"deep": deep}
    assert executions == 2


def _lookups(outcome: str) -> float:
    """The response cache's lookups so far, from the /metrics registry."""
    value = REGISTRY.get_sample_value(
        "modelql_response_cache_lookups_total", {"layer": "memory", "outcome": outcome}
    )
    return value or 0.0


async def test_callers_with_different_scopes_never_share_an_answer(
    database_url: str,
    data_dir,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
):
    async def key(name: str, *scopes: Scope) -> dict[str, str]:
        async with sessionmaker.begin() as session:
            _, plain = await api_keys.create(session, name=name, scopes=frozenset(scopes))
        return {"Authorization": f"Bearer {plain}"}

    auditor = await key("cache-auditor", Scope.READ, Scope.AUDIT)
    reader = await key("cache-reader", Scope.READ)
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with running_app(settings) as (_, http):
        for _ in range(2):
            assert "errors" not in await graphql(http, STATS, headers=auditor)
        refused = await graphql(http, STATS, headers=reader)
        assert refused["data"] is None
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def _converges(read: Callable[[], Awaitable[bytes]], expected: bytes) -> float:
    """Seconds until `read()` answers `expected`; fails past the freshness bound."""
    start = time.monotonic()
    while (answer := await read()) != expected:
        assert time.monotonic() - start < FRESHNESS_BOUND_S, (answer, expected)
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_another_replica_sees_each_change_within_the_freshness_bound(
    settings: Settings, demo_catalogue: None
):
    async with AsyncExitStack() as stack:
        _, writer = await stack.enter_async_context(running_app(settings))
        _, reader = await stack.enter_async_context(running_app(settings))
        try:
            for query, change in (
                (STATS, lambda: predict(writer)),
                (ALIASES, lambda: set_production(writer, 2)),
            ):
                before = await post(reader, query)
                await change()
                expected = await post(writer, query)
                assert expected != before
                await _converges(lambda q=query: post(reader, q), expected)
        finally:
            await set_production(writer, 1)


@hypothesis_settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=operations(max_size=12))
@example(
    operations=[
        ("read", 0, STATS),
        ("read", 1, ALIASES),
        ("predict", 0, STATS),
        ("read", 0, STATS),
        ("alias", 0, ALIASES),
        ("read", 1, ALIASES),
        ("outcome", 1, LIVE),
        ("read", 1, STATS),
    ]
)
async def test_interleaved_changes_and_reads_on_two_replicas_match_uncached_answers(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient], operations
):
    """Each read equals an uncached execution at once on the replica that made the last
    change, and within the freshness bound on the other."""
    uncached = replicas[2]
    last_writer = 0
    changes = Changes()
    try:
        for kind, replica, query in operations:
            http = replicas[replica]
            if await changes.make(kind, http):
                last_writer = replica
                continue
            expected = await post(uncached, query, READ_VARIABLES)
            if replica == last_writer:
                assert await post(http, query, READ_VARIABLES) == expected
            else:
                await _converges(lambda h=http, q=query: post(h, q, READ_VARIABLES), expected)
    finally:
        await set_production(replicas[0], 1)


@pytest.fixture(scope="module")
async def replicas(
    settings: Settings, demo_catalogue: None
) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two cached replicas and one that executes every query, on one database."""
    async with AsyncExitStack() as stack:
        clients = [
            (await stack.enter_async_context(running_app(replica)))[1]
            for replica in (
                settings,
                settings,
                settings.model_copy(update={"response_cache": False}),
            )
        ]
        yield tuple(clients)
