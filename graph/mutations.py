"""The Mutation root: each mutation maps its input to one use-case call and the outcome to its
payload; what a mutation stores is committed before the payload is returned."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import cast

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from modelql.graph.context import GraphContext
from modelql.graph.errors import ClientError, ErrorCode, bad_input
from modelql.graph.permissions import CanAdmin, CanGiveFeedback, CanPredict
from modelql.graph.types.alerts import AlertRuleType, CreateAlertRuleInput
from modelql.graph.types.comparison import ComparisonSource
from modelql.graph.types.jobs import PredictionJob, job_id
from modelql.graph.types.node import from_global_id
from modelql.graph.types.nodes import ModelType, PredictionType
from modelql.graph.types.predictions import OutcomeType
from modelql.services import outcomes, prediction_jobs, predictions
from modelql.services.catalogue_changes import BasedOn
from modelql.services.errors import ErrorCode as DomainCode
from modelql.services.errors import ModelUnavailableError, UserInputError
from modelql.services.shadow_versions import ShadowVersionRef

Info = strawberry.Info[GraphContext, None]
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_ROUTING_KEY_LENGTH = 200
ROUTING_KEY = (
    "With a traffic split and neither version nor alias: the same key always gets the same "
    "version while the split is unchanged (e.g. a user id). Default: the caller (the API key); "
    "without authentication, each request is drawn on its own."
)


# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
UserErrorCode = DomainCode
strawberry.enum(UserErrorCode, name="UserErrorCode")


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
                code=problem.code,
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
    routing_key: str | None = strawberry.field(default=None, description=ROUTING_KEY)


@strawberry.input
class CreatePredictionsInput:
    model: str
    version: int | None = None
    alias: str | None = None
    instances: list[JSON] = strawberry.field(description="Each an object like `features`.")
    idempotency_key: str | None = None
    routing_key: str | None = strawberry.field(default=None, description=ROUTING_KEY)


@strawberry.input(
    description="Run a comparison with the version being promoted as the candidate and keep "
    "its summary with the move (`aliasHistory { basedOn }`)."
)
class BasedOnInput:
    source: ComparisonSource = ComparisonSource.SHADOW
    sample: int = strawberry.field(default=1000, description="Newest predictions compared.")


@strawberry.input
class SetAliasInput:
    model: str
    alias: str
    version: int
    based_on: BasedOnInput | None = strawberry.field(
        default=None, description="The comparison this move rests on, kept in the history."
    )


@strawberry.input(description="A version by its number within the model, or by its id.")
class ShadowVersionInput:
    version: int | None = None
    id: strawberry.ID | None = None


@strawberry.input
class SetShadowInput:
    model: str
    versions: list[ShadowVersionInput] = strawberry.field(
        description="The shadow versions; empty: none (clears them)."
    )
    sample: float | None = strawberry.field(
        default=None,
        description="Share of live requests the shadows score, more than 0 and at most 1.",
    )

    def refs(self) -> tuple[list[ShadowVersionRef], list[UserError]]:
        """The versions as the use case takes them, and the ids that are none of ours."""
        refs, errors = [], []
        for index, item in enumerate(self.versions):
            version_id = None
            if item.id is not None:
                try:
                    type_name, version_id = from_global_id(item.id)
                except ClientError:
                    type_name = ""
                if type_name != "ModelVersion":
                    errors.append(
                        UserError(
                            field=["versions", str(index), "id"],
                            code=UserErrorCode.VERSION_NOT_FOUND,
                            message=f"Not the id of a model version: {item.id!r}.",
                        )
                    )
            refs.append(ShadowVersionRef(number=item.version, version_id=version_id))
        return refs, errors


@strawberry.type
class SetShadowPayload:
    model: ModelType | None
    user_errors: list[UserError]


@strawberry.type
class SetAliasPayload:
    model: ModelType | None
    user_errors: list[UserError]


@strawberry.input(description="A version's weight; shares are weight over the sum of weights.")
class TrafficShareInput:
    version: int
    weight: float = strawberry.field(description="Positive and finite.")


@strawberry.input
class SetTrafficSplitInput:
    model: str
    shares: list[TrafficShareInput] = strawberry.field(description="Empty: remove the split.")


@strawberry.type
class SetTrafficSplitPayload:
    model: ModelType | None
    user_errors: list[UserError]


@strawberry.type
class CreatePredictionPayload:
    prediction: PredictionType | None
    user_errors: list[UserError]


@strawberry.type
class CreatePredictionsPayload:
    predictions: list[PredictionType]
    user_errors: list[UserError]


@strawberry.input(
    description="The truth about one prediction: name it by `predictionId`, or by `requestId` "
    "and `batchIndex`; give `label` (classification) or `value` (regression)."
)
class OutcomeInput:
    prediction_id: strawberry.ID | None = strawberry.field(
        default=None, description="The prediction's global id."
    )
    request_id: str | None = strawberry.field(
        default=None, description="The X-Request-ID of the request that made the prediction."
    )
    batch_index: int | None = strawberry.field(
        default=None, description="Position in that request's batch; default 0."
    )
    label: str | None = strawberry.field(default=None, description="One of the version's labels.")
    value: float | None = strawberry.field(default=None, description="Finite.")
    observed_at: datetime | None = strawberry.field(
        default=None, description="When the truth became known; default: now."
    )

    def request(self) -> outcomes.OutcomeRequest:
        return outcomes.OutcomeRequest(
            prediction_id=_prediction_key(self.prediction_id),
            request_id=self.request_id,
            batch_index=self.batch_index,
            label=self.label,
            value=self.value,
            observed_at=self.observed_at,
        )


def _prediction_key(global_id: str | None) -> uuid.UUID | None:
    """The prediction's database id; NO_PREDICTION for an id that names no prediction."""
    if global_id is None:
        return None
    try:
        type_name, key = from_global_id(global_id, argument="predictionId")
    except ClientError:
        return outcomes.NO_PREDICTION
    return key if type_name == "Prediction" else outcomes.NO_PREDICTION


