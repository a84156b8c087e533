"""Prediction jobs' use case on real PostgreSQL, worked by calling its worker steps as the
queue would: a job's rows become stored predictions; a worker stopped between chunks resumes
after the last committed chunk without storing a row twice; cancelling stops it; failing rows
are reported and stored nothing (or, with `partial`, only the valid rows are stored)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from job_support import (
    IRIS,
    REQUESTER,
    iris_csv,
    job_runtime,
    stop_after_commits,
    stored,
    submission,
    upload,
    work,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import make_settings

from modelql.models.vocabulary import JobState
from modelql.runtime import Runtime
from modelql.services.errors import ErrorCode, UserInputError
from modelql.services.prediction_jobs import RowError, UploadedFile, _Prepared, _Shadowed


@pytest.fixture
async def runtime(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[Runtime]:
    async with job_runtime(database_url, data_dir) as runtime:
        yield runtime


async def test_a_job_stores_each_row_as_a_prediction(runtime: Runtime, engine: AsyncEngine):
    job = await runtime.jobs.submit(submission(upload(iris_csv(250))), REQUESTER)
    assert job.state is JobState.QUEUED

    await work(runtime.jobs, job.id)

    done = await runtime.jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_total, done.rows_scored, done.rows_failed) == (
        JobState.SUCCEEDED,
        250,
        250,
        0,
    )
    assert done.progress == 1.0
    rows = await stored(engine, job.id)
    assert [number for number, _, _ in rows] == list(range(1, 251))
    assert {caller for _, caller, _ in rows} == {"batch-team"}
    assert {label for _, _, label in rows} <= {"setosa", "versicolor", "virginica"}


async def test_parquet_is_read_like_csv(runtime: Runtime, engine: AsyncEngine):
    table = pa.table({name: [5.1, 6.3, 5.8] for name in IRIS})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    job = await runtime.jobs.submit(submission(upload(sink.getvalue(), "rows.parquet")), REQUESTER)
    await work(runtime.jobs, job.id)
    assert [number for number, _, _ in await stored(engine, job.id)] == [1, 2, 3]


async def test_a_stopped_worker_resumes_after_its_last_chunk_without_duplicates(
    runtime: Runtime, engine: AsyncEngine
):
    """The worker is stopped (cancelled, as a killed process would stop) once its second chunk
    committed; another run of the same part goes on from there, and a third run, racing one
    that already finished, stores nothing."""
    jobs = runtime.jobs
    job = await jobs.submit(submission(upload(iris_csv(100))), REQUESTER)
    await jobs.validate(job.id)
    await stop_after_commits(jobs, job.id, commits=2)
    halfway = await jobs.get(job.id)
    assert halfway is not None
    assert halfway.state is JobState.RUNNING
    assert halfway.rows_scored == 80
    assert len(await stored(engine, job.id)) == 80

    await jobs.score(job.id, 0)
    await jobs.score(job.id, 0)

    done = await jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_scored) == (JobState.SUCCEEDED, 100)
    assert [number for number, _, _ in await stored(engine, job.id)] == list(range(1, 101))


async def test_a_chunk_another_worker_stored_first_adds_no_count(runtime: Runtime):
    """Two workers prepared the same chunk; the second finds the cursor moved and stores
    nothing, and adds none of its counts (failed rows, shadow answers) to the job."""
    jobs = runtime.jobs
    job = await jobs.submit(submission(upload(iris_csv(100))), REQUESTER)
    await jobs.validate(job.id)
    prepared = _Prepared(0, 40, None, [RowError(7, "a reason")], _Shadowed([], 5))
    async with jobs._connection() as connection:
        assert await jobs._store_chunk(connection, job.id, 0, prepared)
        assert not await jobs._store_chunk(connection, job.id, 0, prepared)
    after = await jobs.get(job.id)
    assert after is not None
    assert (after.rows_done, after.rows_failed, after.shadow_rows_failed) == (40, 1, 5)
    assert [error.row for error in after.errors] == [7]


async def test_a_cancelled_job_stores_no_further_chunk(runtime: Runtime, engine: AsyncEngine):
    jobs = runtime.jobs
    job = await jobs.submit(submission(upload(iris_csv(100))), REQUESTER)
    await jobs.validate(job.id)
    cancelled = await jobs.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED
    await jobs.score(job.id, 0)
    assert await stored(engine, job.id) == []
    again = await jobs.cancel(job.id)
    assert again.state is JobState.CANCELLED
    with pytest.raises(UserInputError) as refused:
        await jobs.cancel(uuid.uuid4())
    assert refused.value.problems[0].code is ErrorCode.JOB_NOT_FOUND


async def test_failing_rows_fail_the_job_and_store_nothing(runtime: Runtime, engine: AsyncEngine):
    jobs = runtime.jobs
    job = await jobs.submit(submission(upload(iris_csv(90, bad={7: "abc", 61: ""}))), REQUESTER)
    await work(jobs, job.id)
    failed = await jobs.get(job.id)
    assert failed is not None
    assert failed.state is JobState.FAILED
    assert failed.rows_failed == 2
    assert [error.row for error in failed.errors] == [7, 61]
    assert "sepal_length" in failed.errors[0].reason
    assert "Missing required feature" in failed.errors[1].reason
    assert await stored(engine, job.id) == []


async def test_a_partial_job_stores_the_valid_rows(runtime: Runtime, engine: AsyncEngine):
    jobs = runtime.jobs
    bad = {7: "abc", 61: "nan"}
    job = await jobs.submit(submission(upload(iris_csv(90, bad=bad)), partial=True), REQUESTER)
    await work(jobs, job.id)
    done = await jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_scored, done.rows_failed) == (JobState.SUCCEEDED, 88, 2)
    assert [error.row for error in done.errors] == [7, 61]
    numbers = [number for number, _, _ in await stored(engine, job.id)]
    assert numbers == [n for n in range(1, 91) if n not in bad]


@pytest.mark.parametrize(
    ("file", "path", "code"),
    [
        (upload(b"\x89PNG\r\n\x1a\n\x00\x00", "image.png"), None, ErrorCode.UNSUPPORTED_FORMAT),
        (upload(b"PAR1 not really parquet", "x.parquet"), None, ErrorCode.UNSUPPORTED_FORMAT),
        (upload(b"sepal_length,sepal_width\n1,2\n"), None, ErrorCode.MISSING_COLUMN),
        (upload(b"x" * 5000), None, ErrorCode.FILE_TOO_LARGE),
        (None, "../etc/passwd", ErrorCode.PATH_NOT_ALLOWED),
        (None, None, ErrorCode.INVALID_SOURCE),
    ],
)
async def test_bad_input_is_refused_with_a_code_and_stores_nothing(
    database_url: str,
    data_dir: Path,
    demo_catalogue: None,
    engine: AsyncEngine,
    tmp_path: Path,
    file: UploadedFile | None,
    path: str | None,
    code: ErrorCode,
):
    settings = make_settings(database_url, data_dir, job_max_bytes=4096, job_source_dir=tmp_path)
    runtime = Runtime.build(settings, database_url=database_url)
    await runtime.start()
    try:
        with pytest.raises(UserInputError) as refused:
            await runtime.jobs.submit(submission(file, path=path), REQUESTER)
    finally:
        await runtime.stop()
    assert {problem.code for problem in refused.value.problems} == {code}
    async with engine.connect() as connection:
        assert (
            await connection.execute(text("SELECT count(*) FROM prediction_jobs"))
        ).scalar() == 0
        assert (await connection.execute(text("SELECT count(*) FROM pgqueuer"))).scalar() == 0


async def test_paths_are_read_only_under_the_allowed_directory(
    database_url: str, data_dir: Path, demo_catalogue: None, engine: AsyncEngine, tmp_path: Path
):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "rows.csv").write_bytes(iris_csv(5))
    (tmp_path / "outside.csv").write_bytes(iris_csv(5))
    (allowed / "link.csv").symlink_to(tmp_path / "outside.csv")
    for source_dir in (None, allowed):
        settings = make_settings(database_url, data_dir, job_source_dir=source_dir)
        runtime = Runtime.build(settings, database_url=database_url)
        await runtime.start()
        try:
            for name in ("rows.csv", "../outside.csv", str(tmp_path / "outside.csv"), "link.csv"):
                if source_dir is not None and name == "rows.csv":
                    job = await runtime.jobs.submit(submission(path=name), REQUESTER)
                    await work(runtime.jobs, job.id)
                    assert len(await stored(engine, job.id)) == 5
                    continue
                with pytest.raises(UserInputError) as refused:
                    await runtime.jobs.submit(submission(path=name), REQUESTER)
                assert refused.value.problems[0].code is ErrorCode.PATH_NOT_ALLOWED
        finally:
            await runtime.stop()
