"""The job queue, in PostgreSQL (pgqueuer): tasks are enqueued inside the transaction that
creates what they work on, and a consumer per process picks them (SELECT ... FOR UPDATE SKIP
LOCKED, woken by LISTEN/NOTIFY); a task whose worker stopped sending heartbeats is picked
again by another."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager, RetryRequested

from modelql.persistence.database import is_connection_failure

logger = logging.getLogger(__name__)

VALIDATE = "modelql_job_validate"
"""Read and validate a job's whole file, then queue its parts."""
SCORE = "modelql_job_score"
"""Score and store one part of a job, chunk by chunk."""

LOG_TABLES = ("pgqueuer_log", "pgqueuer_statistics")
"""What the queue keeps of finished tasks (created by ModelQL's migration)."""

Task = tuple[uuid.UUID, int]
"""A job id and a part number (-1 for validation)."""


async def enqueue(connection: asyncpg.Connection, entrypoint: str, tasks: list[Task]) -> None:
    """Queue tasks in the connection's transaction: they exist only if it commits."""
    if not tasks:
        return
    queries = Queries(AsyncpgDriver(connection))
    await queries.enqueue(
        [entrypoint] * len(tasks),
        [_payload(task) for task in tasks],
        [0] * len(tasks),
    )


async def prune_log(connection: asyncpg.Connection, *, before: datetime) -> int:
    """Drop what the queue logged of ModelQL's tasks before then; how many rows."""
    dropped = 0
    for table in LOG_TABLES:
        status = await connection.execute(
            f"DELETE FROM {table} WHERE entrypoint = ANY($1::text[]) AND created < $2",
            [VALIDATE, SCORE],
            before,
        )
        dropped += int(status.split()[-1])
    return dropped


def _payload(task: Task) -> bytes:
    job_id, part = task
    return job_id.bytes + part.to_bytes(4, "big", signed=True)


def _task(job: Job) -> Task:
    assert job.payload is not None, "payloads are ours"
    return uuid.UUID(bytes=job.payload[:16]), int.from_bytes(job.payload[16:], "big", signed=True)


Handler = Callable[[uuid.UUID, int], Awaitable[None]]


class JobConsumer:
    """Works queued tasks in this process, `concurrency` at a time, over a connection of its
    own, until stopped. A handler that loses the database is retried later; any other
    failure is the handler's to record (the task is then dropped)."""

    def __init__(
        self,
        dsn: str,
        handlers: dict[str, Handler],
        *,
        concurrency: int = 1,
        heartbeat_timeout_s: float = 30.0,
        retry_delay_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._handlers = handlers
        self._concurrency = concurrency
        self._heartbeat_timeout = timedelta(seconds=heartbeat_timeout_s)
        self._retry_delay = timedelta(seconds=retry_delay_s)
        self._manager: QueueManager | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="modelql-job-consumer")

    async def stop(self) -> None:
        """Stop picking; tasks in flight are ended (a task cut short is picked again)."""
        if self._manager is not None:
            self._manager.shutdown.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(task)
            task.cancel()
            await asyncio.wait({task})

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "modelql-jobs"}
                )
                manager = QueueManager(Queries(AsyncpgDriver(connection)))
                for name, handler in self._handlers.items():
                    manager.entrypoint(name)(self._wrapped(handler))
                self._manager = manager
                backoff = 0.5
                await manager.run(
                    dequeue_timeout=timedelta(seconds=10),
                    batch_size=self._concurrency,
                    max_concurrent_tasks=2 * self._concurrency,
                    heartbeat_timeout=self._heartbeat_timeout,
                )
                return
            except Exception as error:
                logger.warning("job consumer stopped (%r); restarting", error)
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _wrapped(self, handler: Handler) -> Callable[[Job], Awaitable[None]]:
        async def work(job: Job) -> None:
            job_id, part = _task(job)
            try:
                await handler(job_id, part)
            except Exception as error:
                if is_connection_failure(error):
                    logger.warning("job %s lost the database; retrying later", job_id)
                    raise RetryRequested(self._retry_delay, "database unavailable") from error
                logger.exception("job %s failed", job_id)
                raise

        return work
