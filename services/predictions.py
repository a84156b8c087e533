"""The prediction use case: choose the version (from memory), validate, then hand the request
to its version's pipeline, which scores and stores it with others and answers after COMMIT."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, overload

import numpy as np
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.models.vocabulary import RoutingReason
from modelql.persistence import prediction_repository
from modelql.persistence.prediction_writer import RequestRows
from modelql.persistence.tables import PredictionRow
from modelql.services.catalogue import Catalogue, ModelRoute, RouteChoice, Version
from modelql.services.errors import ErrorCode, FieldProblem, UserInputError
from modelql.services.failure_counts import count_failure, counts_as_failure
from modelql.services.features import rows_checked_in_bulk, validate_instance
from modelql.services.model_access import ModelLimit, check_model, unknown_model

MAX_INPUT_DEPTH = 64
"""Deepest JSON nesting a fingerprint follows; features deeper than this are refused."""


@dataclass(frozen=True)
class PredictionRequest:
    """A request as the client sent it; `batch` decides the input paths errors are reported at."""

    model: str
    version: int | None
    alias: str | None
    instances: list[Any]
    batch: bool
    idempotency_key: str | None = None
    routing_key: str | None = None
    """Keeps a client on one side of a traffic split; by default the caller does."""

    def instance_path(self, index: int) -> tuple[str, ...]:
        return ("instances", str(index)) if self.batch else ("features",)

    def fingerprint(self) -> str:
        """A digest of everything that decides the result, for idempotent replays; key order
        and the spelling of numbers (5 or 5.0) do not count."""
        instances = [
            _normalised(instance, self.instance_path(index), MAX_INPUT_DEPTH)
            for index, instance in enumerate(self.instances)
        ]
        decisive = [self.model, self.version, self.alias, self.batch, instances]
        if self.routing_key is not None:  # absent, fingerprints stay those of earlier releases
            decisive.append(self.routing_key)
        canonical = orjson.dumps(decisive, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


def _normalised(value: Any, path: tuple[str, ...], depth: int) -> Any:
    """Numbers as floats (when exact), recursively, so equal JSON values hash equally;
    non-finite numbers as strings; nesting deeper than `depth` is a user error."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) <= 2**53 else str(value)
    if isinstance(value, float):
        return value if value - value == 0 else repr(value)
    if depth == 0:
        raise UserInputError.single(
            path,
            ErrorCode.INVALID_FEATURES,
            f"Features nest deeper than {MAX_INPUT_DEPTH} levels; a feature value is a number, "
            "a boolean or a string.",
        )
    if isinstance(value, list):
        return [_normalised(item, path, depth - 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _normalised(item, path, depth - 1) for key, item in value.items()}
    return repr(value)


@dataclass(frozen=True)
class Requester:
    request_id: str
    caller: str | None
    limit: ModelLimit | None = None
    """The models the caller's key may reach (None: every model)."""

    def routing_key(self, request: PredictionRequest) -> str:
        """Who a traffic split keeps on one side: the request's routing key, else the caller;
        with neither (authentication off), the request itself, so each request is drawn anew
        and the split's shares still hold."""
        if request.routing_key is not None:
            return f"key:{request.routing_key}"
        if self.caller is not None:
            return f"caller:{self.caller}"
        return f"request:{self.request_id}"


@dataclass(frozen=True, slots=True)
class StoredBatch(Sequence[PredictionRow]):
    """One request's committed predictions: the columns it was inserted from, and the time
    it was stamped with. A 1,000-row batch needs no object per row until one is asked for."""

    rows: RequestRows
    created_at: datetime

    def __len__(self) -> int:
        return len(self.rows.ids)

    @overload
    def __getitem__(self, index: int) -> PredictionRow: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PredictionRow]: ...

    def __getitem__(self, index: int | slice) -> PredictionRow | Sequence[PredictionRow]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        rows = self.rows
        return PredictionRow(
            id=rows.ids[index],
            model_id=rows.model_id,
            model_version_id=rows.model_version_id,
            inputs=dict(rows.inputs[index]),
            label=_at(rows.labels, index),
            value=_at(rows.values, index),
            probabilities=_at(rows.probabilities, index),
            confidence=_at(rows.confidences, index),
            latency_ms=rows.latency_ms,
            created_at=self.created_at,
            request_id=rows.request_id,
            caller=rows.caller,
            idempotency_key=rows.idempotency_key,
            routed_by=rows.routed_by,
        )

    def column(self, values: Sequence[Any] | None) -> Sequence[Any]:
        """One of the per-row columns, with a column that is all null spelled out."""
        return values if values is not None else [None] * len(self.rows.ids)


