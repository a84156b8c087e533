"""Files, submissions and worker steps for prediction-job tests."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import make_settings

from modelql.persistence import job_repository
from modelql.runtime import Runtime
from modelql.services.prediction_jobs import JobSubmission, PredictionJobs, UploadedFile
from modelql.services.predictions import Requester

IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")
REQUESTER = Requester(request_id="submit-1", caller="batch-team")


@asynccontextmanager
async def job_runtime(database_url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    """A started runtime whose jobs come in chunks of 40 rows and parts of 100."""
    settings = make_settings(database_url, data_dir, job_chunk_rows=40, job_part_rows=100)
    runtime = Runtime.build(settings, database_url=database_url)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def iris_csv(rows: int, *, bad: dict[int, str] | None = None) -> bytes:
    """`rows` data rows (with an extra `species` column, which jobs ignore); `bad` maps a row
    number (from 1) to the text of its sepal_length."""
    lines = [",".join((*IRIS, "species"))]
    for number in range(1, rows + 1):
        first = (bad or {}).get(number, f"{4.3 + (number % 36) / 10:.1f}")
        lines.append(",".join([first, "3.1", f"{1 + number % 6}.2", "0.4", "setosa"]))
    return ("\n".join(lines) + "\n").encode()


def upload(content: bytes, name: str = "iris.csv") -> UploadedFile:
    stream = io.BytesIO(content)

    async def read(size: int) -> bytes:
        return stream.read(size)

    return UploadedFile(name=name, size=len(content), read=read)


def submission(file: UploadedFile | None = None, **overrides: object) -> JobSubmission:
    values: dict[str, object] = {
        "model": "iris-classifier",
        "version": None,
        "alias": None,
        "partial": False,
        "upload": file,
        "path": None,
    }
    values.update(overrides)
    return JobSubmission(**values)  # type: ignore[arg-type]


async def work(jobs: PredictionJobs, job_id: uuid.UUID) -> None:
    """What the queue does: validate, then score every part."""
    await jobs.validate(job_id)
    async with jobs._connection() as connection:  # the parts the validation queued
        parts = await job_repository.parts(connection, job_id)
    for part in parts:
        await jobs.score(job_id, part["part"])


async def stop_after_commits(jobs: PredictionJobs, job_id: uuid.UUID, commits: int) -> None:
    """Work the job's first part until `commits` chunks committed, then stop the worker as a
    killed process would stop (cancelled between chunks)."""
    committed = 0
    stop = asyncio.Event()

    def counted() -> None:
        nonlocal committed
        committed += 1
        if committed == commits:
            stop.set()

    jobs._on_commit = counted
    worker = asyncio.create_task(jobs.score(job_id, 0))
    await stop.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def stored(engine: AsyncEngine, job_id: uuid.UUID) -> list[tuple[int, str | None, str]]:
    """The job's stored predictions: row number, caller, label."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT batch_index, caller, label FROM predictions WHERE request_id = :id "
                "ORDER BY batch_index"
            ),
            {"id": str(job_id)},
        )
        return [(row[0], row[1], row[2]) for row in rows]
