"""Shadow versions score prediction jobs too: each chunk's sampled rows are scored by every
shadow version (one estimator call each) and stored beside the primaries, linked by the
primary's key, in the transaction that stores the chunk; rows are drawn by the job's id and
their row number, so a resumed job neither loses nor repeats a shadow answer; a shadow that
cannot score does not fail the job, it is counted and logged once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from job_support import REQUESTER, job_runtime, stop_after_commits, submission, upload, work
from shadow_support import FLIPPED, SIGNATURE, Y, register
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from modelql.models.artifacts import ArtifactStore
from modelql.models.vocabulary import JobState
from modelql.runtime import Runtime
from modelql.services import shadow_versions
from modelql.services.shadow_scoring import drawn_rows
from modelql.services.shadow_versions import ShadowVersionRef


@pytest.fixture
async def runtime(
    database_url: str, data_dir: Path, demo_catalogue: None
) -> AsyncIterator[Runtime]:
    async with job_runtime(database_url, data_dir) as runtime:
        yield runtime


@pytest.fixture
async def model(sessionmaker, artifact_store: ArtifactStore) -> str:
    """v1 production; v2 trained on other labels (disagrees on some rows); v3 like v1."""
    return await register(
        sessionmaker, artifact_store, [(Y, SIGNATURE), (FLIPPED, SIGNATURE), (Y, SIGNATURE)]
    )


def ab_csv(rows: int) -> bytes:
    """`rows` data rows of features a and b spread over both classes."""
    lines = ["a,b"] + [f"{(n * 7 % 45) / 10:.1f},{(n * 11 % 50) / 10:.1f}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def shadow(
    runtime: Runtime,
    sessionmaker: async_sessionmaker[AsyncSession],
    model: str,
    versions: list[int],
    sample: float | None,
) -> None:
    async with sessionmaker.begin() as session:
        await shadow_versions.set_shadow(
            session,
            model_name=model,
            versions=[ShadowVersionRef(number=number) for number in versions],
            sample=sample,
            actor="tests",
        )
    runtime.catalogue.forget_routes()  # as the catalogue notification does, at once


async def shadow_answers(engine: AsyncEngine, job_id: uuid.UUID) -> list[tuple[int, int, str]]:
    """The job's shadow answers joined to their primaries by the primary's whole key: (row
    number, shadow version number, shadow label), by row and version."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT p.batch_index, v.number, s.label FROM shadow_predictions s "
                "JOIN predictions p ON p.id = s.primary_id AND p.created_at = s.primary_created_at "
                "JOIN model_versions v ON v.id = s.model_version_id "
                "WHERE p.request_id = :id ORDER BY 1, 2"
            ),
            {"id": str(job_id)},
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def labels(engine: AsyncEngine, job_id: uuid.UUID) -> dict[int, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT batch_index, label FROM predictions WHERE request_id = :id"),
            {"id": str(job_id)},
        )
        return {row[0]: row[1] for row in rows}


async def test_a_full_shadow_answers_every_row_of_a_job_beside_its_primary(
    runtime: Runtime, sessionmaker, engine: AsyncEngine, model: str
):
    await shadow(runtime, sessionmaker, model, [2, 3], 1.0)
    job = await runtime.jobs.submit(submission(upload(ab_csv(130)), model=model), REQUESTER)

    await work(runtime.jobs, job.id)

    done = await runtime.jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_scored, done.rows_shadowed, done.shadow_rows_failed) == (
        JobState.SUCCEEDED,
        130,
        2 * 130,
        0,
    )
    answers = await shadow_answers(engine, job.id)
    assert [(row, version) for row, version, _ in answers] == [
        (row, version) for row in range(1, 131) for version in (2, 3)
    ], "one answer per row and shadow version, each linked to its primary"
    primary = await labels(engine, job.id)
    by_version = {
        version: {r: label for r, v, label in answers if v == version} for version in (2, 3)
    }
    assert by_version[3] == primary, "v3 is trained like the primary: the same answers"
    assert by_version[2] != primary, "v2 was trained on other labels"
    async with engine.connect() as connection:
        feed = await connection.scalar(
            text("SELECT count(*) FROM prediction_commits WHERE :id = ANY(prediction_ids)"),
            {"id": next(iter(await _primary_ids(engine, job.id)))},
        )
    assert feed == 0, "a job's rows (and their shadows) are not sent to the live feed"


async def _primary_ids(engine: AsyncEngine, job_id: uuid.UUID) -> list[uuid.UUID]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id FROM predictions WHERE request_id = :id"), {"id": str(job_id)}
        )
        return [row[0] for row in rows]


