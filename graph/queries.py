"""The Query root: catalogue look-ups, audit pages and statistics."""

from __future__ import annotations

from typing import Annotated

import strawberry

from modelql.graph.context import GraphContext
from modelql.graph.errors import ClientError, ErrorCode
from modelql.graph.paging import model_page, prediction_page, select_version
from modelql.graph.permissions import CanAudit, CanRead
from modelql.graph.types.alerts import AlertRuleType
from modelql.graph.types.comparison import ComparisonSource, VersionComparison, VersionSelector
from modelql.graph.types.connection import Connection
from modelql.graph.types.enums import ModelTask
from modelql.graph.types.jobs import PredictionJob, job_id
from modelql.graph.types.node import Node, from_global_id
from modelql.graph.types.nodes import ModelType, ModelVersionType, PredictionType
from modelql.graph.types.predictions import PredictionFilter, PredictionStatsType
from modelql.services import catalogue, comparison
from modelql.services.api_keys import Scope
from modelql.services.errors import UserInputError
from modelql.services.model_access import ModelLimit

Info = strawberry.Info[GraphContext, None]


@strawberry.input(description="Narrows the model list; every field given must hold.")
class ModelFilter:
    task: ModelTask | None = None
    tag: str | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name or description."
    )

    @staticmethod
    def query(where: ModelFilter | None, limit: ModelLimit | None) -> catalogue.ModelFilter:
        """The catalogue's filter, narrowed to the caller's model limit."""
        if where is None:
            return catalogue.ModelFilter(limit=limit)
        return catalogue.ModelFilter(
            task=where.task, tag=where.tag, search=where.search, limit=limit
        )


NODE_SCOPES = {"Model": Scope.READ, "ModelVersion": Scope.READ, "Prediction": Scope.AUDIT}


async def _node(info: Info, global_id: str, *, expected: str | None = None) -> Node | None:
    """The object behind a global id, if the caller's key has the scope its type needs."""
    type_name, key = from_global_id(global_id)
    if type_name not in NODE_SCOPES or expected not in (None, type_name):
        return None
    scope = NODE_SCOPES[type_name]
    if scope not in info.context.scopes:
        raise ClientError(
            f"A {type_name} needs an API key with the `{scope}` scope.",
            ErrorCode.FORBIDDEN,
            requiredScope=str(scope),
        )
    loaders = info.context.loaders
    if type_name == "Model":
        model = await loaders.model_by_id.load(key)
        return ModelType.from_row(model) if model else None
    if type_name == "ModelVersion":
        version = await loaders.version_by_id.load(key)
        return ModelVersionType.from_version(version) if version else None
    prediction = await loaders.prediction_by_id.load(key)
    return PredictionType.from_row(prediction) if prediction else None


@strawberry.type
class Query:
    @strawberry.field(
        description="Any object by its global id; null when it does not exist. Models and "
        "versions need the `read` scope, predictions `audit`."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _node(info, id)

    @strawberry.field(
        description="Alert rules with their states, oldest first.", permission_classes=[CanRead]
    )
    async def alert_rules(self, info: Info) -> list[AlertRuleType]:
        rules = await info.context.dependencies.alert_rules.rules(info.context.model_limit)
        return [AlertRuleType.of(row) for row in rules]

    @strawberry.field(description="Models ordered by name.", permission_classes=[CanRead])
    async def models(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: ModelFilter | None = None,
    ) -> Connection[ModelType]:
        where = ModelFilter.query(filter, info.context.model_limit)
        page = await model_page(info, first, after, where)
        return Connection.of(page, ModelType.from_row)

    @strawberry.field(
        description="A model by name; null when unknown.", permission_classes=[CanRead]
    )
    async def model(self, info: Info, name: str) -> ModelType | None:
        row = await info.context.loaders.model_by_name.load(name)
        return ModelType.from_row(row) if row else None

    @strawberry.field(
        description="A version by number and/or alias; neither: the model's default version.",
        permission_classes=[CanRead],
    )
    async def model_version(
        self, info: Info, model: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersionType | None:
        model_row = await info.context.loaders.model_by_name.load(model)
        found = await select_version(info, model_row.id, version, alias) if model_row else None
        return ModelVersionType.from_version(found) if found else None

    @strawberry.field(
        description="Stored predictions, newest first.", permission_classes=[CanAudit]
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilter | None = None,
    ) -> Connection[PredictionType]:
        query = PredictionFilter.query(filter, limit=info.context.model_limit)
        page = await prediction_page(info, first, after, query)
        return Connection.of(page, PredictionType.from_row)

    @strawberry.field(
        description="A prediction job by id; null when unknown.", permission_classes=[CanRead]
    )
    async def prediction_job(self, info: Info, id: strawberry.ID) -> PredictionJob | None:
        job = await info.context.dependencies.jobs.get(job_id(id), info.context.model_limit)
        return PredictionJob.of(job) if job else None

    @strawberry.field(
        description="A stored prediction by id; null when unknown.", permission_classes=[CanAudit]
    )
    async def prediction(self, info: Info, id: strawberry.ID) -> PredictionType | None:
        found = await _node(info, id, expected="Prediction")
        return found if isinstance(found, PredictionType) else None

    @strawberry.field(
        description="Aggregates over the filtered predictions.", permission_classes=[CanAudit]
    )
    async def prediction_stats(
        self, info: Info, filter: PredictionFilter | None = None
    ) -> PredictionStatsType:
        return PredictionStatsType.of(
            PredictionFilter.query(filter, limit=info.context.model_limit),
            info,
        )

    @strawberry.field(
        description="Re-score a sample of stored predictions of the model (the newest matching "
        "`filter`, at most 10000) with the `candidate` version and compare with the `baseline` "
        "version, or by default with what each prediction answered. With `source: SHADOW`, "
        "the candidate's answers stored while it ran in the shadow (`setShadow`) to the "
        "predictions matching `filter`, newest first, beside what each was answered (after a "
        "large prediction job, a window or a caller keeps the comparison on live traffic). "
        "Stores nothing.",
        permission_classes=[CanAudit],
    )
    async def compare_versions(
        self,
        info: Info,
        model: str,
        candidate: VersionSelector,
        baseline: VersionSelector | None = None,
        filter: PredictionFilter | None = None,
        sample: int | None = 1000,
        comparison_source: Annotated[
            ComparisonSource, strawberry.argument(name="source")
        ] = ComparisonSource.REPLAY,
    ) -> VersionComparison:
        sample = 1000 if sample is None else sample
        if not 1 <= sample <= comparison.MAX_SAMPLE:
            raise ClientError(
                f"Argument `sample` must be 1 to {comparison.MAX_SAMPLE}, got {sample}.",
                ErrorCode.BAD_USER_INPUT,
                argument="sample",
            )
        request = comparison.ComparisonRequest(
            model=model,
            candidate=candidate.to_selector(),
            baseline=baseline.to_selector() if baseline else None,
            query=PredictionFilter.query(filter, limit=info.context.model_limit),
            sample=sample,
            source=comparison_source,
        )
        try:
            result = await info.context.dependencies.comparisons.compare(request)
        except UserInputError as error:
            problem = error.problems[0]
            raise ClientError(
                problem.message, ErrorCode.BAD_USER_INPUT, argument=".".join(problem.path)
            ) from None
        return VersionComparison.of(result)
