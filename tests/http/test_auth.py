"""API keys and scopes: who may read the catalogue, predict, and audit predictions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import app_client, make_settings

from modelql.persistence.tables import ApiKey
from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode, Settings, UnsafeExposureError, check_exposure

CATALOGUE = "{ models { nodes { name } } }"
AUDIT = "{ predictions { nodes { id caller } } predictionStats { count } }"
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  prediction { id caller } userErrors { code } } }"""


async def make_key(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, *scopes: Scope
) -> str:
    async with sessionmaker.begin() as session:
        _, plain = await api_keys.create(session, name=name, scopes=frozenset(scopes))
    return plain


@pytest.fixture(scope="module")
async def keys(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    return {
        "read": await make_key(sessionmaker, "reader", Scope.READ),
        "predict": await make_key(sessionmaker, "predictor", Scope.PREDICT),
        "audit": await make_key(sessionmaker, "auditor", Scope.AUDIT),
        "all": await make_key(sessionmaker, "admin", Scope.READ, Scope.PREDICT, Scope.AUDIT),
    }


@pytest.fixture(scope="module")
async def secured(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with app_client(settings) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM predictions"))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer mql_0000_nope"}, {"Authorization": "Basic abc"}],
    ids=["no key", "unknown key", "wrong scheme"],
)
async def test_requests_without_a_valid_key_get_401(secured: httpx.AsyncClient, headers):
    response = await secured.post("/graphql", json={"query": CATALOGUE}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_read_key_browses_the_catalogue_but_may_not_predict_or_audit(
    secured: httpx.AsyncClient, keys: dict[str, str], engine: AsyncEngine
):
    catalogue = await secured.post(
        "/graphql", json={"query": CATALOGUE}, headers=bearer(keys["read"])
    )
    assert catalogue.status_code == 200
    assert len(catalogue.json()["data"]["models"]["nodes"]) >= 4

    before = await stored(engine)
    predict = await secured.post("/graphql", json={"query": PREDICT}, headers=bearer(keys["read"]))
    assert predict.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert predict.json()["errors"][0]["path"] == ["createPrediction"]
    assert await stored(engine) == before

    audit = await secured.post("/graphql", json={"query": AUDIT}, headers=bearer(keys["read"]))
    codes = {error["extensions"]["code"] for error in audit.json()["errors"]}
    assert codes == {"FORBIDDEN"}


async def test_a_predict_key_stores_predictions_under_its_name(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    response = await secured.post(
        "/graphql", json={"query": PREDICT}, headers=bearer(keys["predict"])
    )
    prediction = response.json()["data"]["createPrediction"]["prediction"]
    assert prediction["caller"] == "predictor"
    audit = await secured.post("/graphql", json={"query": AUDIT}, headers=bearer(keys["audit"]))
    assert audit.json()["data"]["predictions"]["nodes"] == [prediction]
    catalogue = await secured.post(
        "/graphql", json={"query": CATALOGUE}, headers=bearer(keys["predict"])
    )
    assert catalogue.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_predictions_reached_through_the_catalogue_need_audit(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    query = '{ model(name: "iris-classifier") { name predictions { nodes { id } } } }'
    response = await secured.post("/graphql", json={"query": query}, headers=bearer(keys["read"]))
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["model", "predictions"]
    allowed = await secured.post("/graphql", json={"query": query}, headers=bearer(keys["all"]))
    assert "errors" not in allowed.json()


async def test_a_revoked_key_is_refused(
    secured: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
):
    key = await make_key(sessionmaker, "short-lived", Scope.READ)
    ok = await secured.post("/graphql", json={"query": CATALOGUE}, headers=bearer(key))
    assert ok.status_code == 200
    async with sessionmaker.begin() as session:
        await api_keys.revoke(session, name="short-lived")
    revoked_at = time.monotonic()
    while True:  # the revocation reaches every process's key cache by notification
        refused = await secured.post("/graphql", json={"query": CATALOGUE}, headers=bearer(key))
        if refused.status_code == 401:
            break
        assert time.monotonic() - revoked_at < 1.0, "the revoked key still works after 1 s"
        await asyncio.sleep(0.01)


async def test_a_tampered_key_with_a_valid_prefix_is_refused(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    tampered = keys["all"][:-1] + ("A" if keys["all"][-1] != "A" else "B")
    response = await secured.post("/graphql", json={"query": CATALOGUE}, headers=bearer(tampered))
    assert response.status_code == 401


async def test_only_a_hash_of_the_key_is_stored(
    keys: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
):
    async with sessionmaker() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.name == "admin"))
        assert row is not None
        assert keys["all"] not in {row.key_sha256, row.prefix}
        assert sorted(row.scopes) == ["audit", "predict", "read"]
        duplicates = await session.scalar(select(func.count()).where(ApiKey.name == "admin"))
        assert duplicates == 1


async def test_key_names_are_unique_and_scopes_checked(
    keys: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
):
    with pytest.raises(api_keys.ApiKeyError, match="already exists"):
        await make_key(sessionmaker, "reader", Scope.READ)
    with pytest.raises(api_keys.ApiKeyError, match="Scopes must be"):
        api_keys.parse_scopes("read,write")


async def test_with_auth_disabled_every_scope_is_open_and_caller_is_null(client: httpx.AsyncClient):
    response = await client.post("/graphql", json={"query": PREDICT})
    assert response.json()["data"]["createPrediction"]["prediction"]["caller"] is None


@pytest.mark.parametrize(
    ("host", "insecure", "refused"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("0.0.0.0", False, True),
        ("10.1.2.3", False, True),
        ("0.0.0.0", True, False),
    ],
)
def test_auth_can_be_off_only_on_loopback_unless_insecure(host: str, insecure: bool, refused: bool):
    settings = Settings(_env_file=None, host=host, auth_mode=AuthMode.DISABLED, insecure=insecure)  # type: ignore[call-arg]
    if refused:
        with pytest.raises(UnsafeExposureError, match="MODELQL_AUTH_MODE=required"):
            check_exposure(settings)
    else:
        check_exposure(settings)
    required = Settings(_env_file=None, host=host, auth_mode=AuthMode.REQUIRED)  # type: ignore[call-arg]
    check_exposure(required)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "192.168.1.20:8000", "127.0.0.1.nip.io"]
)
async def test_with_auth_disabled_a_foreign_host_header_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, host: str
):
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: it must get nothing."""
    response = await client.post("/graphql", json={"query": PREDICT}, headers={"host": host})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "HOST_NOT_ALLOWED"
    assert await stored(engine) == 0


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "localhost"])
async def test_with_auth_disabled_loopback_host_names_are_served(
    client: httpx.AsyncClient, host: str
):
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"host": host}
    )
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_with_auth_required_any_host_name_is_served(secured: httpx.AsyncClient):
    response = await secured.get("/healthz", headers={"host": "modelql.internal:8000"})
    assert response.status_code == 200


async def test_a_predict_key_sees_the_version_that_answered_its_own_prediction(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    query = PREDICT.replace("prediction { id caller }", "prediction { id modelVersion { number } }")
    response = await secured.post(
        "/graphql", json={"query": query}, headers=bearer(keys["predict"])
    )
    body = response.json()
    assert "errors" not in body, body
    prediction = body["data"]["createPrediction"]["prediction"]
    assert prediction["modelVersion"] == {"number": 1}
    assert prediction["id"]


async def test_a_predict_key_cannot_walk_from_its_prediction_into_the_catalogue(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    query = PREDICT.replace(
        "prediction { id caller }", "prediction { id modelVersion { model { name } } }"
    )
    response = await secured.post(
        "/graphql", json={"query": query}, headers=bearer(keys["predict"])
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["createPrediction", "prediction", "modelVersion", "model"]
    allowed = await secured.post("/graphql", json={"query": query}, headers=bearer(keys["all"]))
    version = allowed.json()["data"]["createPrediction"]["prediction"]["modelVersion"]
    assert version == {"model": {"name": "iris-classifier"}}


async def test_node_asks_for_the_scope_of_the_type_it_resolves(
    secured: httpx.AsyncClient, keys: dict[str, str]
):
    created = await secured.post(
        "/graphql", json={"query": PREDICT}, headers=bearer(keys["predict"])
    )
    prediction_id = created.json()["data"]["createPrediction"]["prediction"]["id"]
    model = await secured.post(
        "/graphql",
        json={"query": '{ model(name: "iris-classifier") { id } }'},
        headers=bearer(keys["read"]),
    )
    model_id = model.json()["data"]["model"]["id"]
    query = "query($id: ID!) { node(id: $id) { id } }"

    async def node(key: str, global_id: str) -> dict:
        response = await secured.post(
            "/graphql", json={"query": query, "variables": {"id": global_id}}, headers=bearer(key)
        )
        return response.json()

    assert (await node(keys["audit"], prediction_id))["data"]["node"] == {"id": prediction_id}
    assert (await node(keys["read"], prediction_id))["errors"][0]["extensions"][
        "code"
    ] == "FORBIDDEN"
    assert (await node(keys["read"], model_id))["data"]["node"] == {"id": model_id}
    assert (await node(keys["audit"], model_id))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
