"""Rate limits per API key: a default budget, per-key overrides, shared by replicas through
Redis; over budget is HTTP 429 with Retry-After and a RATE_LIMITED error, and nothing is stored."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import app_client, make_settings

from modelql.services import api_keys
from modelql.services.api_keys import ApiKeyError, Scope
from modelql.settings import AuthMode

REDIS = "redis://127.0.0.1:6379/0"
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  prediction { id } userErrors { code } } }"""


async def make_key(
    sessionmaker: async_sessionmaker[AsyncSession], *, rate: str | None = None
) -> dict[str, str]:
    """A predict key with its own rate (or the default) and a name no other test uses."""
    async with sessionmaker.begin() as session:
        _, plain = await api_keys.create(
            session,
            name=f"rate-{uuid.uuid4().hex[:10]}",
            scopes=frozenset({Scope.PREDICT, Scope.READ}),
            rate_limit=rate,
        )
    return {"Authorization": f"Bearer {plain}"}


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM predictions"))


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def limited(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url, data_dir, auth_mode=AuthMode.REQUIRED, rate_limit="3/minute"
    )
    async with app_client(settings) as http:
        yield http


async def test_a_key_limited_to_5_per_second_gets_429_on_its_sixth_request(
    limited: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
):
    five = await make_key(sessionmaker, rate="5/second")
    other = await make_key(sessionmaker, rate="5/second")
    answers = [
        await limited.post("/graphql", json={"query": PREDICT}, headers=five) for _ in range(6)
    ]
    assert [answer.status_code for answer in answers] == [200] * 5 + [429]
    refused = answers[-1]
    assert refused.headers["retry-after"] == "1"
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert await stored(engine) == 5

    unaffected = await limited.post("/graphql", json={"query": PREDICT}, headers=other)
    assert unaffected.status_code == 200
    assert await stored(engine) == 6


async def test_keys_without_a_rate_of_their_own_get_the_default(
    limited: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
):
    key = await make_key(sessionmaker)
    query = {"query": "{ __typename }"}
    statuses = [
        (await limited.post("/graphql", json=query, headers=key)).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    refused = await limited.post("/graphql", json=query, headers=key)
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_an_unparseable_rate_is_refused_when_the_key_is_created(
    sessionmaker: async_sessionmaker[AsyncSession],
):
    async with sessionmaker.begin() as session:
        with pytest.raises(ApiKeyError, match="100/second"):
            await api_keys.create(
                session, name="bad-rate", scopes=frozenset({Scope.READ}), rate_limit="lots"
            )


async def test_replicas_sharing_redis_share_the_budget(
    database_url: str,
    data_dir: Path,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
):
    if not redis_answers():
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings = make_settings(
        database_url, data_dir, auth_mode=AuthMode.REQUIRED, rate_limit_storage=REDIS
    )
    key = await make_key(sessionmaker, rate="4/minute")
    other = await make_key(sessionmaker, rate="4/minute")
    query = {"query": "{ __typename }"}
    async with app_client(settings) as first, app_client(settings) as second:
        statuses = [
            (await replica.post("/graphql", json=query, headers=key)).status_code
            for replica in (first, second, first, second, first)
        ]
        unaffected = await second.post("/graphql", json=query, headers=other)
    assert statuses == [200, 200, 200, 200, 429]
    assert unaffected.status_code == 200


async def test_without_authentication_nothing_is_limited(
    database_url: str, data_dir: Path, demo_catalogue: None
):
    settings = make_settings(database_url, data_dir, rate_limit="1/minute")
    async with app_client(settings) as http:
        for _ in range(3):
            assert (
                await http.post("/graphql", json={"query": "{ __typename }"})
            ).status_code == 200


async def test_when_redis_is_unreachable_requests_pass_and_a_warning_is_logged(
    database_url: str,
    data_dir: Path,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = make_settings(
        database_url,
        data_dir,
        auth_mode=AuthMode.REQUIRED,
        rate_limit_storage=f"redis://127.0.0.1:{closed_port}/0",
    )
    key = await make_key(sessionmaker, rate="1/minute")
    async with app_client(settings) as http:
        statuses = [
            (await http.post("/graphql", json={"query": "{ __typename }"}, headers=key)).status_code
            for _ in range(2)
        ]
    assert statuses == [200, 200]
    assert any("rate limit storage unavailable" in record.getMessage() for record in caplog.records)