@strawberry.input(description="At most MODELQL_MAX_BATCH_SIZE outcomes; all or nothing.")
class RecordOutcomesInput:
    outcomes: list[OutcomeInput]


@strawberry.type
class RecordOutcomesPayload:
    outcomes: list[OutcomeType] = strawberry.field(
        description="For each input, in order, the outcome that now counts for its prediction."
    )
    user_errors: list[UserError]


def _checked_key(key: str | None, argument: str, maximum: int) -> str | None:
    """A client-chosen key (idempotency, routing): 1 to `maximum` characters, no NUL."""
    if key is not None and (not 0 < len(key) <= maximum or "\x00" in key):
        raise bad_input(
            f"`{argument}` must be 1 to {maximum} characters long, without NUL characters.",
            argument,
        )
    return key


async def _model(info: Info, name: str) -> ModelType | None:
    """The model as committed (the use case has made this process forget its old routes)."""
    row = await info.context.loaders.model_by_name.load(name)
    return ModelType.from_row(row) if row else None


async def _create(
    context: GraphContext, request: predictions.PredictionRequest
) -> list[PredictionType]:
    """The request's stored predictions, committed; UserInputError with nothing stored."""
    requester = predictions.Requester(
        request_id=context.request_id, caller=context.caller, limit=context.model_limit
    )
    try:
        outcome = await context.dependencies.predictions.create(request, requester)
    except ModelUnavailableError as error:
        raise ClientError(str(error), ErrorCode.MODEL_UNAVAILABLE) from error
    if not outcome.replayed:
        context.request_log.predictions_stored += len(outcome.predictions)
    if isinstance(outcome.predictions, predictions.StoredBatch):
        return PredictionType.from_batch(outcome.predictions)
    return [
        PredictionType.from_row(row, created_by_this_request=True) for row in outcome.predictions
    ]


def _prediction_request(
    input: CreatePredictionInput | CreatePredictionsInput, instances: list[object], *, batch: bool
) -> predictions.PredictionRequest:
    return predictions.PredictionRequest(
        model=input.model,
        version=input.version,
        alias=input.alias,
        instances=instances,
        batch=batch,
        idempotency_key=_checked_key(
            input.idempotency_key, "idempotencyKey", MAX_IDEMPOTENCY_KEY_LENGTH
        ),
        routing_key=_checked_key(input.routing_key, "routingKey", MAX_ROUTING_KEY_LENGTH),
    )


async def create_prediction(
    context: GraphContext, input: CreatePredictionInput
) -> CreatePredictionPayload:
    request = _prediction_request(input, [input.features], batch=False)
    try:
        stored = await _create(context, request)
    except UserInputError as error:
        return CreatePredictionPayload(prediction=None, user_errors=UserError.from_error(error))
    return CreatePredictionPayload(prediction=stored[0], user_errors=[])


async def create_predictions(
    context: GraphContext, input: CreatePredictionsInput
) -> CreatePredictionsPayload:
    request = _prediction_request(input, list(input.instances), batch=True)
    try:
        stored = await _create(context, request)
    except UserInputError as error:
        return CreatePredictionsPayload(predictions=[], user_errors=UserError.from_error(error))
    return CreatePredictionsPayload(predictions=stored, user_errors=[])


