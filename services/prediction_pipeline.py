"""Per-version pipelines: requests queue, a dispatcher scores everything queued in one
estimator call and stores it in one transaction, then answers each request after COMMIT.

Natural batching, like PostgreSQL's group commit: a group leaves as soon as the previous one
is done, so there is no wait at low load and large groups under high load. With the inference
cache, a version worth caching (services/inference_cache.py) scores only the rows it has not
scored before, and no estimator call at all when the whole group was."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils.compat import uuid7

from modelql.models.predictor import ModelOutput, RowScore, Scores
from modelql.persistence import prediction_writer
from modelql.persistence.partitions import is_missing_partition
from modelql.persistence.prediction_writer import KeyClaim, RequestRows
from modelql.persistence.tables import PredictionRow
from modelql.services.catalogue import Version
from modelql.services.errors import (
    ErrorCode,
    FieldProblem,
    ModelUnavailableError,
    StorageUnavailableError,
    UserInputError,
    is_connection_failure,
    is_rejected_value,
)
from modelql.services.inference import ModelCache, refusal_reason
from modelql.services.inference_cache import InferenceCache, row_keys, worth_caching
from modelql.services.predictions import (
    NoObserver,
    PredictionJob,
    PredictionObserver,
    PredictionOutcome,
    StoredBatch,
    conflict,
)

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Pending:
    job: PredictionJob
    future: asyncio.Future[PredictionOutcome]
    observer: PredictionObserver
    scores: Scores | None = None
    latency_ms: float = 0.0


class PredictionPipelines:
    """One pipeline per model version, created on first use."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        model_cache: ModelCache,
        max_group_rows: int,
        max_wait_s: float = 0.0,
        groups_in_flight: int = 1,
        observer: PredictionObserver | None = None,
        on_commit: Callable[[], None] = lambda: None,
        create_partitions: Callable[[], Awaitable[object]] | None = None,
        inference_cache: InferenceCache | None = None,
    ) -> None:
        """`on_commit` runs after each group's COMMIT, before its requests are answered;
        `create_partitions` when no partition of predictions covers now (then the group is
        stored once more); `inference_cache`, when given, serves the rows a version worth
        caching has scored before."""
        self._engine = engine
        self._inference_cache = inference_cache
        self._on_commit = on_commit
        self._create_partitions = create_partitions
        self._model_cache = model_cache
        self._max_group_rows = max_group_rows
        self._groups_in_flight = groups_in_flight
        self._max_wait_s = max_wait_s
        self._observer = observer or NoObserver()
        self._pipelines: dict[uuid.UUID, _VersionPipeline] = {}

    async def run(self, job: PredictionJob) -> PredictionOutcome:
        pipeline = self._pipelines.get(job.version.id)
        if pipeline is None:
            pipeline = self._pipelines.setdefault(
                job.version.id, _VersionPipeline(self, job.version)
            )
        return await pipeline.run(job)

    async def drain(self) -> None:
        """Wait until every queued request has its answer (at shutdown)."""
        await asyncio.gather(*(pipeline.idle() for pipeline in self._pipelines.values()))


