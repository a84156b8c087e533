"""Prediction jobs' rows: the job (state, counts, first errors), its uploaded file, and its
parts (ranges of rows, each with a cursor moved in the same transaction as the predictions
of each chunk). Straight over asyncpg, like the prediction writer it shares transactions with.
Every change notifies `modelql_jobs` once, with the job's id, when its transaction commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from modelql.models.vocabulary import JobState
from modelql.persistence.notifications import JOBS_CHANNEL
from modelql.persistence.tables import PredictionJob, PredictionJobSource

JOBS = PredictionJob.__tablename__
SOURCES = PredictionJobSource.__tablename__
PARTS = "prediction_job_parts"

_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class NewJob:
    id: uuid.UUID
    model_id: uuid.UUID
    model_version_id: uuid.UUID
    routed_by: str
    submitter: str | None
    partial: bool
    source_name: str
    source_format: str
    source_path: str | None
    source_bytes: int


async def notify(connection: asyncpg.Connection, job_id: uuid.UUID | None) -> None:
    """Queue the job's notification (None: every job's); PostgreSQL sends it at COMMIT (once
    per transaction)."""
    await connection.execute(
        "SELECT pg_notify($1, $2)", JOBS_CHANNEL, "" if job_id is None else str(job_id)
    )


async def create(connection: asyncpg.Connection, job: NewJob, content: bytes | None) -> None:
    """A QUEUED job, with its uploaded file when it has one."""
    await connection.execute(
        f"INSERT INTO {JOBS} (id, model_id, model_version_id, routed_by, submitter, partial, "
        "state, source_name, source_format, source_path, source_bytes) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'QUEUED', $7, $8, $9, $10)",
        job.id,
        job.model_id,
        job.model_version_id,
        job.routed_by,
        job.submitter,
        job.partial,
        job.source_name,
        job.source_format,
        job.source_path,
        job.source_bytes,
    )
    if content is not None:
        await connection.execute(
            f"INSERT INTO {SOURCES} (job_id, content) VALUES ($1, $2)", job.id, content
        )
    await notify(connection, job.id)


async def get(connection: asyncpg.Connection, job_id: uuid.UUID) -> asyncpg.Record | None:
    return await connection.fetchrow(f"SELECT * FROM {JOBS} WHERE id = $1", job_id)


async def content(connection: asyncpg.Connection, job_id: uuid.UUID) -> bytes | None:
    """The uploaded file of a job (None: it reads a server-side path)."""
    data: bytes | None = await connection.fetchval(
        f"SELECT content FROM {SOURCES} WHERE job_id = $1", job_id
    )
    return data


async def start(connection: asyncpg.Connection, job_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark a queued job RUNNING (a running one, resumed after a crash, stays so); None when
    the job is finished (cancelled, say) or gone."""
    record = await connection.fetchrow(
        f"UPDATE {JOBS} SET state = 'RUNNING', started_at = coalesce(started_at, now()), "
        "updated_at = now() WHERE id = $1 AND state = ANY($2::text[]) RETURNING *",
        job_id,
        list(_ACTIVE),
    )
    if record is not None:
        await notify(connection, job_id)
    return record


async def record_validation(
    connection: asyncpg.Connection,
    job_id: uuid.UUID,
    *,
    rows_total: int,
    rows_failed: int,
    errors: Sequence[dict[str, Any]],
    parts: Sequence[tuple[int, int]],
) -> bool:
    """Store what validating the whole file found and the parts to score; False when the
    job was cancelled or validated meanwhile."""
    updated = await connection.fetchval(
        f"UPDATE {JOBS} SET validated = true, rows_total = $2, rows_failed = $3, "
        "errors = $4::jsonb, updated_at = now() "
        "WHERE id = $1 AND state = 'RUNNING' AND NOT validated RETURNING id",
        job_id,
        rows_total,
        rows_failed,
        orjson.dumps(list(errors)).decode(),
    )
    if updated is None:
        return False
    await connection.execute(
        f"INSERT INTO {PARTS} (job_id, part, first_row, end_row, next_row) "
        "SELECT $1, p.part - 1, p.first_row, p.end_row, p.first_row "
        "FROM unnest($2::int4[], $3::int4[]) WITH ORDINALITY AS p(first_row, end_row, part)",
        job_id,
        [first for first, _ in parts],
        [end for _, end in parts],
    )
    await notify(connection, job_id)
    return True


async def parts(connection: asyncpg.Connection, job_id: uuid.UUID) -> list[asyncpg.Record]:
    return await connection.fetch(
        f"SELECT part, first_row, end_row, next_row FROM {PARTS} WHERE job_id = $1 ORDER BY part",
        job_id,
    )


async def part(connection: asyncpg.Connection, job_id: uuid.UUID, number: int) -> asyncpg.Record:
    record = await connection.fetchrow(
        f"SELECT part, first_row, end_row, next_row FROM {PARTS} WHERE job_id = $1 AND part = $2",
        job_id,
        number,
    )
    assert record is not None, "parts are made before they are queued"
    return record