def _at(column: Sequence[Any] | None, index: int) -> Any:
    return None if column is None else column[index]


@dataclass(frozen=True)
class PredictionOutcome:
    """The predictions a request yields; `replayed` when an earlier request stored them."""

    predictions: Sequence[PredictionRow]
    replayed: bool


@dataclass(eq=False)
class PredictionJob:
    """A validated request on its way through a version's pipeline."""

    request: PredictionRequest
    requester: Requester
    version: Version
    rows: list[dict[str, Any]]
    fingerprint: str | None
    routed_by: RoutingReason = RoutingReason.DEFAULT
    matrix: np.ndarray | None = None
    """The rows as the estimator's matrix, when bulk validation built it."""


class PredictionObserver(Protocol):
    """Where the pipelines report what they did (Prometheus in the service)."""

    def stored(self, model: str, version: int, count: int) -> None: ...

    def rejected(self, model: str, version: int | None, count: int) -> None: ...

    def inference(self, seconds: float, batch_size: int) -> None: ...


class NoObserver:
    """Reports nowhere (metrics off, tests, command-line tools)."""

    def stored(self, model: str, version: int, count: int) -> None:
        return None

    def rejected(self, model: str, version: int | None, count: int) -> None:
        return None

    def inference(self, seconds: float, batch_size: int) -> None:
        return None


class ShadowSink(Protocol):
    """Where committed requests go for their model's shadow versions (never waits)."""

    def offer(self, model: str, batch: StoredBatch) -> None: ...


class PredictionPipelines(Protocol):
    """What the use case needs from the pipelines: run a job, get its outcome after COMMIT."""

    async def run(self, job: PredictionJob) -> PredictionOutcome: ...