class _VersionPipeline:
    def __init__(self, owner: PredictionPipelines, version: Version) -> None:
        self._owner = owner
        self._version = version
        self._queue: deque[_Pending] = deque()
        self._dispatchers: set[asyncio.Task[None]] = set()
        self._cached: bool | None = None
        """Whether this version goes through the inference cache; decided on first use."""

    async def run(self, job: PredictionJob) -> PredictionOutcome:
        future: asyncio.Future[PredictionOutcome] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queue.append(_Pending(job, future, self._owner._observer))
        running = sum(not dispatcher.done() for dispatcher in self._dispatchers)
        if running < self._owner._groups_in_flight:
            dispatcher = asyncio.create_task(self._dispatch())
            self._dispatchers.add(dispatcher)
            dispatcher.add_done_callback(self._dispatchers.discard)
        # Shielded: a request cut short (timeout, disconnect) leaves its job in the group.
        return await asyncio.shield(future)

    async def idle(self) -> None:
        while self._dispatchers:
            await asyncio.shield(asyncio.gather(*self._dispatchers))

    async def _dispatch(self) -> None:
        """Groups leave one after another while requests are queued. A request that finds fewer
        than `groups_in_flight` dispatchers running starts one more: the next group leaves
        while the previous one waits for its COMMIT (scoring, storing and answering overlap
        with the flush), and under load each dispatcher's group gathers what came meanwhile."""
        while self._queue:
            if self._owner._max_wait_s and self._queued_rows() < self._owner._max_group_rows:
                await asyncio.sleep(self._owner._max_wait_s)
            group = self._take()
            try:
                await self._process(group)
            except Exception as error:  # nothing may hang: fail what has no answer yet
                logger.exception("prediction group failed")
                _fail_all(group, error)
            except BaseException:
                _fail_all(group, StorageUnavailableError("The service stopped while storing."))
                raise

    def _queued_rows(self) -> int:
        return sum(len(pending.job.rows) for pending in self._queue)

    def _take(self) -> list[_Pending]:
        group = [self._queue.popleft()]
        rows = len(group[0].job.rows)
        while self._queue and rows + len(self._queue[0].job.rows) <= self._owner._max_group_rows:
            pending = self._queue.popleft()
            rows += len(pending.job.rows)
            group.append(pending)
        return group

    async def _process(self, group: list[_Pending]) -> None:
        scored = await self._score(group)
        ready = [pending for pending in scored if _outputs_are_finite(pending)]
        if ready:
            await self._store(ready)

    async def _score(self, group: list[_Pending]) -> list[_Pending]:
        """The group's scores, through the inference cache when this version is worth it."""
        cache = self._owner._inference_cache
        if cache is not None and self._cached is None:
            try:
                profile = await self._owner._model_cache.profile(self._version)
            except ModelUnavailableError as error:
                _fail_all(group, error)
                return []
            self._cached = worth_caching(profile)
        if cache is not None and self._cached:
            return await self._score_through(cache, group)
        return await self._score_together(group)

    async def _score_together(self, group: list[_Pending]) -> list[_Pending]:
        """Score the whole group in one estimator call; when the estimator refuses it, score
        each request apart so that only the requests it refuses fail."""
        rows = [row for pending in group for row in pending.job.rows]
        matrices = [pending.job.matrix for pending in group if pending.job.matrix is not None]
        matrix = np.concatenate(matrices) if len(matrices) == len(group) else None
        try:
            batch = await self._owner._model_cache.score(self._version, rows, matrix)
        except ModelUnavailableError as error:
            _fail_all(group, error)
            return []
        except ValueError as error:
            return await self._score_apart(group, error)
        self._owner._observer.inference(batch.latency_ms / 1000, len(rows))
        per_row_ms = batch.latency_ms / len(rows)
        start = 0
        for pending in group:
            end = start + len(pending.job.rows)
            pending.scores = batch.scores.slice(start, end)
            pending.latency_ms = per_row_ms
            start = end
        return group

    async def _score_apart(self, group: list[_Pending], error: ValueError) -> list[_Pending]:
        """After the estimator refused a group: each request scored on its own (a request
        alone fails with the refusal)."""
        if len(group) > 1:
            return [item for pending in group for item in await self._score([pending])]
        _fail(group[0], _unscorable(group[0].job, error))
        return []

    async def _score_through(self, cache: InferenceCache, group: list[_Pending]) -> list[_Pending]:
        """Rows this version scored before come from the cache; the others (each distinct row
        once) are scored in one estimator call and kept. A row's output is the same in any
        batch for a version worth caching, so it is what the estimator gives for it here."""
        model_cache = self._owner._model_cache
        try:
            predictor = await model_cache.predictor(self._version)
            matrices = [
                pending.job.matrix
                if pending.job.matrix is not None
                else predictor.matrix(pending.job.rows)
                for pending in group
            ]
        except ModelUnavailableError as error:
            _fail_all(group, error)
            return []
        except ValueError:  # a row the matrix refuses: the estimator call reports it
            return await self._score_together(group)
        keys = [row_keys(matrix) for matrix in matrices]
        found = cache.get(self._version.id, [key for job_keys in keys for key in job_keys])
        missing: dict[Hashable, tuple[int, int]] = {}
        position = 0
        for number, job_keys in enumerate(keys):
            for row, key in enumerate(job_keys):
                if found[position] is None:
                    missing.setdefault(key, (number, row))
                position += 1
        fresh: dict[Hashable, RowScore] = {}
        per_row_ms = 0.0
        if missing:
            places = list(missing.values())
            rows = [group[number].job.rows[row] for number, row in places]
            matrix = np.stack([matrices[number][row] for number, row in places])
            try:
                batch = await model_cache.score(self._version, rows, matrix)
            except ModelUnavailableError as error:
                _fail_all(group, error)
                return []
            except ValueError as error:
                return await self._score_apart(group, error)
            self._owner._observer.inference(batch.latency_ms / 1000, len(rows))
            scored = [batch.scores.row(index) for index in range(len(rows))]
            cache.put(self._version.id, list(missing), scored)
            fresh = dict(zip(missing, scored, strict=True))
            per_row_ms = batch.latency_ms / found.count(None)
        position = 0
        for pending, job_keys in zip(group, keys, strict=True):
            outputs: list[RowScore] = []
            for key in job_keys:
                output = found[position]
                outputs.append(fresh[key] if output is None else output)
                position += 1
            pending.scores = Scores.of_rows(outputs, predictor.labels)
            misses = found[position - len(job_keys) : position].count(None)
            pending.latency_ms = per_row_ms * misses / len(job_keys)
        return group

    async def _store(self, group: list[_Pending], *, partitioned: bool = False) -> None:
        """One transaction for the group; a value the database refuses fails only the request
        it belongs to (the others are retried apart); an outage fails them all, unanswered.
        Refused for want of a partition, the group is stored again once they are created."""
        try:
            outcomes = await _store_group(self._owner._engine, self._version, group)
        except Exception as error:
            create = self._owner._create_partitions
            if create is not None and not partitioned and is_missing_partition(error):
                logger.warning("no partition of predictions covers now; creating them")
                await create()
                await self._store(group, partitioned=True)
                return
            if is_rejected_value(error) and len(group) > 1:
                for pending in group:
                    await self._store([pending])
                return
            if is_connection_failure(error):
                unavailable = StorageUnavailableError()
                unavailable.__cause__ = error
                error = unavailable
            _fail_all(group, error)
            return
        self._owner._on_commit()
        for pending, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _fail(pending, outcome)
                continue
            if not outcome.replayed:
                self._owner._observer.stored(
                    pending.job.request.model, self._version.number, len(outcome.predictions)
                )
            pending.future.set_result(outcome)


