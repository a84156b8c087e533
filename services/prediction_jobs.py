"""Batch prediction jobs: submit a CSV or Parquet file (checked at once: format, columns, size,
place), then any process working the queue validates the whole file and scores it part by
part, chunk by chunk: one estimator call per chunk, its predictions and the part's cursor
stored in one transaction, so a crash resumes after the last committed chunk and no row is
ever stored twice. Results are stored predictions like any other (caller: the submitter,
request id: the job's id, batch index: the row number)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from modelql.models.predictor import Scores
from modelql.models.vocabulary import JobState, SourceFormat
from modelql.persistence import job_queue, job_repository, prediction_writer, shadow_repository
from modelql.persistence.prediction_writer import RequestRows
from modelql.persistence.shadow_repository import ShadowColumns
from modelql.services import job_files
from modelql.services.catalogue import Catalogue, Version
from modelql.services.errors import (
    ErrorCode,
    FieldProblem,
    ModelUnavailableError,
    UserInputError,
)
from modelql.services.features import matrix_passes, rows_checked_in_bulk, validate_instance
from modelql.services.inference import ModelCache, refusal_reason
from modelql.services.model_access import ModelLimit
from modelql.services.predictions import PredictionRequest, PredictionService, Requester
from modelql.services.shadow_scoring import drawn_rows, shadow_answers

logger = logging.getLogger(__name__)

HEAD_BYTES = 65_536
"""How much of a file decides its format."""


@dataclass(frozen=True)
class JobPolicy:
    """The settings jobs follow."""

    source_dir: Path | None = None
    """Where server-side files may be read from; None: nowhere (uploads only)."""
    max_bytes: int = 256 * 1024 * 1024
    chunk_rows: int = 10_000
    part_rows: int = 100_000
    max_errors: int = 100


@dataclass(frozen=True)
class UploadedFile:
    name: str | None
    """The client's file name, if it sent one."""
    size: int | None
    read: Callable[[int], Awaitable[bytes]]
    """Up to that many bytes (fewer at the end)."""


@dataclass(frozen=True)
class JobSubmission:
    model: str
    version: int | None
    alias: str | None
    partial: bool
    upload: UploadedFile | None
    path: str | None


@dataclass(frozen=True)
class RowError:
    row: int
    reason: str


@dataclass(frozen=True)
class JobView:
    """A job as stored."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_version_id: uuid.UUID
    submitter: str | None
    state: JobState
    partial: bool
    source_name: str
    source_format: SourceFormat
    rows_total: int | None
    rows_done: int
    rows_scored: int
    rows_failed: int
    rows_shadowed: int
    """Shadow answers stored with the job's rows: one per shadow version and sampled row
    (a row the shadow refused included, with its reason)."""
    shadow_rows_failed: int
    """Sampled rows a shadow could not score (its scoring failed), counted per version."""
    errors: list[RowError]
    message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pruned_at: datetime | None
    """When its uploaded file and parts were dropped (the job retention); None: kept."""

    @property
    def progress(self) -> float:
        """The share of the file's rows settled (scored or failed), 0 to 1."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        if not self.rows_total:
            return 0.0
        return min(1.0, self.rows_done / self.rows_total)

    @classmethod
    def of(cls, record: asyncpg.Record, parts: Sequence[asyncpg.Record]) -> JobView:
        """The job from its row and its parts (none once pruned: the row keeps the count)."""
        rows_done = record["rows_done"]
        if rows_done is None:
            rows_done = sum(part["next_row"] - part["first_row"] for part in parts)
        return cls(
            id=record["id"],
            model_id=record["model_id"],
            model_version_id=record["model_version_id"],
            submitter=record["submitter"],
            state=JobState(record["state"]),
            partial=record["partial"],
            source_name=record["source_name"],
            source_format=SourceFormat(record["source_format"]),
            rows_total=record["rows_total"],
            rows_done=rows_done,
            rows_scored=record["rows_scored"],
            rows_failed=record["rows_failed"],
            rows_shadowed=record["rows_shadowed"],
            shadow_rows_failed=record["shadow_rows_failed"],
            errors=[RowError(item["row"], item["reason"]) for item in record["errors"]],
            message=record["message"],
            created_at=record["created_at"],
            started_at=record["started_at"],
            finished_at=record["finished_at"],
            pruned_at=record["pruned_at"],
        )


@dataclass(frozen=True)
class _Checked:
    """A chunk's valid rows (with their row numbers and, when bulk-checked, their matrix) and
    the errors of the others."""

    rows: list[dict[str, Any]]
    numbers: list[int]
    matrix: Any
    errors: list[RowError]


