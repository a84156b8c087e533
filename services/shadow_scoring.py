"""Shadow scoring: after a request's predictions are committed (and answered), a sampled
share of its rows is handed to this process's bounded queue; one background task scores
them with the model's shadow versions and stores the answers beside the primary ones.
Nothing of it runs on the request's path: a full queue sheds (counted), a crash loses at
most what the queue held, a graceful stop drains it within a bound."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from modelql.models.predictor import RowScore, Scores
from modelql.persistence.shadow_repository import (
    ShadowColumns,
    insert_shadow_predictions,
    record_shadow_commits,
)
from modelql.services.catalogue import Catalogue, ModelRoute, Version
from modelql.services.features import rows_checked_in_bulk, validate_instance
from modelql.services.inference import ModelCache, refusal_reason
from modelql.services.predictions import StoredBatch

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ROWS_PER_ROUND = 5000
"""Most primary rows one round scores (per shadow version, one estimator call) and stores."""
GATHER_S = 0.25
"""A round waits this long for more work unless a full round waits already: under load, a
few large rounds (one estimator call, one transaction each) cost the primaries far less CPU
than many small ones; shadows lag by that much more."""


class ShadowObserver(Protocol):
    """Where shadow scoring reports (Prometheus in the service): rows by what became of them."""

    def shadow_rows(self, outcome: str, count: int) -> None: ...

    def shadow_queue(self, rows: int) -> None: ...


class NoShadowObserver:
    def shadow_rows(self, outcome: str, count: int) -> None:
        return None

    def shadow_queue(self, rows: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ShadowWork:
    """A committed request's rows waiting for its model's shadows."""

    model: str
    versions: tuple[uuid.UUID, ...] | None
    """The shadows to score with; None: the route was not in memory, decided by the task."""
    primary_version_id: uuid.UUID
    model_id: uuid.UUID
    ids: Sequence[uuid.UUID]
    inputs: Sequence[Mapping[str, Any]]
    created_at: datetime


class ShadowScoring:
    """The bounded queue (in primary rows) and the task that empties it."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        model_cache: ModelCache,
        max_rows: int,
        observer: ShadowObserver | None = None,
        on_commit: Callable[[], None] = lambda: None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._model_cache = model_cache
        self._max_rows = max_rows
        self._observer = observer or NoShadowObserver()
        self._on_commit = on_commit
        self._draw = draw
        self._queue: deque[ShadowWork] = deque()
        self._pending = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending_rows(self) -> int:
        """Primary rows queued or being scored."""
        return self._pending

    def offer(self, model: str, batch: StoredBatch) -> None:
        """Queue a committed request for its model's shadows, if drawn in the sample; shed
        (counted) when the queue cannot take all its rows. Never waits."""
        route = self._catalogue.known_route(model)
        versions: tuple[uuid.UUID, ...] | None = None
        if route is not None:
            versions = _shadows_for(route, batch.rows.model_version_id)
            if not versions or self._draw() >= route.shadow_sample:
                return
        rows = len(batch.rows.ids)
        if self._pending + rows > self._max_rows or self._task is None:
            self._observer.shadow_rows("shed", rows)
            return
        self._queue.append(
            ShadowWork(
                model=model,
                versions=versions,
                primary_version_id=batch.rows.model_version_id,
                model_id=batch.rows.model_id,
                ids=batch.rows.ids,
                inputs=batch.rows.inputs,
                created_at=batch.created_at,
            )
        )
        self._pending += rows
        self._observer.shadow_queue(self._pending)
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="shadow-scoring")

    async def stop(self, timeout_s: float) -> None:
        """Stop taking work, score and store what is queued for at most `timeout_s`, then
        give up the rest (counted as lost)."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._pending:
            logger.warning("shadow scoring stopped with %d rows unscored", self._pending)
            self._observer.shadow_rows("lost", self._pending)
            self._queue.clear()
            self._pending = 0
            self._observer.shadow_queue(0)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._pending < MAX_ROWS_PER_ROUND:
                await asyncio.sleep(GATHER_S)
            works = self._take()
            rows = sum(len(work.ids) for work in works)
            try:
                stored = await self._score_and_store(works)
                self._observer.shadow_rows("stored", stored)
            except Exception:  # a lost round must not end the task: the next one may work
                logger.exception("shadow scoring lost %d rows", rows)
                self._observer.shadow_rows("lost", rows)
            finally:
                self._pending -= rows
                self._observer.shadow_queue(self._pending)

    def _take(self) -> list[ShadowWork]:
        """Queued work up to MAX_ROWS_PER_ROUND rows (at least one request)."""
        works = [self._queue.popleft()]
        rows = len(works[0].ids)
        while self._queue and rows + len(self._queue[0].ids) <= MAX_ROWS_PER_ROUND:
            works.append(self._queue.popleft())
            rows += len(works[-1].ids)
        return works

    async def _score_and_store(self, works: list[ShadowWork]) -> int:
        """Score each work's rows with each of its shadows (one estimator call per version)
        and store every answer in one transaction; the shadow answers stored."""
        async with self._sessionmaker() as session:
            works = await self._decided(session, works)
            wanted = sorted({v for work in works for v in work.versions or ()})
            versions = await self._catalogue.versions(session, wanted)
        answers = [
            await self._scored(
                versions[version_id], [w for w in works if version_id in (w.versions or ())]
            )
            for version_id in wanted
        ]
        if not answers:
            return 0
        async with self._sessionmaker.begin() as session:
            await insert_shadow_predictions(session, answers)
            answered = [work for work in works if work.versions]
            await record_shadow_commits(
                session,
                [primary for work in answered for primary in work.ids],
                [work.primary_version_id for work in answered for _ in work.ids],
            )
        self._on_commit()
        return sum(len(columns.ids) for columns in answers)

    async def _decided(self, session: AsyncSession, works: list[ShadowWork]) -> list[ShadowWork]:
        """The works whose shadows were left to decide, decided by their model's route now."""
        undecided = sorted({work.model for work in works if work.versions is None})
        if not undecided:
            return works
        routes = await self._catalogue.routes_by_name(session, undecided)
        decided = []
        for work in works:
            if work.versions is None:
                route = routes.get(work.model)
                if route is None or self._draw() >= route.shadow_sample:
                    continue
                work = dataclasses.replace(
                    work, versions=_shadows_for(route, work.primary_version_id)
                )
            decided.append(work)
        return decided

    async def _scored(self, version: Version, works: list[ShadowWork]) -> ShadowColumns:
        """One shadow version's answer (or refusal) to every row of the works."""
        primaries = [(work, index) for work in works for index in range(len(work.ids))]
        return await shadow_answers(
            self._model_cache,
            version,
            [work.inputs[index] for work, index in primaries],
            primary_ids=[work.ids[index] for work, index in primaries],
            primary_created_ats=[work.created_at for work, _ in primaries],
            model_ids=[work.model_id for work, _ in primaries],
        )


