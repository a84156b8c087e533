"""Persisted queries as Apollo clients speak them (a document sent once, then by its SHA-256,
also over GET for HTTP caches), and an allow-list for production: nothing else runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import make_settings, running_app

from modelql.app import persisted_queries
from modelql.graph.persisted_queries import ManifestError, load_manifest
from modelql.settings import Settings

QUERY = '{ model(name: "iris-classifier") { name task } }'
OTHER = '{ model(name: "wine-classifier") { name } }'
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier", features:
  {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}})
  { prediction { id } userErrors { code } } }"""
EXPECTED = {"data": {"model": {"name": "iris-classifier", "task": "CLASSIFICATION"}}}


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(digest: str, version: object = 1) -> dict[str, object]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM predictions"))


@pytest.fixture(scope="module")
async def http(settings, demo_catalogue: None) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as (_, client):
        yield client


async def test_a_document_is_sent_once_then_run_by_its_hash(http: httpx.AsyncClient):
    digest = sha256(QUERY)
    unknown = await http.post("/graphql", json={"extensions": persisted(digest)})
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    registered = await http.post("/graphql", json={"query": QUERY, "extensions": persisted(digest)})
    assert registered.json() == EXPECTED

    by_hash = await http.post("/graphql", json={"extensions": persisted(digest.upper())})
    assert by_hash.json() == EXPECTED


async def test_a_query_by_hash_over_get_may_be_kept_by_http_caches(http: httpx.AsyncClient):
    await http.post("/graphql", json={"query": QUERY, "extensions": persisted(sha256(QUERY))})
    response = await http.get(
        "/graphql", params={"extensions": json.dumps(persisted(sha256(QUERY)))}
    )
    assert response.status_code == 200
    assert response.json() == EXPECTED
    assert response.headers["cache-control"] == "public, max-age=1"
    assert response.headers["vary"] == "Accept"


async def test_a_mutation_is_not_run_over_get(http: httpx.AsyncClient, engine: AsyncEngine):
    before = await stored(engine)
    response = await http.get("/graphql", params={"query": PREDICT})
    assert response.status_code in (400, 405)
    assert await stored(engine) == before


@pytest.mark.parametrize(
    "extensions",
    [
        persisted("abc"),
        persisted("g" * 64),
        persisted(sha256(QUERY) + "0"),
        persisted(sha256(QUERY), version=2),
        persisted(sha256(QUERY), version=True),
        {"persistedQuery": "yes"},
        {"persistedQuery": {"version": 1, "sha256Hash": 42}},
    ],
    ids=[
        "short",
        "not hex",
        "too long",
        "version 2",
        "version true",
        "not an object",
        "not a string",
    ],
)
async def test_a_malformed_persisted_query_is_a_400_naming_it(http: httpx.AsyncClient, extensions):
    response = await http.post("/graphql", json={"query": QUERY, "extensions": extensions})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_INVALID"
    assert "persistedQuery" in error["message"]


async def test_a_document_too_long_to_run_is_not_registered(
    http: httpx.AsyncClient, settings: Settings
):
    """Registered documents are bounded by the length cap, not only by the body size."""
    document = QUERY + " " * settings.max_query_length
    extensions = persisted(sha256(document))
    sent = await http.post("/graphql", json={"query": document, "extensions": extensions})
    assert sent.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_LONG"
    by_hash = await http.post("/graphql", json={"extensions": extensions})
    assert by_hash.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_hash_that_is_not_the_documents_is_refused_and_nothing_runs(
    http: httpx.AsyncClient, engine: AsyncEngine
):
    before = await stored(engine)
    response = await http.post(
        "/graphql", json={"query": PREDICT, "extensions": persisted(sha256(QUERY))}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await stored(engine) == before
    later = await http.post("/graphql", json={"extensions": persisted(sha256(QUERY))})
    assert "PREDICT" not in later.text and "createPrediction" not in later.text


def _manifest(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "persisted-query-manifest.json"
    operations = [{"id": sha256(d), "name": None, "type": "query", "body": d} for d in documents]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


async def test_with_an_allow_list_only_its_documents_run(
    database_url: str, tmp_path: Path, demo_catalogue: None, engine: AsyncEngine
):
    settings = make_settings(
        database_url,
        tmp_path,
        persisted_queries="only",
        persisted_queries_file=_manifest(tmp_path, QUERY),
    )
    async with running_app(settings) as (_, http):
        by_hash = await http.post("/graphql", json={"extensions": persisted(sha256(QUERY))})
        assert by_hash.json() == EXPECTED
        whole = await http.post("/graphql", json={"query": QUERY})
        assert whole.json() == EXPECTED

        before = await stored(engine)
        for document in (OTHER, PREDICT):
            refused = await http.post("/graphql", json={"query": document})
            codes = [e["extensions"]["code"] for e in refused.json()["errors"]]
            assert codes == ["PERSISTED_QUERY_NOT_IN_LIST"], refused.text
            registering = await http.post(
                "/graphql", json={"query": document, "extensions": persisted(sha256(document))}
            )
            assert "PERSISTED_QUERY_NOT_IN_LIST" in registering.text
        assert await stored(engine) == before


async def test_with_persisted_queries_off_a_hash_is_not_supported(
    database_url: str, tmp_path: Path, demo_catalogue: None
):
    settings = make_settings(database_url, tmp_path, persisted_queries="off")
    async with running_app(settings) as (_, http):
        response = await http.post("/graphql", json={"extensions": persisted(sha256(QUERY))})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == (
            "PERSISTED_QUERY_NOT_SUPPORTED"
        )
        assert (await http.post("/graphql", json={"query": QUERY})).json() == EXPECTED


def test_a_manifest_is_an_apollo_manifest_or_a_map_of_hashes(tmp_path: Path):
    assert load_manifest(_manifest(tmp_path, QUERY, OTHER)) == {
        sha256(QUERY): QUERY,
        sha256(OTHER): OTHER,
    }
    flat = tmp_path / "documents.json"
    flat.write_text(json.dumps({sha256(OTHER): OTHER}))
    assert load_manifest(flat) == {sha256(OTHER): OTHER}


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps({"0" * 64: QUERY}),
        json.dumps({"format": "apollo-persisted-query-manifest"}),
    ],
    ids=["not json", "a list", "a wrong hash", "no operations"],
)
def test_an_unusable_manifest_is_refused_with_its_path(tmp_path: Path, content: str):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ManifestError, match=r"manifest\.json"):
        load_manifest(path)


def test_allow_list_mode_needs_a_file(database_url: str, tmp_path: Path):
    with pytest.raises(ManifestError, match="MODELQL_PERSISTED_QUERIES_FILE"):
        persisted_queries(make_settings(database_url, tmp_path, persisted_queries="only"))