@dataclass(frozen=True)
class _Shadowed:
    """A chunk's shadow answers (one set of columns per shadow version, each row linked to
    its primary by id; the primaries' time is the storing transaction's) and the sampled
    rows a failing shadow did not answer."""

    answers: list[ShadowColumns]
    failed: int

    @property
    def stored(self) -> int:
        return sum(len(columns.ids) for columns in self.answers)


NO_SHADOWS = _Shadowed([], 0)


@dataclass(frozen=True)
class _Prepared:
    """A chunk ready to store: rows `start` to `end`, the predictions of its valid rows (None:
    there are none), the rows that failed scoring, and the shadows' answers to them."""

    start: int
    end: int
    rows: RequestRows | None
    errors: list[RowError]
    shadows: _Shadowed = NO_SHADOWS


class PredictionJobs:
    """Submit, read, cancel and work prediction jobs."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        predictions: PredictionService,
        model_cache: ModelCache,
        policy: JobPolicy,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_commit` runs after each transaction that changed a job or stored predictions
        (kept answers that read them are then stale in this process at once)."""
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._predictions = predictions
        self._model_cache = model_cache
        self._policy = policy
        self._on_commit = on_commit
        self._tables: LRUCache[uuid.UUID, job_files.RowTable] = LRUCache(maxsize=2)
        self._reading: dict[uuid.UUID, asyncio.Lock] = {}
        self._shadow_failures_logged: LRUCache[tuple[uuid.UUID, uuid.UUID], bool] = LRUCache(
            maxsize=1024
        )
        """(job, shadow version) whose failure was logged: once, not per chunk."""

    # --- the API's side -------------------------------------------------------------------

    async def submit(self, submission: JobSubmission, requester: Requester) -> JobView:
        """A QUEUED job, committed with its queue task; a UserInputError (nothing stored)
        for a file that is missing, too large, outside the allowed directory, neither CSV
        nor Parquet, or without a column the version needs."""
        request = PredictionRequest(
            model=submission.model,
            version=submission.version,
            alias=submission.alias,
            instances=[],
            batch=True,
        )
        version, routed_by = await self._predictions.choose_version(request, requester)
        name, source, size, head = await self._source(submission)
        try:
            file_format = job_files.detect_format(name, head)
            columns = await asyncio.to_thread(job_files.column_names, source, file_format)
        except job_files.UnreadableFileError as error:
            raise UserInputError.single(
                _source_field(submission),
                ErrorCode.UNSUPPORTED_FORMAT,
                f"Cannot read {name!r} as CSV or Parquet: {error}.",
            ) from None
        missing = job_files.missing_columns(columns, version.signature)
        if missing:
            raise UserInputError(
                [
                    FieldProblem(
                        (*_source_field(submission), column),
                        ErrorCode.MISSING_COLUMN,
                        f"The file has no column {column!r}, a feature version "
                        f"{version.number} of {submission.model!r} requires.",
                    )
                    for column in missing
                ]
            )
        job = job_repository.NewJob(
            id=uuid7(),
            model_id=version.model_id,
            model_version_id=version.id,
            routed_by=routed_by.value,
            submitter=requester.caller,
            partial=submission.partial,
            source_name=name,
            source_format=file_format.value,
            source_path=str(source) if isinstance(source, Path) else None,
            source_bytes=size,
        )
        async with self._connection() as connection, connection.transaction():
            await job_repository.create(
                connection, job, source if isinstance(source, bytes) else None
            )
            await job_queue.enqueue(connection, job_queue.VALIDATE, [(job.id, -1)])
            record = await job_repository.get(connection, job.id)
        self._on_commit()
        assert record is not None
        return JobView.of(record, [])

    async def get(self, job_id: uuid.UUID, limit: ModelLimit | None = None) -> JobView | None:
        """The job; None when unknown or of a model outside the caller's `limit`."""
        async with self._connection() as connection:
            record = await job_repository.get(connection, job_id)
            if record is None or not await self._reachable(record["model_id"], limit):
                return None
            return JobView.of(record, await job_repository.parts(connection, job_id))

    async def _reachable(self, model_id: uuid.UUID, limit: ModelLimit | None) -> bool:
        if limit is None:
            return True
        async with self._sessionmaker() as session:
            found = (await self._catalogue.models_by_id(session, [model_id])).get(model_id)
        return found is not None and limit.allows(found.name)

    async def cancel(self, job_id: uuid.UUID, limit: ModelLimit | None = None) -> JobView:
        """Cancel a queued or running job: no chunk commits after this one does (chunks
        committed before stay stored). A finished job is returned as it is."""
        if limit is not None and await self.get(job_id, limit) is None:
            raise _job_not_found()
        async with self._connection() as connection:
            async with connection.transaction():
                record = await job_repository.cancel(connection, job_id)
            self._on_commit()
            if record is None:
                raise _job_not_found()
            return JobView.of(record, await job_repository.parts(connection, job_id))

    async def results(self, job_id: uuid.UUID) -> list[job_files.JobResult]:
        """The predictions the job stored, by row number."""
        async with self._connection() as connection:
            records = await job_repository.results(connection, job_id)
        return [
            job_files.JobResult(
                row=record["row"],
                label=record["label"],
                value=record["value"],
                confidence=record["confidence"],
                probabilities=record["probabilities"],
            )
            for record in records
        ]

    async def _source(self, submission: JobSubmission) -> tuple[str, job_files.Source, int, bytes]:
        """The file's name, content or path, size and first bytes."""
        limit = self._policy.max_bytes
        if (submission.upload is None) == (submission.path is None):
            raise UserInputError.single(
                ("source",),
                ErrorCode.INVALID_SOURCE,
                "Give exactly one source: an uploaded `file` or a server-side `path`.",
            )
        if submission.upload is not None:
            upload = submission.upload
            if upload.size is not None and upload.size > limit:
                raise _too_large(("source", "file"), upload.size, limit)
            content = await upload.read(limit + 1)
            if len(content) > limit:
                raise _too_large(("source", "file"), len(content), limit)
            return upload.name or "upload", content, len(content), content[:HEAD_BYTES]
        assert submission.path is not None
        path = self._allowed_path(submission.path)
        size = path.stat().st_size
        if size > limit:
            raise _too_large(("source", "path"), size, limit)
        with path.open("rb") as file:
            head = file.read(HEAD_BYTES)
        return path.name, path, size, head

    def _allowed_path(self, text: str) -> Path:
        root = self._policy.source_dir
        if root is None:
            raise UserInputError.single(
                ("source", "path"),
                ErrorCode.PATH_NOT_ALLOWED,
                "Server-side files are not allowed here (MODELQL_JOB_SOURCE_DIR is unset); "
                "upload the file instead.",
            )
        if "\x00" in text:
            raise UserInputError.single(
                ("source", "path"), ErrorCode.INVALID_SOURCE, "The path holds a NUL character."
            )
        base = root.resolve()
        path = (base / text).resolve()
        if not path.is_relative_to(base):
            raise UserInputError.single(
                ("source", "path"),
                ErrorCode.PATH_NOT_ALLOWED,
                f"{text!r} is outside the directory jobs may read ({base}).",
            )
        if not path.is_file():
            raise UserInputError.single(
                ("source", "path"), ErrorCode.INVALID_SOURCE, f"No file {text!r} in {base}."
            )
        return path

    # --- the worker's side ----------------------------------------------------------------

    async def validate(self, job_id: uuid.UUID) -> None:
        """Start a job: validate every row of its file; then queue its parts, or fail it
        with every failing row counted (nothing stored) unless it is `partial`."""
        async with self._connection() as connection:
            async with connection.transaction():
                record = await job_repository.start(connection, job_id)
            self._on_commit()
            if record is None or record["validated"]:
                return
            try:
                table = await self._table(connection, record)
                version = await self._version(record["model_version_id"])
            except (job_files.UnreadableFileError, OSError, ModelUnavailableError) as error:
                await self._fail(connection, job_id, f"The job cannot run: {error}")
                return
            failed, errors = await asyncio.to_thread(self._validate_all, table, version)
            await self._queue_parts(connection, record, len(table), failed, errors)
            self._on_commit()

    async def _queue_parts(
        self,
        connection: asyncpg.Connection,
        record: asyncpg.Record,
        total: int,
        failed: int,
        errors: list[dict[str, Any]],
    ) -> None:
        """Record what validation found; fail the job, or queue its parts (one transaction)."""
        job_id: uuid.UUID = record["id"]
        size = self._policy.part_rows
        parts = [(first, min(first + size, total)) for first in range(0, total, size)]
        async with connection.transaction():
            if failed and not record["partial"]:
                stored = await job_repository.record_validation(
                    connection,
                    job_id,
                    rows_total=total,
                    rows_failed=failed,
                    errors=errors,
                    parts=[],
                )
                if stored:
                    await job_repository.fail(
                        connection,
                        job_id,
                        f"{failed} of {total} rows failed validation; nothing was stored "
                        "(submit with `partial: true` to store the valid rows).",
                    )
                return
            stored = await job_repository.record_validation(
                connection,
                job_id,
                rows_total=total,
                rows_failed=failed,
                errors=errors,
                parts=parts,
            )
            if stored:
                await job_queue.enqueue(
                    connection, job_queue.SCORE, [(job_id, n) for n in range(len(parts))]
                )
                await job_repository.finish_if_done(connection, job_id)

    async def score(self, job_id: uuid.UUID, part_number: int) -> None:
        """Score one part of a job from its cursor on, a chunk per transaction."""
        async with self._connection() as connection:
            record = await job_repository.get(connection, job_id)
            if record is None or record["state"] != JobState.RUNNING:
                return
            part = await job_repository.part(connection, job_id, part_number)
            try:
                table = await self._table(connection, record)
                version = await self._version(record["model_version_id"])
            except (job_files.UnreadableFileError, OSError, ModelUnavailableError) as error:
                await self._fail(connection, job_id, f"The job cannot run: {error}")
                return
            requester = Requester(request_id=str(job_id), caller=record["submitter"])
            chunk = self._policy.chunk_rows
            ranges = [
                (start, min(start + chunk, part["end_row"]))
                for start in range(part["next_row"], part["end_row"], chunk)
            ]
            try:
                done = await self._store_chunks(
                    connection, record, version, requester, part_number, table, ranges
                )
            except (ValueError, ModelUnavailableError) as error:
                reason = refusal_reason(error) if isinstance(error, ValueError) else error
                await self._fail(connection, job_id, f"The model cannot score rows: {reason}")
                return
            if not done:
                return  # cancelled, or another worker took this part over
            async with connection.transaction():
                await job_repository.finish_if_done(connection, job_id)
            self._on_commit()

    async def _store_chunks(
        self,
        connection: asyncpg.Connection,
        job: asyncpg.Record,
        version: Version,
        requester: Requester,
        part: int,
        table: job_files.RowTable,
        ranges: list[tuple[int, int]],
    ) -> bool:
        """Store the chunks in order, each in its own transaction, preparing the next one
        (validated, scored, laid out) while PostgreSQL stores the current one; False when a
        chunk found the cursor moved or the job stopped (nothing more is stored)."""

        async def prepare(start: int, end: int) -> _Prepared:
            checked = await asyncio.to_thread(_check, table, version, start, end)
            if not checked.rows:
                return _Prepared(start, end, None, [])
            batch = await self._model_cache.score(version, checked.rows, checked.matrix)
            per_row_ms = batch.latency_ms / len(checked.rows)
            rows, errors = await asyncio.to_thread(
                _request_rows, checked, batch.scores, version, requester, job, per_row_ms
            )
            return _Prepared(start, end, rows, errors, await self._shadowed(job, rows))

        upcoming = [asyncio.ensure_future(prepare(*ranges[0]))] if ranges else []
        try:
            for index in range(len(ranges)):
                prepared = await upcoming[index]
                if index + 1 < len(ranges):
                    upcoming.append(asyncio.ensure_future(prepare(*ranges[index + 1])))
                if not await self._store_chunk(connection, job["id"], part, prepared):
                    return False
            return True
        finally:
            for future in upcoming:
                future.cancel()
            await asyncio.gather(*upcoming, return_exceptions=True)

    async def _store_chunk(
        self, connection: asyncpg.Connection, job_id: uuid.UUID, part: int, prepared: _Prepared
    ) -> bool:
        """Store a chunk's predictions with the part's cursor; False when the cursor moved or
        the job stopped meanwhile (nothing is stored then, and no count is added: the
        transaction is rolled back)."""
        try:
            return await self._store_chunk_once(connection, job_id, part, prepared)
        except _ChunkTakenError:
            return False

    async def _store_chunk_once(
        self, connection: asyncpg.Connection, job_id: uuid.UUID, part: int, prepared: _Prepared
    ) -> bool:
        rows = prepared.rows
        async with connection.transaction():
            moved = await job_repository.advance(
                connection,
                job_id,
                part=part,
                start=prepared.start,
                end=prepared.end,
                scored=0 if rows is None else len(rows.ids),
                failed=len(prepared.errors),
                errors=[{"row": error.row, "reason": error.reason} for error in prepared.errors],
                max_errors=self._policy.max_errors,
                shadowed=prepared.shadows.stored,
                shadow_failed=prepared.shadows.failed,
            )
            if not moved:
                raise _ChunkTakenError  # rolls back the counts advance added to the job
            if rows is not None and rows.ids:
                stamped_at = await prediction_writer.insert(connection, [rows])
                if prepared.shadows.answers:
                    await shadow_repository.insert_shadow_rows(
                        connection,
                        [
                            dataclasses.replace(
                                columns, primary_created_ats=[stamped_at] * len(columns.ids)
                            )
                            for columns in prepared.shadows.answers
                        ],
                    )
        self._on_commit()
        return True

    async def _shadowed(self, job: asyncpg.Record, rows: RequestRows) -> _Shadowed:
        """The shadows' answers to a chunk's stored rows: the model's shadow versions now
        (less the job's own version), the rows drawn by the job's id and their row numbers
        in the shadow sample (so a chunk scored again after a crash draws the same rows),
        one estimator call per shadow version. A shadow that fails (its artifact cannot be
        loaded, its estimator raises) answers nothing: its sampled rows are counted failed,
        logged once per job and version, and the job goes on."""
        async with self._sessionmaker() as session:
            route = (await self._catalogue.routes_by_id(session, [rows.model_id])).get(
                rows.model_id
            )
        shadows = [v for v in (route.shadows if route else ()) if v != rows.model_version_id]
        if route is None or not shadows:
            return NO_SHADOWS
        numbers = list(rows.batch_indexes or range(len(rows.ids)))
        drawn = drawn_rows(job["id"], numbers, route.shadow_sample)
        if not drawn:
            return NO_SHADOWS
        inputs = [rows.inputs[position] for position in drawn]
        primary_ids = [rows.ids[position] for position in drawn]
        answers: list[ShadowColumns] = []
        failed = 0
        for version_id in shadows:
            try:
                version = await self._version(version_id)
                answers.append(
                    await shadow_answers(
                        self._model_cache,
                        version,
                        inputs,
                        primary_ids=primary_ids,
                        primary_created_ats=[],  # the storing transaction's time, set then
                        model_ids=[rows.model_id] * len(drawn),
                    )
                )
            except Exception as error:  # a shadow must never fail the job
                failed += len(drawn)
                key = (job["id"], version_id)
                if key not in self._shadow_failures_logged:
                    self._shadow_failures_logged[key] = True
                    logger.warning(
                        "job %s: shadow version %s cannot score its rows (%r); the job goes "
                        "on without it (counted in shadow_rows_failed)",
                        job["id"],
                        version_id,
                        error,
                    )
        return _Shadowed(answers, failed)

    def _validate_all(
        self, table: job_files.RowTable, version: Version
    ) -> tuple[int, list[dict[str, Any]]]:
        """How many rows fail validation, and the first `max_errors` of them (in a thread)."""
        failed = 0
        errors: list[RowError] = []
        chunk = self._policy.chunk_rows
        for start in range(0, len(table), chunk):
            checked = _check(table, version, start, min(start + chunk, len(table)), rows=False)
            failed += len(checked.errors)
            errors.extend(checked.errors[: self._policy.max_errors - len(errors)])
        return failed, [{"row": error.row, "reason": error.reason} for error in errors]

    async def _table(
        self, connection: asyncpg.Connection, job: asyncpg.Record
    ) -> job_files.RowTable:
        """The job's file, read once per process while it is worked."""
        job_id: uuid.UUID = job["id"]
        lock = self._reading.setdefault(job_id, asyncio.Lock())
        async with lock:
            if (table := self._tables.get(job_id)) is not None:
                return table
            version = await self._version(job["model_version_id"])
            source: job_files.Source
            if job["source_path"] is not None:
                source = Path(job["source_path"])
            else:
                content = await job_repository.content(connection, job_id)
                assert content is not None, "an upload is stored with its job"
                source = content
            table = await asyncio.to_thread(
                job_files.read, source, SourceFormat(job["source_format"]), version.signature
            )
            self._tables[job_id] = table
        self._reading.pop(job_id, None)
        return table

    async def _version(self, version_id: uuid.UUID) -> Version:
        known = self._catalogue.known_version(version_id)
        if known is not None:
            return known
        async with self._sessionmaker() as session:
            return (await self._catalogue.versions(session, [version_id]))[version_id]

    async def _fail(self, connection: asyncpg.Connection, job_id: uuid.UUID, message: str) -> None:
        async with connection.transaction():
            await job_repository.fail(connection, job_id, message)
        self._on_commit()

    def _connection(self) -> _RawConnection:
        return _RawConnection(self._engine)