class PredictionService:
    """Creates predictions: replay or look up, validate, then score and store in a group."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        pipelines: PredictionPipelines,
        max_batch_size: int,
        observer: PredictionObserver | None = None,
        shadows: ShadowSink | None = None,
    ) -> None:
        self._shadows = shadows
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._pipelines = pipelines
        self._max_batch_size = max_batch_size
        self._observer = observer or NoObserver()

    async def create(self, request: PredictionRequest, requester: Requester) -> PredictionOutcome:
        """Stored predictions for the request, or a UserInputError with every problem found;
        nothing is stored unless everything is, and nothing is returned before COMMIT."""
        check_model(requester.limit, request.model)
        self._check_size(request)
        fingerprint = request.fingerprint() if request.idempotency_key is not None else None
        chosen = None if fingerprint is not None else self._version_in_memory(request, requester)
        if chosen is None:  # a session only when the database must be asked
            async with self._sessionmaker() as session:
                if fingerprint is not None:
                    replayed = await _replay(session, requester, request, fingerprint)
                    if replayed is not None:
                        return PredictionOutcome(replayed, replayed=True)
                chosen = await self._version(session, request, requester)
        version, routed_by = chosen
        try:
            return await self._scored(request, requester, version, routed_by, fingerprint)
        except Exception as error:
            if counts_as_failure(error):
                await count_failure(self._sessionmaker, version, len(request.instances))
            raise

    async def _scored(
        self,
        request: PredictionRequest,
        requester: Requester,
        version: Version,
        routed_by: RoutingReason,
        fingerprint: str | None,
    ) -> PredictionOutcome:
        """Validate the request against its version, then score and store it in a group."""
        try:
            rows, matrix = _validated_rows(request, version)
        except UserInputError:
            self._observer.rejected(request.model, version.number, len(request.instances))
            raise
        job = PredictionJob(request, requester, version, rows, fingerprint, routed_by, matrix)
        outcome = await self._pipelines.run(job)
        if self._shadows is not None and isinstance(outcome.predictions, StoredBatch):
            self._shadows.offer(request.model, outcome.predictions)  # committed: off the path
        return outcome

    async def choose_version(
        self, request: PredictionRequest, requester: Requester
    ) -> tuple[Version, RoutingReason]:
        """The version that answers the request (from memory when the catalogue holds it);
        a UserInputError naming the model, version or alias that names none."""
        check_model(requester.limit, request.model)
        chosen = self._version_in_memory(request, requester)
        if chosen is not None:
            return chosen
        async with self._sessionmaker() as session:
            return await self._version(session, request, requester)

    def _check_size(self, request: PredictionRequest) -> None:
        if request.batch and len(request.instances) > self._max_batch_size:
            raise UserInputError.single(
                ("instances",),
                ErrorCode.BATCH_TOO_LARGE,
                f"A batch holds at most {self._max_batch_size} instances, "
                f"got {len(request.instances)}.",
            )
        if request.batch and not request.instances:
            raise UserInputError.single(
                ("instances",), ErrorCode.INVALID_FEATURES, "Expected at least one instance."
            )

    def _version_in_memory(
        self, request: PredictionRequest, requester: Requester
    ) -> tuple[Version, RoutingReason] | None:
        """The version that answers, when the catalogue holds its route and it; else None."""
        route = self._catalogue.known_route(request.model)
        if route is None:
            return None
        choice = _choice(route, request, requester)
        version = self._catalogue.known_version(choice.version_id)
        return None if version is None else (version, choice.routed_by)

    async def _version(
        self, session: AsyncSession, request: PredictionRequest, requester: Requester
    ) -> tuple[Version, RoutingReason]:
        route = (await self._catalogue.routes_by_name(session, [request.model])).get(request.model)
        if route is None:
            raise unknown_model(request.model)
        choice = _choice(route, request, requester)
        versions = await self._catalogue.versions(session, [choice.version_id])
        return versions[choice.version_id], choice.routed_by


def _choice(route: ModelRoute, request: PredictionRequest, requester: Requester) -> RouteChoice:
    return route.choose(
        number=request.version, alias=request.alias, routing_key=requester.routing_key(request)
    )


def _validated_rows(
    request: PredictionRequest, version: Version
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """The rows to score (with their matrix when checked in bulk); every problem of every
    instance at once otherwise."""
    checked = rows_checked_in_bulk(request.instances, version.signature)
    if checked is not None:
        return checked.rows, checked.matrix
    rows: list[dict[str, Any]] = []
    problems: list[FieldProblem] = []
    for index, instance in enumerate(request.instances):
        validated = validate_instance(instance, version.signature, request.instance_path(index))
        rows.append(validated.features)
        problems.extend(validated.problems)
    if problems:
        raise UserInputError(problems)
    return rows, None


def conflict(request: PredictionRequest) -> UserInputError:
    return UserInputError.single(
        ("idempotencyKey",),
        ErrorCode.IDEMPOTENCY_CONFLICT,
        f"Idempotency key {request.idempotency_key!r} was already used with a different "
        "input; use a new key for a new request.",
    )


async def _replay(
    session: AsyncSession, requester: Requester, request: PredictionRequest, fingerprint: str
) -> list[PredictionRow] | None:
    """The stored predictions of an earlier identical request with this key, if any."""
    if request.idempotency_key is None:
        return None
    record = await prediction_repository.idempotency_record(
        session, caller=requester.caller or "", key=request.idempotency_key
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise conflict(request)
    return await prediction_repository.predictions_of_record(session, record.id)