def _retrieve(future: asyncio.Future[PredictionOutcome]) -> None:
    """Mark a failed job's error as seen: its request may have gone away (timeout)."""
    if not future.cancelled():
        future.exception()


def _fail(pending: _Pending, error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)
        if isinstance(error, UserInputError):
            job = pending.job
            pending.observer.rejected(job.request.model, job.version.number, len(job.rows))


def _fail_all(group: Sequence[_Pending], error: BaseException) -> None:
    for pending in group:
        _fail(pending, error)


def _unscorable(job: PredictionJob, error: ValueError) -> UserInputError:
    reason = refusal_reason(error)
    path = ("instances",) if job.request.batch else ("features",)
    return UserInputError.single(
        path,
        ErrorCode.INVALID_FEATURES,
        f"The model cannot score these features ({reason}); values this large or small "
        "overflow its computations.",
    )


def _outputs_are_finite(pending: _Pending) -> bool:
    """Fail the job (MODEL_OUTPUT_INVALID, naming the output) when any output is not finite."""
    assert pending.scores is not None
    problems = [
        FieldProblem(
            pending.job.request.instance_path(index),
            ErrorCode.MODEL_OUTPUT_INVALID,
            f"The model's output `{name}` for this input is not a finite number ({value!r}); "
            "nothing was stored.",
        )
        for index, finite in enumerate(pending.scores.finite)
        if not finite
        for name, value in _numbers(pending.scores.output(index))
        if not math.isfinite(value)
    ]
    if problems:
        _fail(pending, UserInputError(problems))
    return not problems


def _numbers(output: ModelOutput) -> list[tuple[str, float]]:
    numbers = [("value", output.value), ("confidence", output.confidence)]
    numbers += [(f"probabilities.{label}", p) for label, p in output.probabilities or ()]
    return [(name, value) for name, value in numbers if value is not None]