async def shadow_answers(
    model_cache: ModelCache,
    version: Version,
    inputs: Sequence[Mapping[str, Any]],
    *,
    primary_ids: Sequence[uuid.UUID],
    primary_created_ats: Sequence[datetime],
    model_ids: Sequence[uuid.UUID],
) -> ShadowColumns:
    """One shadow version's answer (or refusal) to each primary's inputs, column by column
    (no object per row): validated in a thread, then one estimator call for all the rows its
    signature takes; a row it refuses (signature, estimator, a non-finite output) is answered
    with the reason. Raises what else goes wrong (its artifact cannot be loaded, say): the
    caller decides."""
    features, refusals, matrix = await asyncio.to_thread(_validated, version, list(inputs))
    usable = [position for position, refusal in enumerate(refusals) if refusal is None]
    scores, scored, latency_ms = await _scores(
        model_cache, version, usable, features, matrix, refusals
    )
    count = len(inputs)
    labels, values = (
        _spread(scores.labels, scored, count),
        _spread(scores.values, scored, count),
    )
    confidences = _spread(scores.confidences, scored, count)
    probabilities = _spread(scores.probabilities, scored, count)
    for position, finite in zip(scored, scores.finite, strict=True):
        if not finite:
            refusals[position] = "The shadow's output is not a finite number."
            labels[position] = values[position] = confidences[position] = None
            probabilities[position] = None
    return ShadowColumns(
        model_version_id=version.id,
        classes=scores.classes,
        latency_ms=latency_ms,
        ids=[uuid7() for _ in range(count)],
        primary_ids=primary_ids,
        primary_created_ats=primary_created_ats,
        model_ids=model_ids,
        labels=labels,
        values=values,
        confidences=confidences,
        probabilities=probabilities,
        refusals=refusals,
    )


