"""Job retention: once a job has been finished longer than the retention, its uploaded file
and its parts are dropped, a batch of jobs per transaction, and so is what the job queue
logged before then. What the API shows of the job (state, counts, progress, errors) and its
stored predictions stay; running jobs and jobs finished within the retention are untouched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from job_support import REQUESTER, iris_csv, stored, submission, upload, work
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import make_settings

from modelql.persistence.partitions import PartitionInterval
from modelql.runtime import Runtime
from modelql.services import store_maintenance
from modelql.services.prediction_jobs import JobView
from modelql.services.store_maintenance import StoreMaintenance

RETENTION = timedelta(days=7)


@pytest.fixture
async def runtime(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[Runtime]:
    """Jobs worked by the test's own calls (no queue consumer)."""
    settings = make_settings(
        database_url, data_dir, job_workers=0, job_chunk_rows=40, job_part_rows=100
    )
    runtime = Runtime.build(settings, database_url=database_url)
    await runtime.start()
    yield runtime
    await runtime.stop()


def maintenance(database_url: str, days_from_now: float) -> StoreMaintenance:
    """The upkeep as a replica would run it that many days from now."""
    later = datetime.now(UTC) + timedelta(days=days_from_now)
    return StoreMaintenance(
        database_url=database_url,
        interval=PartitionInterval.WEEK,
        retention=None,
        job_retention=RETENTION,
        clock=lambda: later,
    )


async def kept_rows(engine: AsyncEngine, job_id: uuid.UUID) -> tuple[int, int]:
    """The job's uploaded files and parts still stored."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM prediction_job_sources WHERE job_id = :id), "
                    "(SELECT count(*) FROM prediction_job_parts WHERE job_id = :id)"
                ),
                {"id": job_id},
            )
        ).one()
        return row[0], row[1]


def shown(job: JobView | None) -> tuple[object, ...]:
    """What the API shows of a job, but for when it was pruned."""
    assert job is not None
    return (
        job.state,
        job.progress,
        job.rows_total,
        job.rows_done,
        job.rows_scored,
        job.rows_failed,
        job.errors,
        job.finished_at,
    )


async def test_an_expired_job_loses_its_file_and_parts_and_keeps_what_it_shows(
    runtime: Runtime, engine: AsyncEngine, database_url: str
):
    done = await runtime.jobs.submit(submission(upload(iris_csv(250))), REQUESTER)
    await work(runtime.jobs, done.id)
    cancelled = await runtime.jobs.submit(submission(upload(iris_csv(250))), REQUESTER)
    await runtime.jobs.validate(cancelled.id)
    await runtime.jobs.score(cancelled.id, 0)
    await runtime.jobs.cancel(cancelled.id)
    waiting = await runtime.jobs.submit(submission(upload(iris_csv(10))), REQUESTER)
    before = {job.id: shown(await runtime.jobs.get(job.id)) for job in (done, cancelled)}

    pruned = await maintenance(database_url, days_from_now=8).prune_jobs()

    assert pruned.jobs == 2
    for job_id, was in before.items():
        now = await runtime.jobs.get(job_id)
        assert now is not None and now.pruned_at is not None
        assert shown(now) == was
        assert await kept_rows(engine, job_id) == (0, 0)
    assert before[cancelled.id][3] == 100  # one part of 100 rows was scored before cancelling
    assert len(await stored(engine, done.id)) == 250
    assert len(await runtime.jobs.results(done.id)) == 250
    still_waiting = await runtime.jobs.get(waiting.id)
    assert still_waiting is not None and still_waiting.pruned_at is None
    assert await kept_rows(engine, waiting.id) == (1, 0)
    assert (await maintenance(database_url, days_from_now=9).prune_jobs()).jobs == 0


async def test_a_job_finished_within_the_retention_is_kept(
    runtime: Runtime, engine: AsyncEngine, database_url: str
):
    job = await runtime.jobs.submit(submission(upload(iris_csv(50))), REQUESTER)
    await work(runtime.jobs, job.id)

    pruned = await maintenance(database_url, days_from_now=6).prune_jobs()

    assert pruned.jobs == 0
    kept = await runtime.jobs.get(job.id)
    assert kept is not None and kept.pruned_at is None
    assert await kept_rows(engine, job.id) == (1, 1)


async def test_many_expired_jobs_are_pruned_a_batch_per_transaction(
    runtime: Runtime, engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store_maintenance, "JOBS_PER_TRANSACTION", 2)
    jobs = [await runtime.jobs.submit(submission(upload(iris_csv(5))), REQUESTER) for _ in "abcde"]
    for job in jobs:
        await runtime.jobs.cancel(job.id)

    pruned = await maintenance(database_url, days_from_now=8).prune_jobs()

    assert pruned.jobs == 5
    assert [await kept_rows(engine, job.id) for job in jobs] == [(0, 0)] * 5


async def test_the_queue_log_of_our_tasks_older_than_the_retention_is_dropped(
    runtime: Runtime, engine: AsyncEngine, database_url: str
):
    """Rows older than the retention go; newer ones and other entrypoints' stay."""
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM pgqueuer_log"))
        await connection.execute(
            text(
                "INSERT INTO pgqueuer_log (created, job_id, status, priority, entrypoint) VALUES "
                "(now() - interval '8 days', 1, 'successful', 0, 'modelql_job_score'), "
                "(now() - interval '8 days', 2, 'successful', 0, 'modelql_job_validate'), "
                "(now() - interval '6 days', 3, 'successful', 0, 'modelql_job_score'), "
                "(now() - interval '8 days', 4, 'successful', 0, 'someone_elses_task')"
            )
        )

    pruned = await maintenance(database_url, days_from_now=0).prune_jobs()

    async with engine.connect() as connection:
        left = (await connection.execute(text("SELECT job_id FROM pgqueuer_log"))).scalars()
        assert sorted(left) == [3, 4]
    assert pruned.log_rows == 2
