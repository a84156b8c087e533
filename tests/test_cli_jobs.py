"""`modelql predict` runs a job from the terminal and writes its results; `modelql worker`
processes work queued jobs, and a worker killed mid-job (SIGKILL) loses nothing and duplicates
nothing: another worker picks the job up after the last committed chunk; `modelql jobs prune`
drops what expired jobs keep."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest
from job_support import iris_csv
from support import libpq_url, make_settings
from test_cli_embedded import MODELQL, REPO, _base_env, _run_cli, _said

from modelql.runtime import Runtime
from modelql.services.prediction_jobs import JobSubmission, UploadedFile
from modelql.services.predictions import Requester

pytestmark = pytest.mark.slow  # starts `modelql` processes


def cli_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return _base_env(
        DATABASE_URL=database_url,
        MODELQL_DATA_DIR=str(data_dir),
        MODELQL_AUTO_MIGRATE="false",
        **extra,
    )


async def query(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(libpq_url(database_url))
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def test_predict_writes_the_results_and_stores_them(
    database_url: str, data_dir: Path, demo_catalogue: None, tmp_path: Path
):
    source = tmp_path / "iris.csv"
    source.write_bytes(iris_csv(300))
    output = tmp_path / "scored.csv"
    env = cli_env(database_url, data_dir, MODELQL_JOB_CHUNK_ROWS="100")
    args = ["predict", str(source), "--model", "iris-classifier", "--output", str(output)]
    result = await asyncio.to_thread(_run_cli, args, env)
    assert result.returncode == 0, _said(result)
    assert "300 rows scored, 0 failed" in _said(result)
    with output.open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["row"]) for row in rows] == list(range(1, 301))
    assert {row["label"] for row in rows} <= {"setosa", "versicolor", "virginica"}
    assert {"confidence", "probability_setosa"} <= set(rows[0])
    stored = await query(
        database_url,
        "SELECT count(*), count(DISTINCT batch_index), min(caller) FROM predictions "
        "WHERE caller = 'modelql predict'",
    )
    assert tuple(stored[0]) == (300, 300, "modelql predict")

    parquet = tmp_path / "scored.parquet"
    args = [*args[:-1], str(parquet), "--version", "1"]
    result = await asyncio.to_thread(_run_cli, args, env)
    assert result.returncode == 0, _said(result)
    assert pq.read_table(parquet).num_rows == 300


async def test_predict_reports_failing_rows_and_bad_files(
    database_url: str, data_dir: Path, demo_catalogue: None, tmp_path: Path
):
    source = tmp_path / "iris.csv"
    source.write_bytes(iris_csv(50, bad={4: "tall"}))
    env = cli_env(database_url, data_dir)
    result = await asyncio.to_thread(
        _run_cli, ["predict", str(source), "--model", "iris-classifier"], env
    )
    assert result.returncode == 1
    assert "row 4: Feature 'sepal_length'" in _said(result)
    assert "FAILED" in _said(result)

    source.write_bytes(b"a,b\n1,2\n")
    result = await asyncio.to_thread(
        _run_cli, ["predict", str(source), "--model", "iris-classifier"], env
    )
    assert result.returncode == 2
    assert "MISSING_COLUMN" in _said(result)


async def test_jobs_prune_drops_the_files_of_jobs_finished_before_the_retention(
    database_url: str, data_dir: Path, demo_catalogue: None, tmp_path: Path
):
    source = tmp_path / "iris.csv"
    source.write_bytes(iris_csv(20))
    env = cli_env(database_url, data_dir, MODELQL_JOB_RETENTION_DAYS="none")
    args = ["predict", str(source), "--model", "iris-classifier"]
    assert (await asyncio.to_thread(_run_cli, args, env)).returncode == 0
    [job] = await query(
        database_url,
        "UPDATE prediction_jobs SET finished_at = now() - interval '3 days' "
        "WHERE id = (SELECT id FROM prediction_jobs ORDER BY created_at DESC LIMIT 1) RETURNING id",
    )

    refused = await asyncio.to_thread(_run_cli, ["jobs", "prune"], env)
    assert refused.returncode == 2
    assert "No job retention" in _said(refused)
    assert (
        await asyncio.to_thread(_run_cli, ["jobs", "prune", "--retention-days", "0"], env)
    ).returncode == 2
    result = await asyncio.to_thread(_run_cli, ["jobs", "prune", "--retention-days", "2"], env)

    assert result.returncode == 0, _said(result)
    assert "Pruned 1 prediction jobs" in _said(result)
    [kept] = await query(
        database_url,
        "SELECT pruned_at IS NOT NULL, rows_done, "
        "(SELECT count(*) FROM prediction_job_sources WHERE job_id = $1) FROM prediction_jobs "
        "WHERE id = $1",
        job["id"],
    )
    assert tuple(kept) == (True, 20, 0)


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MODELQL, "worker"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


async def test_a_killed_worker_loses_and_duplicates_nothing(
    database_url: str, data_dir: Path, demo_catalogue: None
):
    rows = 60_000
    settings = make_settings(database_url, data_dir)
    runtime = Runtime.build(settings, database_url=database_url)
    await runtime.start()
    try:
        content = iris_csv(rows)
        chunks = iter([content])

        async def read(_size: int) -> bytes:
            return next(chunks, b"")

        job = await runtime.jobs.submit(
            JobSubmission(
                model="iris-classifier",
                version=None,
                alias=None,
                partial=False,
                upload=UploadedFile("iris.csv", len(content), read),
                path=None,
            ),
            Requester(request_id="kill-test", caller="kill-test"),
        )
    finally:
        await runtime.stop()
    env = cli_env(
        database_url,
        data_dir,
        MODELQL_JOB_CHUNK_ROWS="300",
        MODELQL_JOB_HEARTBEAT_TIMEOUT_S="1",
    )
    first = start_worker(env)
    try:
        scored = 0
        for _ in range(1200):
            await asyncio.sleep(0.025)
            scored = (await query(database_url, SCORED, job.id))[0]["rows_scored"]
            if scored >= 3000:
                break
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=10)
    assert 0 < scored < rows, "the worker was killed mid-job"
    state, scored_at_kill = (await query(database_url, STATE, job.id))[0]
    assert state == "RUNNING"
    assert (await query(database_url, STORED, str(job.id)))[0][0] == scored_at_kill

    second = start_worker(env)
    try:
        for _ in range(2400):
            await asyncio.sleep(0.05)
            state, _ = (await query(database_url, STATE, job.id))[0]
            if state != "RUNNING":
                break
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=20)
    assert state == "SUCCEEDED"
    count, distinct, first_row, last_row = (await query(database_url, STORED_ROWS, str(job.id)))[0]
    assert (count, distinct, first_row, last_row) == (rows, rows, 1, rows)


SCORED = "SELECT rows_scored FROM prediction_jobs WHERE id = $1"
STATE = "SELECT state, rows_scored FROM prediction_jobs WHERE id = $1"
STORED = "SELECT count(*) FROM predictions WHERE request_id = $1"
STORED_ROWS = (
    "SELECT count(*), count(DISTINCT batch_index), min(batch_index), max(batch_index) "
    "FROM predictions WHERE request_id = $1"
)
