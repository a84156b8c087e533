"""Prediction jobs: a CSV of iris rows (1,000,000 by default) scored by 1, then 2 `modelql
worker` processes, on a fresh database; rows/s from submission to SUCCEEDED (validation of the
whole file included). Also the queue's overhead: how long a tiny job waits between its
submission's COMMIT and a worker starting it (pgqueuer woken by LISTEN/NOTIFY).

    .venv/bin/python bench/jobs.py                      # 1,000,000 rows; 1 and 2 workers
    .venv/bin/python bench/jobs.py --rows 200000 --workers 1

DATABASE_URL names the server (a fresh database is made and dropped); unset: an embedded
cluster."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from processes import Database, database, fetch, start, stop  # noqa: E402

from modelql import schema_migrations  # noqa: E402
from modelql.runtime import Runtime  # noqa: E402
from modelql.services.prediction_jobs import JobSubmission  # noqa: E402
from modelql.services.predictions import Requester  # noqa: E402
from modelql.settings import Settings  # noqa: E402

MODELQL = str(Path(sys.executable).with_name("modelql"))
IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def write_csv(path: Path, rows: int) -> None:
    """`rows` iris-like rows (the measurements of the 150 flowers, repeated and varied)."""
    with path.open("w") as file:
        file.write(",".join(IRIS) + "\n")
        for number in range(rows):
            file.write(
                f"{4.3 + (number % 36) / 10:.1f},{2.0 + (number % 24) / 10:.1f},"
                f"{1.0 + (number % 59) / 10:.1f},{0.1 + (number % 25) / 10:.1f}\n"
            )


def env_for(db: Database, data_dir: Path, source_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELQL_")}
    env.update(
        DATABASE_URL=db.url,
        MODELQL_DATA_DIR=str(data_dir),
        MODELQL_AUTO_MIGRATE="false",
        MODELQL_JOB_SOURCE_DIR=str(source_dir),
        MODELQL_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


async def submit(settings: Settings, url: str, name: str) -> uuid.UUID:
    runtime = Runtime.build(settings, database_url=url)
    await runtime.start()
    try:
        job = await runtime.jobs.submit(
            JobSubmission("iris-classifier", None, None, False, None, name),
            Requester(request_id="bench", caller="bench"),
        )
    finally:
        await runtime.stop()
    return job.id


async def finished(url: str, job_id: uuid.UUID, timeout_s: float) -> tuple[str, float, int]:
    """The job's end state, seconds from creation to its end, rows scored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await fetch(
            url,
            "SELECT state, extract(epoch FROM finished_at - created_at) AS s, rows_scored "
            "FROM prediction_jobs WHERE id = $1",
            job_id,
        )
        state, seconds, scored = rows[0]
        if state not in ("QUEUED", "RUNNING"):
            return state, float(seconds), scored
        await asyncio.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout_s} s")


async def queue_delays(settings: Settings, url: str, jobs: int) -> list[float]:
    """Seconds from each tiny job's submission (COMMIT) to a worker marking it RUNNING."""
    delays = []
    for _ in range(jobs):
        job_id = await submit(settings, url, "tiny.csv")
        await finished(url, job_id, 60)
        rows = await fetch(
            url,
            "SELECT extract(epoch FROM started_at - created_at) FROM prediction_jobs WHERE id = $1",
            job_id,
        )
        delays.append(float(rows[0][0]))
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2", help="worker processes per run, e.g. 1,2")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--part-rows", type=int, default=100_000)
    parser.add_argument("--tiny-jobs", type=int, default=20)
    options = parser.parse_args()
    counts = [int(count) for count in options.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="modelql-jobs-bench-") as scratch_name:
        scratch = Path(scratch_name)
        source_dir = scratch / "files"
        source_dir.mkdir()
        started = time.monotonic()
        write_csv(source_dir / "iris.csv", options.rows)
        write_csv(source_dir / "tiny.csv", 10)
        size_mb = (source_dir / "iris.csv").stat().st_size / 1e6
        took = time.monotonic() - started
        print(f"{options.rows:,} rows, {size_mb:.1f} MB, written in {took:.1f} s")
        with database(os.environ.get("DATABASE_URL"), scratch) as db:
            schema_migrations.upgrade_to_head(db.url)
            env = env_for(
                db,
                scratch / "data",
                source_dir,
                MODELQL_JOB_CHUNK_ROWS=str(options.chunk_rows),
                MODELQL_JOB_PART_ROWS=str(options.part_rows),
                MODELQL_JOB_MAX_BYTES=str(1 << 30),
            )
            start([MODELQL, "train-demo"], env).wait()
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=db.url,
                data_dir=scratch / "data",
                job_workers=0,
                job_source_dir=source_dir,
                job_max_bytes=1 << 30,
                job_part_rows=options.part_rows,
                log_level="WARNING",
            )
            results = []
            for count in counts:
                workers = [start([MODELQL, "worker"], env) for _ in range(count)]
                try:
                    time.sleep(3)  # started, listening
                    if count == counts[0] and options.tiny_jobs:
                        delays = asyncio.run(queue_delays(settings, db.url, options.tiny_jobs))
                        print(
                            f"queue overhead (submission COMMIT -> RUNNING, {len(delays)} tiny "
                            f"jobs): median {statistics.median(delays) * 1000:.1f} ms, "
                            f"max {max(delays) * 1000:.1f} ms"
                        )
                    job_id = asyncio.run(submit(settings, db.url, "iris.csv"))
                    state, seconds, scored = asyncio.run(finished(db.url, job_id, 3600))
                finally:
                    for worker in workers:
                        stop(worker)
                rate = scored / seconds
                results.append((count, state, seconds, rate))
                print(
                    f"{count} worker process(es): {state}, {scored:,} rows in {seconds:.1f} s "
                    f"= {rate:,.0f} rows/s"
                )
            if len(results) > 1:
                print(
                    f"scaling {results[-1][0]} vs {results[0][0]}: "
                    f"{results[-1][3] / results[0][3]:.2f}x"
                )


if __name__ == "__main__":
    main()