def test_rows_are_drawn_by_job_and_row_number_alone():
    job, other = uuid.uuid4(), uuid.uuid4()
    numbers = list(range(1, 20_001))
    assert drawn_rows(job, numbers, 0.0) == [], "a sample of 0 draws no row"
    assert drawn_rows(job, numbers, 1.0) == list(range(20_000)), "a sample of 1 draws all"
    drawn = drawn_rows(job, numbers, 0.3)
    assert 0.28 * 20_000 < len(drawn) < 0.32 * 20_000
    assert drawn == drawn_rows(job, numbers, 0.3), "the same rows on every call"
    chunked = [
        start + position
        for start in range(0, 20_000, 40)
        for position in drawn_rows(job, numbers[start : start + 40], 0.3)
    ]
    assert chunked == drawn, "the same rows whatever the chunks"
    assert set(drawn_rows(other, numbers, 0.3)) != set(drawn), "another job, other rows"


async def test_without_shadows_a_job_stores_none(
    runtime: Runtime, sessionmaker, engine: AsyncEngine, model: str
):
    """No shadow (the sample is 0), or shadows cleared: no shadow answer, none counted."""
    plain = await runtime.jobs.submit(submission(upload(ab_csv(50)), model=model), REQUESTER)
    await work(runtime.jobs, plain.id)
    await shadow(runtime, sessionmaker, model, [2], 1.0)
    await shadow(runtime, sessionmaker, model, [], None)
    cleared = await runtime.jobs.submit(submission(upload(ab_csv(50)), model=model), REQUESTER)
    await work(runtime.jobs, cleared.id)
    for job_id in (plain.id, cleared.id):
        done = await runtime.jobs.get(job_id)
        assert done is not None
        assert (done.state, done.rows_scored, done.rows_shadowed) == (JobState.SUCCEEDED, 50, 0)
        assert await shadow_answers(engine, job_id) == []


async def test_a_sampled_job_resumed_after_a_crash_stores_each_drawn_row_once(
    runtime: Runtime, sessionmaker, engine: AsyncEngine, model: str
):
    """The worker is stopped once its second chunk committed, then the part is worked again
    (twice): the shadows answer exactly the rows the job's draw picks, once per version."""
    await shadow(runtime, sessionmaker, model, [2, 3], 0.5)
    jobs = runtime.jobs
    job = await jobs.submit(submission(upload(ab_csv(100)), model=model), REQUESTER)
    await jobs.validate(job.id)
    await stop_after_commits(jobs, job.id, commits=2)
    halfway = await jobs.get(job.id)
    assert halfway is not None
    assert (halfway.state, halfway.rows_scored) == (JobState.RUNNING, 80)
    drawn = [position + 1 for position in drawn_rows(job.id, list(range(1, 101)), 0.5)]
    assert 20 < len(drawn) < 80
    assert [r for r, _, _ in await shadow_answers(engine, job.id)] == [
        row for row in drawn if row <= 80 for _ in (2, 3)
    ], "the committed chunks' drawn rows, with their chunks"

    await jobs.score(job.id, 0)
    await jobs.score(job.id, 0)

    done = await jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_scored, done.rows_shadowed) == (
        JobState.SUCCEEDED,
        100,
        2 * len(drawn),
    )
    assert [(r, v) for r, v, _ in await shadow_answers(engine, job.id)] == [
        (row, version) for row in drawn for version in (2, 3)
    ], "every drawn row once per shadow version, none twice"


async def test_a_shadow_that_cannot_score_is_counted_and_logged_once_and_the_job_succeeds(
    runtime: Runtime,
    sessionmaker,
    engine: AsyncEngine,
    artifact_store: ArtifactStore,
    model: str,
    caplog: pytest.LogCaptureFixture,
):
    await shadow(runtime, sessionmaker, model, [2, 3], 1.0)
    async with engine.connect() as connection:
        path = await connection.scalar(
            text(
                "SELECT v.artifact_path FROM model_versions v JOIN models m ON m.id = v.model_id "
                "WHERE m.name = :m AND v.number = 2"
            ),
            {"m": model},
        )
    artifact = artifact_store.resolve(path)
    artifact.write_bytes(artifact.read_bytes() + b"\0")  # its checksum no longer matches
    job = await runtime.jobs.submit(submission(upload(ab_csv(130)), model=model), REQUESTER)

    with caplog.at_level(logging.WARNING, logger="modelql.services.prediction_jobs"):
        await work(runtime.jobs, job.id)

    done = await runtime.jobs.get(job.id)
    assert done is not None
    assert (done.state, done.rows_scored, done.rows_shadowed, done.shadow_rows_failed) == (
        JobState.SUCCEEDED,
        130,
        130,
        130,
    ), "v3 answered every row, v2 none, and the job succeeded"
    assert {version for _, version, _ in await shadow_answers(engine, job.id)} == {3}
    failures = [r for r in caplog.records if "cannot score its rows" in r.getMessage()]
    assert len(failures) == 1, "logged once for the job, not per chunk"