DIRECT_MUTATIONS: Mapping[str, Callable[..., Awaitable[object]]] = {
    "createPrediction": create_prediction,
    "createPredictions": create_predictions,
}
"""The root fields the direct executor may run without graphql-core (see graph/direct.py)."""


@strawberry.input(
    description="Where a job's rows come from: exactly one of an uploaded file (GraphQL "
    "multipart request) or a file on the server under MODELQL_JOB_SOURCE_DIR."
)
class PredictionJobSourceInput:
    file: Upload | None = strawberry.field(default=None, description="A CSV or Parquet file.")
    path: str | None = strawberry.field(
        default=None, description="Relative to MODELQL_JOB_SOURCE_DIR (unset: refused)."
    )


@strawberry.input
class SubmitPredictionJobInput:
    model: str
    version: int | None = strawberry.field(
        default=None, description="Neither version nor alias: the model's default version."
    )
    alias: str | None = None
    source: PredictionJobSourceInput
    partial: bool = strawberry.field(
        default=False,
        description="false: any failing row fails the job and nothing is stored; true: the "
        "valid rows are stored and the others reported.",
    )

    def submission(self) -> prediction_jobs.JobSubmission:
        file = self.source.file
        return prediction_jobs.JobSubmission(
            model=self.model,
            version=self.version,
            alias=self.alias,
            partial=self.partial,
            upload=None if file is None else _uploaded(file),
            path=self.source.path,
        )


def _uploaded(file: Upload) -> prediction_jobs.UploadedFile:
    """Strawberry types `Upload` as bytes; over ASGI, the value is Starlette's UploadFile."""
    upload = cast(UploadFile, file)
    return prediction_jobs.UploadedFile(name=upload.filename, size=upload.size, read=upload.read)


@strawberry.type
class PredictionJobPayload:
    job: PredictionJob | None
    user_errors: list[UserError]


@strawberry.type
class CreateAlertRulePayload:
    rule: AlertRuleType | None
    secret: str | None = strawberry.field(
        description="The key of the webhook signatures (HMAC-SHA256): shown this once."
    )
    user_errors: list[UserError]


@strawberry.type
class AlertRulePayload:
    rule: AlertRuleType | None
    user_errors: list[UserError]


