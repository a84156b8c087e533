"""Replicas sharing answers through Redis (`MODELQL_CACHE_URL`): one replica's answer serves
another with no SQL, a change moves the shared generations so no replica serves the old
answer, nothing lives in Redis longer than the freshness bound, callers of different scopes
never share, and Redis down or silent only costs the cache (counted, logged once, never a
500)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import redis
from cache_support import ALIASES, CATALOGUE, STATS, post, predict, set_production
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis_support import REDIS_URL, keys_under
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import graphql, running_app
from test_statement_count import counting_statements

from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.services.model_access import ModelLimit
from modelql.services.shared_answers import FRESHNESS_BOUND_S
from modelql.settings import AuthMode, Settings


def _shared(settings: Settings, prefix: str, url: str = REDIS_URL, **more: object) -> Settings:
    return settings.model_copy(update={"cache_url": url, "cache_prefix": prefix, **more})


@asynccontextmanager
async def _replicas(*settings: Settings) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_app(s)) for s in settings]


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _redis_lookups(outcome: str) -> float:
    return _count("modelql_response_cache_lookups_total", layer="redis", outcome=outcome)


async def test_an_answer_computed_by_one_replica_is_served_by_another_without_sql(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    shared = _shared(settings, cache_prefix)
    async with _replicas(shared, shared) as [(_, first), (second_app, second)]:
        expected = await post(first, CATALOGUE)
        hits = _redis_lookups("hit")
        with counting_statements(second_app) as statements:
            answer = await post(second, CATALOGUE)
        assert answer == expected
        assert statements == []
        assert _redis_lookups("hit") == hits + 1


async def test_a_change_through_one_replica_is_read_through_the_other_at_once(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    """The writer moves the shared generations right after its commit: the other replica's
    next read misses in Redis (its own notification may still be on its way)."""
    shared = _shared(settings, cache_prefix)
    async with _replicas(shared, shared) as [(_, writer), (_, reader)]:
        try:
            for query, change in (
                (STATS, lambda: predict(writer)),
                (ALIASES, lambda: set_production(writer, 2)),
            ):
                before = await post(writer, query)
                assert await post(reader, query) == before
                await change()
                expected = await post(writer, query)
                assert expected != before
                start = time.monotonic()
                while (answer := await post(reader, query)) != expected:
                    assert time.monotonic() - start < FRESHNESS_BOUND_S, answer
                    await asyncio.sleep(0.01)
        finally:
            await set_production(writer, 1)


async def test_no_answer_lives_in_redis_longer_than_the_freshness_bound(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    async with _replicas(_shared(settings, cache_prefix)) as [(_, http)]:
        await post(http, CATALOGUE)
        await post(http, STATS)
    client = redis.Redis.from_url(REDIS_URL)
    answers = [
        key for key in keys_under(cache_prefix) if key.startswith(f"{cache_prefix}a:".encode())
    ]
    assert len(answers) == 2
    for key in answers:
        assert 0 < client.pttl(key) <= FRESHNESS_BOUND_S * 1000
    await asyncio.sleep(FRESHNESS_BOUND_S)
    left = keys_under(cache_prefix)
    assert all(key.startswith(f"{cache_prefix}g:".encode()) for key in left), "generations only"


async def test_an_answer_with_errors_is_never_shared(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    async with _replicas(_shared(settings, cache_prefix)) as [(_, http)]:
        body = await graphql(http, "{ predictions(first: 100000) { nodes { id } } }")
        assert body["errors"][0]["extensions"]["code"] == "PAGE_SIZE_EXCEEDED"
    assert not [k for k in keys_under(cache_prefix) if k.startswith(f"{cache_prefix}a:".encode())]


async def test_callers_with_different_scopes_never_share_an_answer_across_replicas(
    database_url: str,
    settings: Settings,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache_prefix: str,
):
    async def key(name: str, *scopes: Scope) -> dict[str, str]:
        async with sessionmaker.begin() as session:
            _, plain = await api_keys.create(session, name=name, scopes=frozenset(scopes))
        return {"Authorization": f"Bearer {plain}"}

    auditor = await key("shared-auditor", Scope.READ, Scope.AUDIT)
    reader = await key("shared-reader", Scope.READ)
    shared = _shared(settings, cache_prefix, auth_mode=AuthMode.REQUIRED)
    async with _replicas(shared, shared) as [(_, first), (_, second)]:
        assert "errors" not in await graphql(first, STATS, headers=auditor)
        assert "errors" not in await graphql(second, STATS, headers=auditor)
        refused = await graphql(second, STATS, headers=reader)
        assert refused["data"] is None
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_keys_limited_to_other_models_never_share_an_answer_across_replicas(
    settings: Settings,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache_prefix: str,
):
    async def key(name: str, models: str | None) -> dict[str, str]:
        limit = ModelLimit.parse(models) if models else None
        async with sessionmaker.begin() as session:
            _, plain = await api_keys.create(
                session, name=name, scopes=frozenset({Scope.READ}), models=limit
            )
        return {"Authorization": f"Bearer {plain}"}

    everything = await key("shared-everything", None)
    iris_only = await key("shared-iris-only", "iris-*")
    shared = _shared(settings, cache_prefix, auth_mode=AuthMode.REQUIRED)
    async with _replicas(shared, shared) as [(_, first), (_, second)]:
        all_names = await graphql(first, "{ models { nodes { name } } }", headers=everything)
        limited = await graphql(second, "{ models { nodes { name } } }", headers=iris_only)
    assert len(all_names["data"]["models"]["nodes"]) > 1
    assert {node["name"] for node in limited["data"]["models"]["nodes"]} == {"iris-classifier"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def _silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers (a Redis hung or far away)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.mark.parametrize("failure", ["refused", "silent"])
async def test_when_redis_fails_queries_are_answered_from_memory_and_the_failure_counted(
    settings: Settings,
    demo_catalogue: None,
    caplog: pytest.LogCaptureFixture,
    failure: str,
):
    async with AsyncExitStack() as stack:
        if failure == "silent":
            url = await stack.enter_async_context(_silent_redis())
        else:
            url = f"redis://127.0.0.1:{_closed_port()}/0"
        broken = _shared(settings, "unused:", url, cache_timeout_ms=50)
        _, http = await stack.enter_async_context(running_app(broken))
        errors = _count("modelql_response_cache_errors_total", layer="redis")
        unavailable = _redis_lookups("unavailable")
        caplog.set_level(logging.WARNING)
        start = time.monotonic()
        # Catalogue questions: an answer about the store could be dropped from memory by a
        # notification of another test's leftover work, and its repeat then asks Redis again.
        answers = [await post(http, CATALOGUE) for _ in range(2)]
        answers.append(await post(http, ALIASES))
        elapsed = time.monotonic() - start
        assert answers[0] == answers[1]
        # At least the first look-up's failure (a slow machine may also see the answer's
        # write to Redis time out before the back-off starts).
        assert _count("modelql_response_cache_errors_total", layer="redis") >= errors + 1
        assert _redis_lookups("unavailable") == unavailable + 2, "then left alone for a while"
        assert elapsed < 5, "a short timeout, not the client's default retries"
        warnings = [r for r in caplog.records if "shared response cache" in r.getMessage()]
        assert len(warnings) == 1


async def test_metrics_show_each_layer_and_what_redis_holds(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    shared = _shared(settings, cache_prefix)
    async with _replicas(shared, shared) as [(_, first), (_, second)]:
        await post(first, CATALOGUE)
        await post(second, CATALOGUE)
        await post(second, CATALOGUE)
        text = (await second.get("/metrics")).text
    lines = text.splitlines()
    for series in (
        'modelql_response_cache_lookups_total{layer="memory",outcome="hit"}',
        'modelql_response_cache_lookups_total{layer="redis",outcome="hit"}',
        'modelql_response_cache_lookups_total{layer="redis",outcome="miss"}',
        'modelql_response_cache_errors_total{layer="redis"}',
    ):
        assert any(line.startswith(series) for line in lines), series
    assert "modelql_response_cache_shared_entries 1.0" in lines
    assert any(
        line.startswith("modelql_response_cache_shared_bytes ") and float(line.split()[1]) > 100
        for line in lines
    )


async def test_an_answer_from_redis_is_kept_in_memory_no_longer_than_in_redis(
    settings: Settings, demo_catalogue: None, cache_prefix: str
):
    """Its maker's change may never be announced (Redis unreachable at that moment): the copy
    in memory ends with the shared one, within the bound, not after MODELQL_RESPONSE_CACHE_TTL_S."""
    shared = _shared(settings, cache_prefix)
    async with _replicas(shared, shared) as [(_, first), (_, second)]:
        await post(first, STATS)
        redis_hits = _redis_lookups("hit")
        await post(second, STATS)
        assert _redis_lookups("hit") == redis_hits + 1
        memory_hits = _count("modelql_response_cache_lookups_total", layer="memory", outcome="hit")
        await post(second, STATS)
        assert (
            _count("modelql_response_cache_lookups_total", layer="memory", outcome="hit")
            == memory_hits + 1
        )
        await asyncio.sleep(FRESHNESS_BOUND_S)
        misses = _count("modelql_response_cache_lookups_total", layer="memory", outcome="miss")
        await post(second, STATS)
        assert (
            _count("modelql_response_cache_lookups_total", layer="memory", outcome="miss")
            == misses + 1
        )