async def _store_group(
    engine: AsyncEngine, version: Version, group: list[_Pending]
) -> list[PredictionOutcome | UserInputError]:
    """Claim the group's idempotency keys, insert the predictions of the requests that store,
    commit; each request's outcome (its new or replayed predictions, or a conflict)."""
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)
        async with raw.transaction():
            return await _store_in_transaction(raw, version, group)


async def _store_in_transaction(
    connection: asyncpg.Connection, version: Version, group: list[_Pending]
) -> list[PredictionOutcome | UserInputError]:
    """Each request's outcome, in group order. Of the requests sharing an idempotency key the
    first claims it; the others replay what it stores (or get a conflict when their input
    differs). A key claimed before this group is answered from what was stored then."""
    leaders: dict[tuple[str, str], _Pending] = {}
    for pending in group:
        key = _key_of(pending.job)
        if key is not None:
            leaders.setdefault(key, pending)
    claims = {
        key: KeyClaim(uuid7(), *key, leader.job.fingerprint or "")
        for key, leader in leaders.items()
    }
    won = await prediction_writer.claim_keys(connection, list(claims.values()))
    earlier = await _earlier_claims(
        connection, [key for key, claim in claims.items() if claim.id not in won]
    )

    storing = [
        pending
        for pending in group
        if (key := _key_of(pending.job)) is None or (leaders[key] is pending and key not in earlier)
    ]
    stored: dict[int, StoredBatch] = {}
    if storing:
        requests = [
            _request_rows(pending, version, _record_id(pending, claims)) for pending in storing
        ]
        created_at = await prediction_writer.insert(connection, requests, feed=True)
        stored = {
            id(pending): StoredBatch(rows, created_at)
            for pending, rows in zip(storing, requests, strict=True)
        }

    outcomes: list[PredictionOutcome | UserInputError] = []
    for pending in group:
        key = _key_of(pending.job)
        if id(pending) in stored:
            outcomes.append(PredictionOutcome(stored[id(pending)], replayed=False))
            continue
        assert key is not None
        fingerprint, predictions = earlier.get(key) or (
            leaders[key].job.fingerprint,
            stored[id(leaders[key])],
        )
        if pending.job.fingerprint != fingerprint:
            outcomes.append(conflict(pending.job.request))
        else:
            outcomes.append(PredictionOutcome(predictions, replayed=True))
    return outcomes


def _key_of(job: PredictionJob) -> tuple[str, str] | None:
    key = job.request.idempotency_key
    return None if key is None else (job.requester.caller or "", key)


def _record_id(pending: _Pending, claims: dict[tuple[str, str], KeyClaim]) -> uuid.UUID | None:
    key = _key_of(pending.job)
    return claims[key].id if key is not None else None


async def _earlier_claims(
    connection: asyncpg.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, list[PredictionRow]]]:
    """For keys claimed before this group (by a committed transaction): the fingerprint of
    the request that claimed each, and the predictions it stored."""
    if not keys:
        return {}
    records = await prediction_writer.claimed_keys(connection, keys)
    stored: dict[uuid.UUID, list[PredictionRow]] = {}
    for row in await prediction_writer.stored_for_records(
        connection, [record_id for record_id, _ in records.values()]
    ):
        stored.setdefault(row["idempotency_record_id"], []).append(_from_record(row))
    return {
        key: (fingerprint, stored.get(record_id, []))
        for key, (record_id, fingerprint) in records.items()
    }


def _request_rows(pending: _Pending, version: Version, record_id: uuid.UUID | None) -> RequestRows:
    """One request's new predictions as prediction_writer.insert takes them."""
    job, scores = pending.job, pending.scores
    assert scores is not None
    return RequestRows.scored(
        job.rows,
        scores,
        model_id=version.model_id,
        model_version_id=version.id,
        latency_ms=pending.latency_ms,
        request_id=job.requester.request_id,
        caller=job.requester.caller,
        routed_by=job.routed_by,
        idempotency_key=job.request.idempotency_key,
        idempotency_record_id=record_id,
    )


def _from_record(row: asyncpg.Record) -> PredictionRow:
    return PredictionRow(*(row[name] for name in PredictionRow._fields))
