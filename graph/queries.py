"""The Query root: catalogue look-ups, audit pages and statistics."""

from __future__ import annotations

import strawberry

from graph.context import GraphContext
from graph.cursors import decode_cursor, encode_cursor
from graph.errors import ClientError, ErrorCode
from graph.permissions import CanAudit, CanRead
from graph.types.catalogue import (
    ModelConnection,
    ModelEdge,
    ModelType,
    ModelVersionType,
    select_version,
)
from graph.types.enums import ModelTask
from graph.types.node import Node, from_global_id
from graph.types.pagination import PageInfo
from graph.types.predictions import (
    PredictionConnection,
    PredictionFilter,
    PredictionStats,
    PredictionType,
    prediction_page,
)
from services import audit, catalogue
from services.api_keys import Scope

Info = strawberry.Info[GraphContext, None]
MODEL_CURSOR = "model"


@strawberry.input(description="Narrows the model list; every field given must hold.")
class ModelFilter:
    task: ModelTask | None = None
    tag: str | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name or description."
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
        return ModelVersionType.from_row(version) if version else None
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

    @strawberry.field(description="Models ordered by name.", permission_classes=[CanRead])
    async def models(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: ModelFilter | None = None,
    ) -> ModelConnection:
        size = info.context.limits.page_size(first, default=20)
        after_name = (
            decode_cursor(MODEL_CURSOR, after, types=(str,))[0] if after is not None else None
        )
        where = catalogue.ModelFilter(
            task=filter.task.value if filter and filter.task else None,
            tag=filter.tag if filter else None,
            search=filter.search if filter else None,
        )
        rows = await info.context.db.run(
            lambda session: catalogue.list_models(
                session, limit=size + 1, after_name=after_name, where=where
            )
        )
        edges = [
            ModelEdge(cursor=encode_cursor(MODEL_CURSOR, row.name), node=ModelType.from_row(row))
            for row in rows[:size]
        ]
        return ModelConnection(
            edges=edges,
            page_info=PageInfo.of(
                [edge.cursor for edge in edges],
                has_next_page=len(rows) > size,
                has_previous_page=after is not None,
            ),
        )

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
        if model_row is None:
            return None
        row = await select_version(info, model_row.id, version, alias)
        return ModelVersionType.from_row(row) if row else None

    @strawberry.field(
        description="Stored predictions, newest first.", permission_classes=[CanAudit]
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilter | None = None,
    ) -> PredictionConnection:
        return await prediction_page(info, first, after, filter)

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
    ) -> PredictionStats:
        query = (filter or PredictionFilter()).to_query()
        statistics = await info.context.db.run(
            lambda session: audit.prediction_statistics(session, query)
        )
        return PredictionStats.of(statistics)