class _ChunkTakenError(Exception):
    """The part's cursor moved (another worker stored the chunk) or the job stopped."""


class _RawConnection:
    """A pooled connection's asyncpg connection, for as long as the block runs. One left in a
    transaction (a task cancelled while its BEGIN, a statement or its ROLLBACK ran: at
    shutdown, say) is closed, never handed back: SQLAlchemy's pool does not know of
    transactions begun on the driver, and the next user would work inside that one, which
    nobody commits."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> asyncpg.Connection:
        self._context = self._engine.connect()
        self._pooled = await self._context.__aenter__()
        raw = (await self._pooled.get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)
        self._raw = raw
        return raw

    async def __aexit__(self, *exc: object) -> None:
        if self._raw.is_in_transaction():
            self._raw.terminate()
            await asyncio.shield(self._pooled.invalidate())
        await self._context.__aexit__(*exc)


def _check(
    table: job_files.RowTable, version: Version, start: int, end: int, *, rows: bool = True
) -> _Checked:
    """Validate rows `start` to `end` (0-based): in bulk when they all pass (from the file's
    columns when they are plain numbers), else row by row with every problem of each failing
    row. Without `rows`, a chunk that passes in bulk lays out no rows (validation only)."""
    numbers = list(range(start + 1, end + 1))
    matrix = table.number_matrix(start, end)
    if matrix is not None and matrix_passes(matrix, version.signature):
        return _Checked(table.rows(start, end) if rows else [], numbers, matrix, [])
    laid_out = table.rows(start, end)
    bulk = rows_checked_in_bulk(laid_out, version.signature)
    if bulk is not None:
        return _Checked(bulk.rows, numbers, bulk.matrix, [])
    valid: list[dict[str, Any]] = []
    valid_numbers: list[int] = []
    errors: list[RowError] = []
    for number, row in zip(numbers, laid_out, strict=True):
        checked = validate_instance(row, version.signature, ("row", str(number)))
        if checked.problems:
            errors.append(RowError(number, "; ".join(p.message for p in checked.problems)))
        else:
            valid.append(checked.features)
            valid_numbers.append(number)
    return _Checked(valid, valid_numbers, None, errors)


def _request_rows(
    checked: _Checked,
    scores: Scores,
    version: Version,
    requester: Requester,
    job: asyncpg.Record,
    latency_ms: float,
) -> tuple[RequestRows, list[RowError]]:
    """The chunk's predictions as the writer takes them, without the rows whose output is
    not finite (those are failed rows)."""
    keep = [index for index, finite in enumerate(scores.finite) if finite]
    errors = [
        RowError(checked.numbers[index], "The model's output for this row is not finite.")
        for index, finite in enumerate(scores.finite)
        if not finite
    ]
    if len(keep) < len(scores.finite):
        scores = _kept(scores, keep)
        checked = _Checked(
            [checked.rows[i] for i in keep], [checked.numbers[i] for i in keep], None, []
        )
    return (
        RequestRows.scored(
            checked.rows,
            scores,
            model_id=version.model_id,
            model_version_id=version.id,
            latency_ms=latency_ms,
            request_id=requester.request_id,
            caller=requester.caller,
            routed_by=job["routed_by"],
            batch_indexes=checked.numbers,
        ),
        errors,
    )


def _kept(scores: Scores, keep: list[int]) -> Scores:
    def part(column: list[Any] | None) -> list[Any] | None:
        return None if column is None else [column[i] for i in keep]

    return Scores(
        labels=part(scores.labels),
        values=part(scores.values),
        probabilities=part(scores.probabilities),
        confidences=part(scores.confidences),
        classes=scores.classes,
        finite=[True] * len(keep),
    )


def _source_field(submission: JobSubmission) -> tuple[str, ...]:
    return ("source", "file") if submission.upload is not None else ("source", "path")


def _job_not_found() -> UserInputError:
    return UserInputError.single(("id",), ErrorCode.JOB_NOT_FOUND, "No prediction job has this id.")


def _too_large(path: tuple[str, ...], size: int, limit: int) -> UserInputError:
    return UserInputError.single(
        path,
        ErrorCode.FILE_TOO_LARGE,
        f"The file is {size} bytes; at most {limit} are accepted (MODELQL_JOB_MAX_BYTES).",
    )
