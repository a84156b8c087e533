"""Who may subscribe: the key in connection_init or on the upgrade, scopes per subscription,
revocation ending open subscriptions, and caps per connection and per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from live_support import Served, Subscriptions, served
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import make_settings

from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode

PREDICTIONS = "subscription { predictionsCreated { id } }"
CATALOGUE = "subscription { catalogueEvents { kind } }"


async def make_key(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, *scopes: Scope
) -> str:
    async with sessionmaker.begin() as session:
        _, plain = await api_keys.create(session, name=name, scopes=frozenset(scopes))
    return plain


@pytest.fixture(scope="module")
async def keys(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    return {
        "read": await make_key(sessionmaker, "live-reader", Scope.READ),
        "audit": await make_key(sessionmaker, "live-auditor", Scope.AUDIT),
        "both": await make_key(sessionmaker, "live-both", Scope.READ, Scope.AUDIT),
    }


@pytest.fixture(scope="module")
async def secured(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    settings = make_settings(
        database_url,
        data_dir,
        auth_mode=AuthMode.REQUIRED,
        max_subscriptions_per_connection=3,
        max_subscriptions_per_key=4,
    )
    async with served(settings) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def errors_of(message: dict) -> list[dict]:
    """The errors of an `error` message (before execution) or of a `next` message."""
    return message["payload"] if message["type"] == "error" else message["payload"]["errors"]


async def closed_with(connection: Subscriptions) -> int:
    _, close = await connection.until_closed()
    return close.code


@pytest.mark.parametrize(
    "payload", [{}, {"authorization": "Bearer mql_0000_nope"}, {"authorization": "Basic x"}]
)
async def test_a_connection_without_a_valid_key_is_closed_forbidden(
    secured: Served, payload: dict[str, str]
):
    async with Subscriptions.open(secured.url, payload) as connection:
        assert await closed_with(connection) == 4403


async def test_the_key_may_come_in_connection_init_or_on_the_upgrade(
    secured: Served, keys: dict[str, str]
):
    async with Subscriptions.open(secured.url, bearer(keys["read"])) as connection:
        await connection.acknowledged()
    async with Subscriptions.open(secured.url, headers=bearer(keys["read"])) as connection:
        await connection.acknowledged()


@pytest.mark.parametrize(
    ("key", "query", "allowed"),
    [
        ("read", PREDICTIONS, False),
        ("audit", PREDICTIONS, True),
        ("audit", CATALOGUE, False),
        ("read", CATALOGUE, True),
    ],
)
async def test_predictions_need_audit_and_the_catalogue_needs_read(
    secured: Served, keys: dict[str, str], key: str, query: str, allowed: bool
):
    async with Subscriptions.open(secured.url, bearer(keys[key])) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(query)
        if allowed:
            with pytest.raises(TimeoutError):
                await connection.receive(within=0.5)
            return
        message = await connection.receive()
        assert message["id"] == operation
        [error] = errors_of(message)
        assert error["extensions"]["code"] == "FORBIDDEN"
    await asyncio.sleep(0.2)
    assert len(secured.feeds.subscriptions) == 0


async def test_revoking_a_key_ends_its_open_subscriptions(
    secured: Served, sessionmaker: async_sessionmaker[AsyncSession]
):
    key = await make_key(sessionmaker, "live-short-lived", Scope.READ, Scope.AUDIT)
    async with Subscriptions.open(secured.url, bearer(key)) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(PREDICTIONS)
        await asyncio.sleep(0.3)
        async with sessionmaker.begin() as session:
            await api_keys.revoke(session, name="live-short-lived")

        message = await connection.receive()
        assert message["id"] == operation
        [error] = errors_of(message)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert "revoked" in error["message"]
        assert (await connection.receive())["type"] == "complete"
        assert await closed_with(connection) == 4403
    await asyncio.sleep(0.2)
    assert len(secured.feeds.subscriptions) == 0


async def test_subscriptions_are_capped_per_connection(secured: Served, keys: dict[str, str]):
    async with Subscriptions.open(secured.url, bearer(keys["both"])) as connection:
        await connection.acknowledged()
        for _ in range(3):
            await connection.subscribe(CATALOGUE)
        fourth = await connection.subscribe(CATALOGUE)
        message = await connection.receive()
        assert (message["id"], message["type"]) == (fourth, "error")
        assert "limit" in message["payload"][0]["message"]


async def test_subscriptions_are_capped_per_key_across_connections(
    secured: Served, keys: dict[str, str]
):
    async with (
        Subscriptions.open(secured.url, bearer(keys["both"])) as first,
        Subscriptions.open(secured.url, bearer(keys["both"])) as second,
    ):
        await first.acknowledged()
        await second.acknowledged()
        for _ in range(3):
            await first.subscribe(CATALOGUE)
        await second.subscribe(PREDICTIONS)
        await asyncio.sleep(0.3)
        refused = await second.subscribe(PREDICTIONS)

        message = await second.receive()
        assert message["id"] == refused
        [error] = errors_of(message)
        assert error["extensions"]["code"] == "SUBSCRIPTION_LIMIT"
        assert len(secured.feeds.subscriptions) == 4
