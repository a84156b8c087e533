"""The Mutation root: one transaction per mutation, committed before the payload is returned."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graph.context import GraphContext
from graph.errors import ClientError, ErrorCode, bad_input
from graph.permissions import CanPredict
from graph.types.predictions import PredictionType
from persistence import tables
from services import predictions
from services.errors import ErrorCode as DomainCode
from services.errors import ModelUnavailableError, UserInputError

Info = strawberry.Info[GraphContext, None]
MAX_IDEMPOTENCY_KEY_LENGTH = 200


@strawberry.enum
class UserErrorCode(Enum):
    MODEL_NOT_FOUND = DomainCode.MODEL_NOT_FOUND.value
    VERSION_NOT_FOUND = DomainCode.VERSION_NOT_FOUND.value
    INVALID_FEATURES = DomainCode.INVALID_FEATURES.value
    BATCH_TOO_LARGE = DomainCode.BATCH_TOO_LARGE.value
    IDEMPOTENCY_CONFLICT = DomainCode.IDEMPOTENCY_CONFLICT.value


@strawberry.type(description="A problem with the input; nothing was stored.")
class UserError:
    field: list[str] = strawberry.field(description='Path into the input, e.g. ["features", "x"].')
    code: UserErrorCode
    message: str

    @classmethod
    def from_error(cls, error: UserInputError) -> list[UserError]:
        return [
            cls(
                field=list(problem.path),
                code=UserErrorCode(problem.code.value),
                message=problem.message,
            )
            for problem in error.problems
        ]


@strawberry.input
class CreatePredictionInput:
    model: str
    version: int | None = strawberry.field(
        default=None, description="Neither version nor alias: the model's default version."
    )
    alias: str | None = None
    features: JSON = strawberry.field(description="Object: feature name -> value.")
    idempotency_key: str | None = None


@strawberry.input
class CreatePredictionsInput:
    model: str
    version: int | None = None
    alias: str | None = None
    instances: list[JSON] = strawberry.field(description="Each an object like `features`.")
    idempotency_key: str | None = None


@strawberry.type
class CreatePredictionPayload:
    prediction: PredictionType | None
    user_errors: list[UserError]


@strawberry.type
class CreatePredictionsPayload:
    predictions: list[PredictionType]
    user_errors: list[UserError]


def _checked_key(key: str | None) -> str | None:
    if key is not None and (not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or "\x00" in key):
        raise bad_input(
            f"`idempotencyKey` must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long, "
            "without NUL characters.",
            "idempotencyKey",
        )
    return key


async def _create(info: Info, request: predictions.PredictionRequest) -> list[tables.Prediction]:
    """Look up and validate (read-only), score holding no connection, then store in one
    transaction committed before returning. Raises UserInputError with nothing stored."""
    context = info.context
    requester = predictions.Requester(request_id=context.request_id, caller=context.caller)
    sessionmaker = context.dependencies.sessionmaker
    async with sessionmaker() as session:
        prepared = await predictions.prepare(
            session, request, requester, max_batch_size=context.limits.max_batch_size
        )
    if isinstance(prepared, predictions.PredictionOutcome):
        return prepared.predictions
    try:
        scored = await predictions.score(context.dependencies.model_cache, prepared)
    except ModelUnavailableError as error:
        raise ClientError(str(error), ErrorCode.MODEL_UNAVAILABLE) from error

    async def in_transaction() -> predictions.PredictionOutcome:
        async with sessionmaker.begin() as session:
            return await predictions.store(session, request, requester, prepared, scored)

    # Shielded: an execution timeout must not cut the transaction between COMMIT and reply.
    outcome = await asyncio.shield(in_transaction())
    if not outcome.replayed:
        context.request_log.predictions_stored += len(outcome.predictions)
    return outcome.predictions


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Validate, score and store one instance.", permission_classes=[CanPredict]
    )
    async def create_prediction(
        self, info: Info, input: CreatePredictionInput
    ) -> CreatePredictionPayload:
        request = predictions.PredictionRequest(
            model=input.model,
            version=input.version,
            alias=input.alias,
            instances=[input.features],
            batch=False,
            idempotency_key=_checked_key(input.idempotency_key),
        )
        try:
            stored = await _create(info, request)
        except UserInputError as error:
            return CreatePredictionPayload(prediction=None, user_errors=UserError.from_error(error))
        return CreatePredictionPayload(
            prediction=PredictionType.from_row(stored[0]), user_errors=[]
        )

    @strawberry.mutation(
        description="Validate, score and store a batch: all or nothing.",
        permission_classes=[CanPredict],
    )
    async def create_predictions(
        self, info: Info, input: CreatePredictionsInput
    ) -> CreatePredictionsPayload:
        instances: list[Any] = list(input.instances)
        request = predictions.PredictionRequest(
            model=input.model,
            version=input.version,
            alias=input.alias,
            instances=instances,
            batch=True,
            idempotency_key=_checked_key(input.idempotency_key),
        )
        try:
            stored = await _create(info, request)
        except UserInputError as error:
            return CreatePredictionsPayload(predictions=[], user_errors=UserError.from_error(error))
        return CreatePredictionsPayload(
            predictions=[PredictionType.from_row(row) for row in stored], user_errors=[]
        )