def _rule_id(value: strawberry.ID) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise UserInputError.single(
            ("id",), DomainCode.ALERT_RULE_NOT_FOUND, "Not an alert rule id."
        ) from None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Validate, score and store one instance.", permission_classes=[CanPredict]
    )
    async def create_prediction(
        self, info: Info, input: CreatePredictionInput
    ) -> CreatePredictionPayload:
        return await create_prediction(info.context, input)

    @strawberry.mutation(
        description="Validate, score and store a batch: all or nothing.",
        permission_classes=[CanPredict],
    )
    async def create_predictions(
        self, info: Info, input: CreatePredictionsInput
    ) -> CreatePredictionsPayload:
        return await create_predictions(info.context, input)

    @strawberry.mutation(
        description="Point an alias at a version; the move is kept in `aliasHistory`.",
        permission_classes=[CanAdmin],
    )
    async def set_alias(self, info: Info, input: SetAliasInput) -> SetAliasPayload:
        try:
            await info.context.dependencies.catalogue_changes.set_alias(
                model_name=input.model,
                alias=input.alias,
                number=input.version,
                actor=info.context.caller,
                limit=info.context.model_limit,
                based_on=BasedOn(input.based_on.source, input.based_on.sample)
                if input.based_on
                else None,
            )
        except UserInputError as error:
            return SetAliasPayload(model=None, user_errors=UserError.from_error(error))
        return SetAliasPayload(model=await _model(info, input.model), user_errors=[])

    @strawberry.mutation(
        description="Set the traffic split of requests naming neither version nor alias; an "
        "empty list removes it. Changes are kept in `trafficSplitHistory`.",
        permission_classes=[CanAdmin],
    )
    async def set_traffic_split(
        self, info: Info, input: SetTrafficSplitInput
    ) -> SetTrafficSplitPayload:
        try:
            await info.context.dependencies.catalogue_changes.set_traffic_split(
                model_name=input.model,
                shares=[(share.version, share.weight) for share in input.shares],
                actor=info.context.caller,
                limit=info.context.model_limit,
            )
        except UserInputError as error:
            return SetTrafficSplitPayload(model=None, user_errors=UserError.from_error(error))
        return SetTrafficSplitPayload(model=await _model(info, input.model), user_errors=[])

    @strawberry.mutation(
        description="Set the versions that score a sampled share of the model's live requests "
        "in the shadow, after each answer is sent (`Prediction.shadows`; compare with "
        "`compareVersions(source: SHADOW)`). An empty list clears them; changes are kept in "
        "`shadowHistory`.",
        permission_classes=[CanAdmin],
    )
    async def set_shadow(self, info: Info, input: SetShadowInput) -> SetShadowPayload:
        refs, errors = input.refs()
        if errors:
            return SetShadowPayload(model=None, user_errors=errors)
        try:
            await info.context.dependencies.catalogue_changes.set_shadow(
                model_name=input.model,
                versions=refs,
                sample=input.sample,
                actor=info.context.caller,
                limit=info.context.model_limit,
            )
        except UserInputError as error:
            return SetShadowPayload(model=None, user_errors=UserError.from_error(error))
        return SetShadowPayload(model=await _model(info, input.model), user_errors=[])

    @strawberry.mutation(
        description="Record ground truth for stored predictions (all or nothing). Recording the "
        "outcome that already counts changes nothing; a different one is a correction.",
        permission_classes=[CanGiveFeedback],
    )
    async def record_outcomes(
        self, info: Info, input: RecordOutcomesInput
    ) -> RecordOutcomesPayload:
        requests = [item.request() for item in input.outcomes]
        try:
            rows = await info.context.dependencies.outcomes.record(
                requests, caller=info.context.caller, limit=info.context.model_limit
            )
        except UserInputError as error:
            return RecordOutcomesPayload(outcomes=[], user_errors=UserError.from_error(error))
        return RecordOutcomesPayload(outcomes=[OutcomeType.of(row) for row in rows], user_errors=[])

    @strawberry.mutation(
        description="Create an alert rule; its webhook secret is in the payload, only there.",
        permission_classes=[CanAdmin],
    )
    async def create_alert_rule(
        self, info: Info, input: CreateAlertRuleInput
    ) -> CreateAlertRulePayload:
        try:
            created = await info.context.dependencies.alert_rules.create(
                input.request(), info.context.model_limit
            )
        except UserInputError as error:
            return CreateAlertRulePayload(
                rule=None, secret=None, user_errors=UserError.from_error(error)
            )
        return CreateAlertRulePayload(
            rule=AlertRuleType.of(created.rule), secret=created.secret, user_errors=[]
        )

    @strawberry.mutation(
        description="Switch a rule on or off (off: its state goes back to ok).",
        permission_classes=[CanAdmin],
    )
    async def set_alert_rule_enabled(
        self, info: Info, id: strawberry.ID, enabled: bool
    ) -> AlertRulePayload:
        try:
            row = await info.context.dependencies.alert_rules.set_enabled(
                _rule_id(id), enabled, info.context.model_limit
            )
        except UserInputError as error:
            return AlertRulePayload(rule=None, user_errors=UserError.from_error(error))
        return AlertRulePayload(rule=AlertRuleType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Delete a rule with its delivery log.", permission_classes=[CanAdmin]
    )
    async def delete_alert_rule(self, info: Info, id: strawberry.ID) -> AlertRulePayload:
        try:
            await info.context.dependencies.alert_rules.delete(
                _rule_id(id), info.context.model_limit
            )
        except UserInputError as error:
            return AlertRulePayload(rule=None, user_errors=UserError.from_error(error))
        return AlertRulePayload(rule=None, user_errors=[])

    @strawberry.mutation(
        description="Queue a batch scoring job over a CSV or Parquet file; any `modelql serve` "
        "or `modelql worker` process works it. The file is checked at once (format, columns, "
        "size, place); its rows are validated and scored by the worker.",
        permission_classes=[CanPredict],
    )
    async def submit_prediction_job(
        self, info: Info, input: SubmitPredictionJobInput
    ) -> PredictionJobPayload:
        requester = predictions.Requester(
            request_id=info.context.request_id,
            caller=info.context.caller,
            limit=info.context.model_limit,
        )
        try:
            job = await info.context.dependencies.jobs.submit(input.submission(), requester)
        except UserInputError as error:
            return PredictionJobPayload(job=None, user_errors=UserError.from_error(error))
        return PredictionJobPayload(job=PredictionJob.of(job), user_errors=[])

    @strawberry.mutation(
        description="Cancel a queued or running job: no further chunk is stored (chunks stored "
        "before stay). A finished job is returned unchanged.",
        permission_classes=[CanPredict],
    )
    async def cancel_prediction_job(self, info: Info, id: strawberry.ID) -> PredictionJobPayload:
        try:
            job = await info.context.dependencies.jobs.cancel(job_id(id), info.context.model_limit)
        except UserInputError as error:
            return PredictionJobPayload(job=None, user_errors=UserError.from_error(error))
        return PredictionJobPayload(job=PredictionJob.of(job), user_errors=[])
