"""`modelql audit verify`: stored predictions re-scored with the artifact of their version
match exactly, and a stored answer that was not the model's is found, with its id."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import graphql, libpq_url

from modelql.models.artifacts import ArtifactStore
from modelql.services.catalogue import Catalogue
from modelql.services.freshness import Freshness
from modelql.services.inference import ModelCache
from modelql.services.prediction_audit import PredictionQuery
from modelql.services.verification import Verifier

MODELQL = str(Path(sys.executable).with_name("modelql"))
REPO = Path(__file__).resolve().parents[2]
PREDICT = """mutation($input: CreatePredictionsInput!) {
  createPredictions(input: $input) { predictions { id } userErrors { message } } }"""
IRIS = [
    {
        "sepal_length": 5.1 + n / 10,
        "sepal_width": 3.5,
        "petal_length": 1.4 + n / 3,
        "petal_width": 0.2 + n / 8,
    }
    for n in range(12)
]
DIABETES = {
    "age": 0.03,
    "sex": 0.05,
    "bmi": 0.06,
    "bp": 0.02,
    "s1": -0.04,
    "s2": -0.03,
    "s3": -0.04,
    "s4": 0.0,
    "s5": 0.02,
    "s6": -0.02,
}


async def store_demo_traffic(http: httpx.AsyncClient) -> None:
    """Singles and batches, concurrent (so the pipelines group them), on three models and
    both iris versions."""
    requests = [{"model": "iris-classifier", "instances": [instance]} for instance in IRIS] + [
        {"model": "iris-classifier", "version": 1, "instances": IRIS[:5]},
        {"model": "iris-classifier", "version": 2, "instances": IRIS},
        {"model": "diabetes-regressor", "instances": [DIABETES] * 3},
        {"model": "diabetes-regressor", "instances": [DIABETES]},
    ]
    bodies = await asyncio.gather(
        *(graphql(http, PREDICT, {"input": request}) for request in requests)
    )
    assert all(body["data"]["createPredictions"]["userErrors"] == [] for body in bodies)


async def tamper(engine: AsyncEngine) -> uuid.UUID:
    """A copy of a stored iris prediction with another label (rows cannot be updated)."""
    tampered = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """INSERT INTO predictions (id, model_id, model_version_id, inputs, label,
                     probabilities, confidence, latency_ms, request_id, batch_index, routed_by)
                   SELECT :id, model_id, model_version_id, inputs,
                          CASE label WHEN 'setosa' THEN 'virginica' ELSE 'setosa' END,
                          probabilities, confidence, latency_ms, 'tampered', 0, routed_by
                   FROM predictions WHERE label IS NOT NULL LIMIT 1"""
            ),
            {"id": tampered},
        )
    return tampered


def verifier(sessionmaker, artifact_store: ArtifactStore) -> Verifier:
    return Verifier(
        sessionmaker=sessionmaker,
        catalogue=Catalogue(Freshness.never()),
        model_cache=ModelCache(artifact_store),
    )


async def test_the_demo_traffic_matches_and_a_tampered_row_is_found(
    client: httpx.AsyncClient, engine: AsyncEngine, sessionmaker, artifact_store: ArtifactStore
):
    await store_demo_traffic(client)
    totals: list[int] = []
    progress: list[int] = []

    report = await verifier(sessionmaker, artifact_store).verify(
        PredictionQuery(), on_total=totals.append, on_progress=progress.append
    )
    assert report.passed and report.mismatches == []
    assert totals == [sum(progress)] == [12 + 5 + 12 + 3 + 1]
    checked = {(t.model, t.version.number): t.checked for t in report.tallies.values()}
    assert checked == {
        ("iris-classifier", 1): 17,  # production: the logistic regression
        ("iris-classifier", 2): 12,
        ("diabetes-regressor", 1): 4,
    }

    tampered = await tamper(engine)
    report = await verifier(sessionmaker, artifact_store).verify(PredictionQuery())
    assert not report.passed
    assert report.mismatches == [tampered]

    only_diabetes = await verifier(sessionmaker, artifact_store).verify(
        PredictionQuery(model="diabetes-regressor")
    )
    assert only_diabetes.passed
    sampled = await verifier(sessionmaker, artifact_store).verify(PredictionQuery(), sample=3)
    assert 3 <= sum(t.checked for t in sampled.tallies.values()) <= 37


async def test_the_command_exits_1_and_prints_the_ids_of_mismatches(
    client: httpx.AsyncClient, engine: AsyncEngine, database_url: str, data_dir: Path
):
    await store_demo_traffic(client)
    environment = {
        "DATABASE_URL": libpq_url(database_url),
        "MODELQL_DATA_DIR": str(data_dir),
        "MODELQL_LOG_JSON": "false",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "PATH": "/usr/bin:/bin",
    }

    def verify(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MODELQL, "audit", "verify", *options],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )

    passed = await asyncio.to_thread(verify)
    assert passed.returncode == 0, passed.stderr
    assert "All 33 predictions match" in passed.stderr
    assert passed.stdout == ""

    tampered = await tamper(engine)
    failed = await asyncio.to_thread(verify, "--model", "iris-classifier")
    assert failed.returncode == 1
    assert failed.stdout.split() == [str(tampered)]
    assert "iris-classifier v1" in failed.stderr

    window = await asyncio.to_thread(verify, "--since", "2000-01-01", "--until", "2000-01-02")
    assert window.returncode == 0, window.stderr
    assert "All 0 predictions match" in window.stderr


async def test_an_artifact_that_fails_its_checksum_fails_the_verification(
    client: httpx.AsyncClient, sessionmaker, artifact_store: ArtifactStore, tmp_path: Path
):
    await store_demo_traffic(client)
    copy = ArtifactStore(tmp_path / "artifacts")
    shutil.copytree(artifact_store.root, copy.root)
    [diabetes] = (copy.root / "diabetes-regressor").iterdir()
    diabetes.write_bytes(diabetes.read_bytes() + b"\0")

    report = await verifier(sessionmaker, copy).verify(PredictionQuery())

    assert not report.passed and report.mismatches == []
    tallies = {t.model: t for t in report.tallies.values()}
    assert (tallies["diabetes-regressor"].checked, tallies["diabetes-regressor"].unverifiable) == (
        4,
        4,
    )
    assert "integrity check" in (tallies["diabetes-regressor"].problem or "")
    assert tallies["iris-classifier"].unverifiable == 0