async def _scores(
    model_cache: ModelCache,
    version: Version,
    usable: list[int],
    features: list[dict[str, Any]],
    matrix: Any,
    refusals: list[str | None],
) -> tuple[Scores, list[int], float]:
    """The scores of the usable rows, the positions they belong to, and the latency per
    row: one estimator call for all; one per row only when it refuses them together (a
    row refused alone gets its reason in `refusals`)."""
    rows = [features[position] for position in usable]
    if not rows:
        return Scores(None, None, None, None, None, []), [], 0.0
    try:
        batch = await model_cache.score(version, rows, matrix)
        return batch.scores, usable, batch.latency_ms / len(rows)
    except ValueError:
        kept: list[RowScore] = []
        scored: list[int] = []
        classes = None
        for position in usable:
            try:
                single = (await model_cache.score(version, [features[position]])).scores
            except ValueError as error:
                refusals[position] = f"The estimator refused this input: {refusal_reason(error)}"
                continue
            kept.append(single.row(0))
            scored.append(position)
            classes = single.classes
        if not kept:
            return Scores(None, None, None, None, None, []), [], 0.0
        return Scores.of_rows(kept, classes), scored, 0.0


def drawn_rows(seed: uuid.UUID, numbers: Sequence[int], sample: float) -> list[int]:
    """The positions of the rows numbered `numbers` (a prediction job's row numbers) drawn in
    a `sample` share, decided by the seed (the job's id) and each row's number alone: the
    same rows whatever the chunk, the worker or the run (a resumed job draws as the first
    run did), about `sample` of them (none at 0, all at 1), in one vectorised step."""
    if sample <= 0 or not numbers:
        return []
    if sample >= 1:
        return list(range(len(numbers)))
    key = np.uint64(int.from_bytes(seed.bytes[:8], "big") ^ int.from_bytes(seed.bytes[8:], "big"))
    with np.errstate(over="ignore"):
        mixed = np.asarray(numbers, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed ^= mixed >> np.uint64(31)
    uniform = (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return [int(position) for position in np.flatnonzero(uniform < sample)]


def _spread(column: Sequence[T] | None, positions: list[int], count: int) -> list[T | None]:
    """A column of the scored rows laid out over all `count` rows (None where not scored)."""
    if column is not None and len(positions) == count:
        return list(column)
    spread: list[T | None] = [None] * count
    if column is not None:
        for position, cell in zip(positions, column, strict=True):
            spread[position] = cell
    return spread


def _shadows_for(route: ModelRoute, primary: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """The route's shadows, less the version that answered (it would agree with itself)."""
    return tuple(version for version in route.shadows if version != primary)


def _validated(
    version: Version, instances: list[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str | None], Any]:
    """The rows as the shadow scores them, why each is refused (None: it is not), and their
    matrix when all passed in bulk."""
    checked = rows_checked_in_bulk(instances, version.signature)
    if checked is not None:
        return checked.rows, [None] * len(instances), checked.matrix
    features: list[dict[str, Any]] = []
    refusals: list[str | None] = []
    for instance in instances:
        validated = validate_instance(instance, version.signature, ("inputs",))
        features.append(validated.features)
        refusals.append(validated.problems[0].message if validated.problems else None)
    return features, refusals, None