async def advance(
    connection: asyncpg.Connection,
    job_id: uuid.UUID,
    *,
    part: int,
    start: int,
    end: int,
    scored: int,
    failed: int,
    errors: Sequence[dict[str, Any]],
    max_errors: int,
    shadowed: int = 0,
    shadow_failed: int = 0,
) -> bool:
    """Move a part's cursor from `start` to `end` and add a chunk's counts to its job (its
    shadow answers stored and the sampled rows a failing shadow did not answer included), in
    the transaction that stores the chunk's predictions. False (store nothing: roll back) when
    the cursor is no longer at `start` (another worker did this chunk) or the job is no longer
    RUNNING (cancelled). The job's row lock orders concurrent workers."""
    job = await connection.fetchrow(
        f"UPDATE {JOBS} SET rows_scored = rows_scored + $2, rows_failed = rows_failed + $3, "
        "errors = CASE WHEN jsonb_array_length(errors) >= $5 THEN errors "
        "ELSE errors || jsonb_path_query_array($4::jsonb, "
        "('$[0 to ' || ($5 - jsonb_array_length(errors) - 1) || ']')::jsonpath) END, "
        "rows_shadowed = rows_shadowed + $6, shadow_rows_failed = shadow_rows_failed + $7, "
        "updated_at = now() WHERE id = $1 AND state = 'RUNNING' RETURNING id",
        job_id,
        scored,
        failed,
        orjson.dumps(list(errors)).decode(),
        max_errors,
        shadowed,
        shadow_failed,
    )
    if job is None:
        return False
    moved = await connection.fetchval(
        f"UPDATE {PARTS} SET next_row = $4 WHERE job_id = $1 AND part = $2 AND next_row = $3 "
        "RETURNING part",
        job_id,
        part,
        start,
        end,
    )
    if moved is None:
        return False
    await notify(connection, job_id)
    return True


async def finish_if_done(connection: asyncpg.Connection, job_id: uuid.UUID) -> bool:
    """Mark a RUNNING job SUCCEEDED when every part is done; whether it was."""
    done = await connection.fetchval(
        f"UPDATE {JOBS} SET state = 'SUCCEEDED', finished_at = now(), updated_at = now() "
        "WHERE id = $1 AND state = 'RUNNING' AND validated "
        f"AND NOT EXISTS (SELECT 1 FROM {PARTS} WHERE job_id = $1 AND next_row < end_row) "
        "RETURNING id",
        job_id,
    )
    if done is None:
        return False
    await notify(connection, job_id)
    return True


async def fail(connection: asyncpg.Connection, job_id: uuid.UUID, message: str) -> bool:
    """Mark an active job FAILED with why; False when it had finished already."""
    failed = await connection.fetchval(
        f"UPDATE {JOBS} SET state = 'FAILED', message = $2, finished_at = now(), "
        "updated_at = now() WHERE id = $1 AND state = ANY($3::text[]) RETURNING id",
        job_id,
        message,
        list(_ACTIVE),
    )
    if failed is None:
        return False
    await notify(connection, job_id)
    return True


async def cancel(connection: asyncpg.Connection, job_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark an active job CANCELLED (waiting for a chunk being stored to commit first); the
    job as it is now, or None when there is none."""
    record = await connection.fetchrow(
        f"UPDATE {JOBS} SET state = 'CANCELLED', finished_at = now(), updated_at = now() "
        "WHERE id = $1 AND state = ANY($2::text[]) RETURNING *",
        job_id,
        list(_ACTIVE),
    )
    if record is None:
        return await get(connection, job_id)
    await notify(connection, job_id)
    return record


async def results(connection: asyncpg.Connection, job_id: uuid.UUID) -> list[asyncpg.Record]:
    """The predictions a job stored, by row number."""
    return await connection.fetch(
        "SELECT batch_index AS row, label, value, confidence, probabilities FROM predictions "
        "WHERE request_id = $1 ORDER BY batch_index",
        str(job_id),
    )


async def prune_finished(
    connection: asyncpg.Connection, *, finished_before: datetime, batch: int
) -> int:
    """Drop the uploaded files and parts of up to `batch` jobs finished before then, oldest
    first, keeping their progress on the job (`rows_done`) and marking them `pruned_at`; how
    many. Jobs another transaction holds are skipped, not waited for."""
    pruned: int = await connection.fetchval(
        f"""
        WITH doomed AS (
            SELECT id FROM {JOBS}
            WHERE pruned_at IS NULL AND finished_at IS NOT NULL AND finished_at < $1
            ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED
        ), done AS (
            SELECT job_id, sum(next_row - first_row) AS rows_done FROM {PARTS}
            WHERE job_id IN (SELECT id FROM doomed) GROUP BY job_id
        ), parts_dropped AS (
            DELETE FROM {PARTS} WHERE job_id IN (SELECT id FROM doomed)
        ), sources_dropped AS (
            DELETE FROM {SOURCES} WHERE job_id IN (SELECT id FROM doomed)
        ), marked AS (
            UPDATE {JOBS} AS job SET pruned_at = now(), rows_done = coalesce(done.rows_done, 0)
            FROM doomed LEFT JOIN done ON done.job_id = doomed.id
            WHERE job.id = doomed.id RETURNING job.id
        )
        SELECT count(*) FROM marked
        """,
        finished_before,
        batch,
    )
    if pruned:
        await notify(connection, None)
    return pruned
