"""Prediction jobs through the API, worked by the serving process's own queue consumer: a
multipart upload becomes stored predictions; `predictionJob` shows state, progress, counts and
errors; `cancelPredictionJob`; each bad input is a user error with a code; uploads need the
preflight header; `predictionJobUpdated` follows a job to its end over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from job_support import iris_csv
from live_support import Served, Subscriptions, served
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import app_client, graphql, make_settings

from modelql.runtime import store_maintenance

SUBMIT = """mutation($input: SubmitPredictionJobInput!) { submitPredictionJob(input: $input) {
  job { id state partial source model { name } version { number } }
  userErrors { field code message } } }"""
JOB = """query($id: ID!) { predictionJob(id: $id) {
  id state progress counts { total scored failed } errors { row reason } message prunedAt } }"""
CANCEL = """mutation($id: ID!) { cancelPredictionJob(id: $id) {
  job { id state } userErrors { field code } } }"""
UPDATED = """subscription($id: ID!) { predictionJobUpdated(id: $id) {
  state progress counts { scored } } }"""
PREFLIGHT = {"GraphQL-Require-Preflight": "1"}


def multipart(variables: dict, content: bytes, name: str = "iris.csv") -> dict:
    """A GraphQL multipart request (the spec of jaydenseric/graphql-multipart-request-spec)."""
    operations = {"query": SUBMIT, "variables": {"input": {**variables, "source": {"file": None}}}}
    return {
        "data": {
            "operations": json.dumps(operations),
            "map": json.dumps({"0": ["variables.input.source.file"]}),
        },
        "files": {"0": (name, content, "text/csv")},
    }


async def submit(http: httpx.AsyncClient, content: bytes, name: str = "iris.csv", **input: object):
    variables = {"model": "iris-classifier", **input}
    response = await http.post("/graphql", headers=PREFLIGHT, **multipart(variables, content, name))
    assert response.status_code == 200, response.text
    return response.json()["data"]["submitPredictionJob"]


async def finished(http: httpx.AsyncClient, job_id: str) -> dict:
    for _ in range(600):
        job = (await graphql(http, JOB, {"id": job_id}))["data"]["predictionJob"]
        if job["state"] not in ("QUEUED", "RUNNING"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def stored_rows(engine: AsyncEngine, job_id: str) -> list[tuple[int, str | None]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT batch_index, caller FROM predictions WHERE request_id = :id "
                "ORDER BY batch_index"
            ),
            {"id": job_id},
        )
        return [(row[0], row[1]) for row in rows]


@pytest.fixture(scope="module")
async def http(database_url: str, data_dir: Path, demo_catalogue: None, tmp_path_factory):
    source_dir = tmp_path_factory.mktemp("jobs")
    (source_dir / "rows.csv").write_bytes(iris_csv(30))
    settings = make_settings(
        database_url,
        data_dir,
        job_workers=1,
        job_chunk_rows=50,
        job_part_rows=200,
        job_max_bytes=64 * 1024,
        job_source_dir=source_dir,
    )
    async with app_client(settings) as client:
        yield client


async def test_an_uploaded_file_becomes_stored_predictions_and_outlives_its_retention(
    http: httpx.AsyncClient, engine: AsyncEngine, database_url: str, data_dir: Path
):
    payload = await submit(http, iris_csv(450))
    assert payload["userErrors"] == []
    job = payload["job"]
    assert job["state"] == "QUEUED"
    assert job["model"]["name"] == "iris-classifier"
    done = await finished(http, job["id"])
    assert done["state"] == "SUCCEEDED", done
    assert done["progress"] == 1.0
    assert done["counts"] == {"total": 450, "scored": 450, "failed": 0}
    assert [number for number, _ in await stored_rows(engine, job["id"])] == list(range(1, 451))

    async with engine.begin() as connection:  # as if it had finished long ago
        await connection.execute(
            text(
                "UPDATE prediction_jobs SET finished_at = now() - interval '30 days' WHERE id = :id"
            ),
            {"id": job["id"]},
        )
    await store_maintenance(make_settings(database_url, data_dir), database_url).prune_jobs()
    pruned = (await graphql(http, JOB, {"id": job["id"]}))["data"]["predictionJob"]
    assert pruned["prunedAt"] is not None
    assert {key: pruned[key] for key in done if key != "prunedAt"} == {
        key: done[key] for key in done if key != "prunedAt"
    }


async def test_a_server_side_path_under_the_allowed_directory(
    http: httpx.AsyncClient, engine: AsyncEngine
):
    body = await graphql(
        http, SUBMIT, {"input": {"model": "iris-classifier", "source": {"path": "rows.csv"}}}
    )
    job = body["data"]["submitPredictionJob"]["job"]
    assert (await finished(http, job["id"]))["counts"]["scored"] == 30
    assert len(await stored_rows(engine, job["id"])) == 30


async def test_failing_rows_are_reported_and_nothing_is_stored(
    http: httpx.AsyncClient, engine: AsyncEngine
):
    job = (await submit(http, iris_csv(120, bad={3: "abc", 100: "1e999"})))["job"]
    done = await finished(http, job["id"])
    assert done["state"] == "FAILED"
    assert done["counts"] == {"total": 120, "scored": 0, "failed": 2}
    assert [error["row"] for error in done["errors"]] == [3, 100]
    assert "partial: true" in done["message"]
    assert await stored_rows(engine, job["id"]) == []

    job = (await submit(http, iris_csv(120, bad={3: "abc", 100: "1e999"}), partial=True))["job"]
    done = await finished(http, job["id"])
    assert done["state"] == "SUCCEEDED"
    assert done["counts"] == {"total": 120, "scored": 118, "failed": 2}
    assert len(await stored_rows(engine, job["id"])) == 118


async def test_cancelling_a_job(http: httpx.AsyncClient, engine: AsyncEngine):
    """Cancelled at once (queued, or with a first chunk or two stored: those stay, counted);
    a cancelled job stores nothing more, and cancelling it again changes nothing."""
    job = (await submit(http, iris_csv(400)))["job"]
    cancelled = (await graphql(http, CANCEL, {"id": job["id"]}))["data"]["cancelPredictionJob"]
    assert cancelled == {"job": {"id": job["id"], "state": "CANCELLED"}, "userErrors": []}
    await asyncio.sleep(0.5)  # what a worker still holding the job would do, it has done
    done = await finished(http, job["id"])
    assert done["state"] == "CANCELLED"
    assert done["counts"]["scored"] < 400
    assert len(await stored_rows(engine, job["id"])) == done["counts"]["scored"]
    again = (await graphql(http, CANCEL, {"id": job["id"]}))["data"]["cancelPredictionJob"]
    assert again["job"]["state"] == "CANCELLED"

    unknown = await graphql(http, CANCEL, {"id": "not-a-job"})
    assert unknown["data"]["cancelPredictionJob"]["userErrors"] == [
        {"field": ["id"], "code": "JOB_NOT_FOUND"}
    ]
    assert (await graphql(http, JOB, {"id": "not-a-job"}))["data"]["predictionJob"] is None


@pytest.mark.parametrize(
    ("content", "name", "source", "code"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image.png", None, "UNSUPPORTED_FORMAT"),
        (b"petal_length,petal_width\n1,2\n", "iris.csv", None, "MISSING_COLUMN"),
        (b"x" * (65 * 1024), "big.csv", None, "FILE_TOO_LARGE"),
        (None, None, {"path": "../../etc/passwd"}, "PATH_NOT_ALLOWED"),
        (None, None, {}, "INVALID_SOURCE"),
    ],
)
async def test_bad_input_is_a_user_error_and_queues_nothing(
    http: httpx.AsyncClient,
    engine: AsyncEngine,
    content: bytes | None,
    name: str | None,
    source: dict | None,
    code: str,
):
    if content is not None:
        payload = await submit(http, content, name or "x")
    else:
        body = await graphql(
            http, SUBMIT, {"input": {"model": "iris-classifier", "source": source}}
        )
        payload = body["data"]["submitPredictionJob"]
    assert payload["job"] is None
    assert {error["code"] for error in payload["userErrors"]} == {code}
    assert payload["userErrors"][0]["field"][0] == "source"
    async with engine.connect() as connection:
        count = await connection.execute(text("SELECT count(*) FROM prediction_jobs"))
        assert count.scalar() == 0


async def test_an_upload_without_the_preflight_header_is_refused(http: httpx.AsyncClient):
    variables = {"model": "iris-classifier"}
    response = await http.post("/graphql", **multipart(variables, iris_csv(3)))
    assert response.status_code == 400
    assert "Preflight" in response.text


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    settings = make_settings(
        database_url, data_dir, job_workers=1, job_chunk_rows=100, job_part_rows=1000
    )
    async with served(settings) as running:
        yield running


async def test_the_subscription_follows_a_job_to_its_end(server: Served):
    async with httpx.AsyncClient(base_url=server.url) as client:
        job = (await submit(client, iris_csv(500)))["job"]
    async with Subscriptions.open(server.url) as connection:
        await connection.acknowledged()
        operation = await connection.subscribe(UPDATED, {"id": job["id"]})
        states = []
        while True:
            message = await connection.receive(within=10)
            if message["type"] == "complete":
                break
            assert message["type"] == "next" and message["id"] == operation, message
            states.append(message["payload"]["data"]["predictionJobUpdated"])
    assert states[-1] == {"state": "SUCCEEDED", "progress": 1.0, "counts": {"scored": 500}}
    scored = [state["counts"]["scored"] for state in states]
    assert scored == sorted(scored)
    assert len(states) >= 2, "the state at subscription, then at least the end"
