"""Catalogue types: models, versions, aliases, signatures, training arguments and metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from graph.context import GraphContext
from graph.cursors import decode_cursor, encode_cursor
from graph.permissions import CanAudit
from graph.types.enums import DataSplit, FeatureType, ModelTask
from graph.types.node import Node, to_global_id
from graph.types.pagination import PageInfo
from persistence import tables
from services.catalogue import MetricRow

if TYPE_CHECKING:
    from graph.types.predictions import PredictionConnection, PredictionFilter

Info = strawberry.Info[GraphContext, None]
PredictionConnectionRef = Annotated[
    "PredictionConnection", strawberry.lazy("graph.types.predictions")
]
PredictionFilterRef = Annotated["PredictionFilter", strawberry.lazy("graph.types.predictions")]
VERSION_CURSOR = "version"


async def select_version(
    info: Info, model_id: uuid.UUID, number: int | None, alias: str | None
) -> tables.ModelVersion | None:
    """The version named by number and/or alias (both must agree), else the default version."""
    loaders = info.context.loaders
    if alias is not None:
        version = await loaders.version_by_alias.load((model_id, alias))
        return version if version is None or number in (None, version.number) else None
    if number is not None:
        return await loaders.version_by_number.load((model_id, number))
    return await loaders.default_version.load(model_id)


@strawberry.type(name="Model", description="A named model and its immutable versions.")
class ModelType(Node):
    id: strawberry.ID
    name: str
    description: str | None
    task: ModelTask
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    key: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: tables.Model) -> ModelType:
        return cls(
            id=to_global_id("Model", row.id),
            key=row.id,
            name=row.name,
            description=row.description,
            task=ModelTask(row.task),
            tags=list(row.tags),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="Versions, newest first.")
    async def versions(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> ModelVersionConnection:
        size = info.context.limits.page_size(first, default=20)
        before = (
            decode_cursor(VERSION_CURSOR, after, types=(int,))[0] if after is not None else None
        )
        rows = await info.context.loaders.versions_page.load((self.key, size + 1, before))
        return ModelVersionConnection.of(rows, size=size, has_previous_page=after is not None)

    @strawberry.field(description="A version by number or alias; neither: the default version.")
    async def version(
        self, info: Info, number: int | None = None, alias: str | None = None
    ) -> ModelVersionType | None:
        row = await select_version(info, self.key, number, alias)
        return ModelVersionType.from_row(row) if row else None

    @strawberry.field(description='The version aliased "production", else the newest version.')
    async def default_version(self, info: Info) -> ModelVersionType | None:
        row = await info.context.loaders.default_version.load(self.key)
        return ModelVersionType.from_row(row) if row else None

    @strawberry.field
    async def aliases(self, info: Info) -> list[ModelAliasType]:
        rows = await info.context.loaders.aliases_by_model.load(self.key)
        return [ModelAliasType(alias=row.alias, version_id=row.version_id) for row in rows]

    @strawberry.field(
        description="Every move of this model's aliases, newest first: which version an alias "
        "such as `production` pointed at, when and by whom."
    )
    async def alias_history(self, info: Info, alias: str | None = None) -> list[AliasChange]:
        events = await info.context.loaders.alias_events_by_model.load(self.key)
        return [AliasChange.from_row(event) for event in events if alias in (None, event.alias)]

    @strawberry.field(
        description="Predictions made by any version of this model, newest first.",
        permission_classes=[CanAudit],
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilterRef | None = None,
    ) -> PredictionConnectionRef:
        from graph.types.predictions import prediction_page

        return await prediction_page(info, first, after, filter, model_id=self.key)


@strawberry.type(name="ModelAlias")
class ModelAliasType:
    alias: str
    version_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def version(self, info: Info) -> ModelVersionType:
        row = await info.context.loaders.version_by_id.load(self.version_id)
        assert row is not None, "an alias always points at an existing version"
        return ModelVersionType.from_row(row)


@strawberry.type(description="One move of an alias; a null version means none (set or removed).")
class AliasChange:
    alias: str
    changed_at: datetime
    changed_by: str | None
    from_version_id: strawberry.Private[uuid.UUID | None]
    to_version_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: tables.AliasEvent) -> AliasChange:
        return cls(
            alias=row.alias,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
            from_version_id=row.from_version_id,
            to_version_id=row.to_version_id,
        )

    @strawberry.field
    async def from_version(self, info: Info) -> ModelVersionType | None:
        return await _version_or_none(info, self.from_version_id)

    @strawberry.field
    async def to_version(self, info: Info) -> ModelVersionType | None:
        return await _version_or_none(info, self.to_version_id)


async def _version_or_none(info: Info, version_id: uuid.UUID | None) -> ModelVersionType | None:
    row = await info.context.loaders.version_by_id.load(version_id) if version_id else None
    return ModelVersionType.from_row(row) if row else None


@strawberry.type(description="One input feature of a model's signature.")
class FeatureSpec:
    name: str
    type: FeatureType
    required: bool
    description: str | None
    minimum: float | None = strawberry.field(description="Seen in training data.")
    maximum: float | None
    allowed_values: list[str] | None

    @classmethod
    def from_json(cls, spec: dict) -> FeatureSpec:
        return cls(
            name=spec["name"],
            type=FeatureType(spec["type"]),
            required=spec.get("required", True),
            description=spec.get("description"),
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
            allowed_values=spec.get("allowed_values"),
        )


@strawberry.type
class DatasetInfo:
    name: str
    source: str | None
    num_train_samples: int | None
    num_test_samples: int | None


@strawberry.type
class TrainingArgument:
    name: str
    value: JSON | None
    kind: str = strawberry.field(description='"HYPERPARAMETER" or "DATA".')


@strawberry.type
class Metric:
    name: str
    value: float


@strawberry.type
class PerformanceSlice:
    split: DataSplit
    slice: str = strawberry.field(description='"overall", "class:<label>" or a named slice.')
    num_samples: int
    metrics: list[Metric]


def group_performance(rows: list[MetricRow]) -> list[PerformanceSlice]:
    """Metric rows grouped by (split, slice), in the order they were registered."""
    slices: dict[tuple[str, str], PerformanceSlice] = {}
    for row in rows:
        group = slices.get((row.split, row.slice))
        if group is None:
            group = PerformanceSlice(
                split=DataSplit(row.split), slice=row.slice, num_samples=row.num_samples, metrics=[]
            )
            slices[(row.split, row.slice)] = group
        group.metrics.append(Metric(name=row.metric, value=row.value))
    return list(slices.values())


@strawberry.type(name="ModelVersion", description="An immutable, registered artifact of a model.")
class ModelVersionType(Node):
    id: strawberry.ID
    number: int
    description: str | None
    algorithm: str
    framework: str
    framework_version: str
    artifact_sha256: str
    created_at: datetime
    trained_at: datetime | None
    labels: list[str] | None = strawberry.field(description="Classes; null for regression.")
    row: strawberry.Private[tables.ModelVersion]

    @classmethod
    def from_row(cls, row: tables.ModelVersion) -> ModelVersionType:
        return cls(
            id=to_global_id("ModelVersion", row.id),
            row=row,
            number=row.number,
            description=row.description,
            algorithm=row.algorithm,
            framework=row.framework,
            framework_version=row.framework_version,
            artifact_sha256=row.artifact_sha256,
            created_at=row.created_at,
            trained_at=row.trained_at,
            labels=list(row.labels) if row.labels is not None else None,
        )

    @strawberry.field(description="The signature, in model order.")
    def input_schema(self) -> list[FeatureSpec]:
        return [FeatureSpec.from_json(spec) for spec in self.row.input_schema]

    @strawberry.field
    def dataset(self) -> DatasetInfo | None:
        dataset = self.row.dataset
        if not dataset:
            return None
        return DatasetInfo(
            name=dataset["name"],
            source=dataset.get("source"),
            num_train_samples=dataset.get("num_train_samples"),
            num_test_samples=dataset.get("num_test_samples"),
        )

    @strawberry.field
    async def model(self, info: Info) -> ModelType:
        row = await info.context.loaders.model_by_id.load(self.row.model_id)
        assert row is not None, "a version always belongs to an existing model"
        return ModelType.from_row(row)

    @strawberry.field
    async def aliases(self, info: Info) -> list[str]:
        return await info.context.loaders.alias_names_by_version.load(self.row.id)

    @strawberry.field(description="Hyperparameters and data parameters, by name.")
    async def training_arguments(self, info: Info) -> list[TrainingArgument]:
        rows = await info.context.loaders.training_arguments.load(self.row.id)
        return [TrainingArgument(name=row.name, value=row.value, kind=row.kind) for row in rows]

    @strawberry.field(description="One training argument; null when unknown.")
    async def training_argument(self, info: Info, name: str) -> TrainingArgument | None:
        arguments = await self.training_arguments(info)
        return next((argument for argument in arguments if argument.name == name), None)

    @strawberry.field(description="Measured performance, optionally of one split and/or slice.")
    async def performance(
        self, info: Info, split: DataSplit | None = None, slice: str | None = None
    ) -> list[PerformanceSlice]:
        groups = group_performance(await info.context.loaders.metrics.load(self.row.id))
        return [
            group
            for group in groups
            if (split is None or group.split == split) and (slice is None or group.slice == slice)
        ]

    @strawberry.field(description="One metric value; null when it was not measured.")
    async def metric(
        self,
        info: Info,
        name: str,
        split: DataSplit | None = DataSplit.TEST,
        slice: str | None = "overall",
    ) -> float | None:
        split = split or DataSplit.TEST
        slice = slice or "overall"
        rows = await info.context.loaders.metrics.load(self.row.id)
        return next(
            (
                row.value
                for row in rows
                if row.metric == name and row.split == split.value and row.slice == slice
            ),
            None,
        )

    @strawberry.field(
        description="Predictions made by this version, newest first.",
        permission_classes=[CanAudit],
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilterRef | None = None,
    ) -> PredictionConnectionRef:
        from graph.types.predictions import prediction_page

        return await prediction_page(info, first, after, filter, version_id=self.row.id)


@strawberry.type(name="ModelEdge")
class ModelEdge:
    cursor: str
    node: ModelType


@strawberry.type(name="ModelConnection")
class ModelConnection:
    edges: list[ModelEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[ModelType]:
        return [edge.node for edge in self.edges]


@strawberry.type(name="ModelVersionEdge")
class ModelVersionEdge:
    cursor: str
    node: ModelVersionType


@strawberry.type(name="ModelVersionConnection")
class ModelVersionConnection:
    edges: list[ModelVersionEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[ModelVersionType]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(
        cls, rows: list[tables.ModelVersion], *, size: int, has_previous_page: bool
    ) -> ModelVersionConnection:
        edges = [
            ModelVersionEdge(
                cursor=encode_cursor(VERSION_CURSOR, row.number),
                node=ModelVersionType.from_row(row),
            )
            for row in rows[:size]
        ]
        return cls(
            edges=edges,
            page_info=PageInfo.of(
                [edge.cursor for edge in edges],
                has_next_page=len(rows) > size,
                has_previous_page=has_previous_page,
            ),
        )
