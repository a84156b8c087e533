"""Creating predictions: choose the version, validate, score, and store, all or nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.signature import FeatureSpec
from persistence.tables import IdempotencyRecord, ModelVersion, Prediction
from services import catalogue
from services.errors import ErrorCode, FieldProblem, UserInputError
from services.features import validate_instance
from services.inference import ModelCache, ScoredBatch


@dataclass(frozen=True)
class PredictionRequest:
    """A request as the client sent it; `batch` decides the input paths errors are reported at."""

    model: str
    version: int | None
    alias: str | None
    instances: list[Any]
    batch: bool
    idempotency_key: str | None = None

    def instance_path(self, index: int) -> tuple[str, ...]:
        return ("instances", str(index)) if self.batch else ("features",)

    def fingerprint(self) -> str:
        """A digest of everything that decides the result, for idempotent replays; key order
        and the spelling of numbers (5 or 5.0) do not count."""
        canonical = json.dumps(
            _normalised([self.model, self.version, self.alias, self.batch, self.instances]),
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _normalised(value: Any) -> Any:
    """Numbers as floats (when exact), recursively, so equal JSON values hash equally."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) <= 2**53 else value
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class PredictionOutcome:
    """The predictions a request yields; `replayed` when they were stored by an earlier request."""

    predictions: list[Prediction]
    replayed: bool


@dataclass(frozen=True)
class Requester:
    request_id: str
    caller: str | None


async def resolve_version(
    session: AsyncSession, *, model: str, version: int | None, alias: str | None
) -> ModelVersion:
    """The version a request names, or a user error saying which argument names nothing."""
    model_row = (await catalogue.models_by_name(session, [model])).get(model)
    if model_row is None:
        raise UserInputError.single(
            ("model",), ErrorCode.MODEL_NOT_FOUND, f"No model is named {model!r}."
        )
    if alias is not None:
        found = (await catalogue.versions_by_alias(session, [(model_row.id, alias)])).get(
            (model_row.id, alias)
        )
        if found is None:
            raise UserInputError.single(
                ("alias",),
                ErrorCode.VERSION_NOT_FOUND,
                f"Model {model!r} has no alias {alias!r}.",
            )
        if version is not None and found.number != version:
            raise UserInputError.single(
                ("version",),
                ErrorCode.VERSION_NOT_FOUND,
                f"Alias {alias!r} of model {model!r} points to version {found.number}, "
                f"not {version}; give one of them, or both agreeing.",
            )
        return found
    if version is not None:
        found = (await catalogue.versions_by_number(session, [(model_row.id, version)])).get(
            (model_row.id, version)
        )
        if found is None:
            raise UserInputError.single(
                ("version",),
                ErrorCode.VERSION_NOT_FOUND,
                f"Model {model!r} has no version {version}.",
            )
        return found
    default = (await catalogue.default_versions(session, [model_row.id])).get(model_row.id)
    if default is None:
        raise UserInputError.single(
            ("model",), ErrorCode.VERSION_NOT_FOUND, f"Model {model!r} has no version yet."
        )
    return default


def validate_request(
    request: PredictionRequest, version: ModelVersion, *, max_batch_size: int
) -> list[dict[str, Any]]:
    """The validated rows to score; every problem of every instance at once otherwise."""
    if request.batch and len(request.instances) > max_batch_size:
        raise UserInputError.single(
            ("instances",),
            ErrorCode.BATCH_TOO_LARGE,
            f"A batch holds at most {max_batch_size} instances, got {len(request.instances)}.",
        )
    if request.batch and not request.instances:
        raise UserInputError.single(
            ("instances",), ErrorCode.INVALID_FEATURES, "Expected at least one instance."
        )
    signature = [FeatureSpec.from_json(spec) for spec in version.input_schema]
    rows: list[dict[str, Any]] = []
    problems: list[FieldProblem] = []
    for index, instance in enumerate(request.instances):
        checked = validate_instance(instance, signature, request.instance_path(index))
        rows.append(checked.features)
        problems.extend(checked.problems)
    if problems:
        raise UserInputError(problems)
    return rows


async def _replay(
    session: AsyncSession, requester: Requester, request: PredictionRequest
) -> list[Prediction] | None:
    """The stored predictions of an earlier identical request with this key, if any."""
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.caller == (requester.caller or ""),
            IdempotencyRecord.key == request.idempotency_key,
        )
    )
    if record is None:
        return None
    if record.fingerprint != request.fingerprint():
        raise UserInputError.single(
            ("idempotencyKey",),
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"Idempotency key {request.idempotency_key!r} was already used with a different "
            "input; use a new key for a new request.",
        )
    stored = await session.scalars(
        select(Prediction)
        .where(Prediction.idempotency_record_id == record.id)
        .order_by(Prediction.batch_index)
    )
    return list(stored.all())


async def _claim_key(
    session: AsyncSession, requester: Requester, request: PredictionRequest
) -> IdempotencyRecord | None:
    """Claim the key; None when a concurrent request claimed it first (and has committed)."""
    claimed = await session.scalar(
        pg_insert(IdempotencyRecord)
        .values(
            caller=requester.caller or "",
            key=request.idempotency_key,
            fingerprint=request.fingerprint(),
        )
        .on_conflict_do_nothing(index_elements=["caller", "key"])
        .returning(IdempotencyRecord)
    )
    return claimed


@dataclass(frozen=True)
class PreparedRequest:
    """A request checked against its version's signature, ready to be scored."""

    version: ModelVersion
    rows: list[dict[str, Any]]


async def prepare(
    session: AsyncSession,
    request: PredictionRequest,
    requester: Requester,
    *,
    max_batch_size: int,
) -> PreparedRequest | PredictionOutcome:
    """Replay an earlier identical request, or resolve the version and validate every
    instance (all problems at once). Reads only: the session can be released before scoring."""
    if request.idempotency_key is not None:
        replayed = await _replay(session, requester, request)
        if replayed is not None:
            return PredictionOutcome(replayed, replayed=True)
    version = await resolve_version(
        session, model=request.model, version=request.version, alias=request.alias
    )
    return PreparedRequest(
        version, validate_request(request, version, max_batch_size=max_batch_size)
    )


async def score(cache: ModelCache, prepared: PreparedRequest) -> ScoredBatch:
    """Score every row in one estimator call, off the event loop, holding no connection."""
    return await cache.score(prepared.version, prepared.rows)


async def store(
    session: AsyncSession,
    request: PredictionRequest,
    requester: Requester,
    prepared: PreparedRequest,
    scored: ScoredBatch,
) -> PredictionOutcome:
    """Claim the idempotency key (or replay the concurrent winner) and insert the predictions;
    flushes, never commits."""
    record_id = None
    if request.idempotency_key is not None:
        record = await _claim_key(session, requester, request)
        if record is None:
            replayed = await _replay(session, requester, request)
            assert replayed is not None, "a conflicting claim is committed before we proceed"
            return PredictionOutcome(replayed, replayed=True)
        record_id = record.id
    stored = await _store(session, prepared, scored, requester, request, record_id)
    return PredictionOutcome(stored, replayed=False)


async def _store(
    session: AsyncSession,
    prepared: PreparedRequest,
    scored: ScoredBatch,
    requester: Requester,
    request: PredictionRequest,
    record_id: uuid.UUID | None,
) -> list[Prediction]:
    version, rows = prepared.version, prepared.rows
    latency_ms = scored.latency_ms / len(rows)
    values = [
        {
            "model_id": version.model_id,
            "model_version_id": version.id,
            "inputs": features,
            "label": output.label,
            "value": output.value,
            "probabilities": [
                {"label": label, "probability": probability}
                for label, probability in output.probabilities
            ]
            if output.probabilities is not None
            else None,
            "confidence": output.confidence,
            "latency_ms": latency_ms,
            "request_id": requester.request_id,
            "caller": requester.caller,
            "idempotency_key": request.idempotency_key,
            "idempotency_record_id": record_id,
            "batch_index": index,
        }
        for index, (features, output) in enumerate(zip(rows, scored.outputs, strict=True))
    ]
    statement = insert(Prediction).returning(Prediction, sort_by_parameter_order=True)
    return list((await session.scalars(statement, values)).all())
