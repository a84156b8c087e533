"""Prediction types, the audit filter, pages and statistics."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph.context import GraphContext
from graph.cursors import decode_cursor, encode_cursor
from graph.errors import bad_input
from graph.permissions import CanRead
from graph.types.catalogue import ModelVersionType
from graph.types.node import Node, to_global_id
from graph.types.pagination import PageInfo
from persistence import tables
from services import audit

Info = strawberry.Info[GraphContext, None]
PREDICTION_CURSOR = "prediction"


@strawberry.type
class ClassProbability:
    label: str
    probability: float


@strawberry.type(name="Prediction", description="One scored instance, exactly as it was scored.")
class PredictionType(Node):
    id: strawberry.ID
    inputs: JSON = strawberry.field(description="Exactly the features that were scored.")
    label: str | None
    value: float | None
    probabilities: list[ClassProbability] | None
    confidence: float | None = strawberry.field(description="The highest probability.")
    latency_ms: float = strawberry.field(
        description="Inference time for this prediction (a batch's time divided by its size)."
    )
    created_at: datetime = strawberry.field(
        description="Database time of the storing transaction; one request's predictions share it."
    )
    request_id: str
    caller: str | None
    idempotency_key: str | None
    version_key: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: tables.Prediction) -> PredictionType:
        return cls(
            id=to_global_id("Prediction", row.id),
            version_key=row.model_version_id,
            inputs=row.inputs,
            label=row.label,
            value=row.value,
            probabilities=[
                ClassProbability(label=item["label"], probability=item["probability"])
                for item in row.probabilities
            ]
            if row.probabilities is not None
            else None,
            confidence=row.confidence,
            latency_ms=row.latency_ms,
            created_at=row.created_at,
            request_id=row.request_id,
            caller=row.caller,
            idempotency_key=row.idempotency_key,
        )

    @strawberry.field(
        description="The exact version that produced this prediction.",
        permission_classes=[CanRead],
    )
    async def model_version(self, info: Info) -> ModelVersionType:
        row = await info.context.loaders.version_by_id.load(self.version_key)
        assert row is not None, "a prediction always references an existing version"
        return ModelVersionType.from_row(row)


@strawberry.input(description="Narrows predictions; every field given must hold.")
class PredictionFilter:
    model: str | None = None
    version: int | None = strawberry.field(
        default=None, description="Version number; without `model`, that number of any model."
    )
    label: str | None = None
    caller: str | None = None
    request_id: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    min_confidence: float | None = None
    max_confidence: float | None = None

    def to_query(
        self, *, model_id: uuid.UUID | None = None, version_id: uuid.UUID | None = None
    ) -> audit.PredictionQuery:
        return audit.PredictionQuery(
            model=self.model,
            version=self.version,
            label=self.label,
            caller=self.caller,
            request_id=self.request_id,
            created_after=self.created_after,
            created_before=self.created_before,
            min_confidence=self.min_confidence,
            max_confidence=self.max_confidence,
            model_id=model_id,
            version_id=version_id,
        )


@strawberry.type
class PredictionEdge:
    cursor: str
    node: PredictionType


@strawberry.type
class PredictionConnection:
    edges: list[PredictionEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[PredictionType]:
        return [edge.node for edge in self.edges]


def _keyset(after: str) -> audit.Keyset:
    created_at, local_id = decode_cursor(PREDICTION_CURSOR, after, types=(str, str))
    try:
        return datetime.fromisoformat(created_at), uuid.UUID(local_id)
    except (TypeError, ValueError):
        raise bad_input(f"Argument `after` is not a valid cursor: {after!r}.", "after") from None


async def prediction_page(
    info: Info,
    first: int | None,
    after: str | None,
    where: PredictionFilter | None,
    *,
    model_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
) -> PredictionConnection:
    """One page of predictions, newest first, by keyset (created_at, id)."""
    size = info.context.limits.page_size(first, default=50)
    query = (where or PredictionFilter()).to_query(model_id=model_id, version_id=version_id)
    keyset = _keyset(after) if after is not None else None
    rows = await info.context.db.run(
        lambda session: audit.list_predictions(session, query, limit=size + 1, after=keyset)
    )
    edges = [
        PredictionEdge(
            cursor=encode_cursor(PREDICTION_CURSOR, row.created_at.isoformat(), str(row.id)),
            node=PredictionType.from_row(row),
        )
        for row in rows[:size]
    ]
    return PredictionConnection(
        edges=edges,
        page_info=PageInfo.of(
            [edge.cursor for edge in edges],
            has_next_page=len(rows) > size,
            has_previous_page=after is not None,
        ),
    )


@strawberry.type
class LabelCount:
    label: str
    count: int


@strawberry.type(description="Aggregates over the filtered predictions, computed in SQL.")
class PredictionStats:
    count: int
    label_counts: list[LabelCount] = strawberry.field(description="Most frequent first.")
    mean_latency_ms: float | None
    p95_latency_ms: float | None
    mean_value: float | None = strawberry.field(description="Regression models.")
    first_at: datetime | None
    last_at: datetime | None

    @classmethod
    def of(cls, statistics: audit.PredictionStatistics) -> PredictionStats:
        return cls(
            count=statistics.count,
            label_counts=[
                LabelCount(label=label, count=count) for label, count in statistics.label_counts
            ],
            mean_latency_ms=statistics.mean_latency_ms,
            p95_latency_ms=statistics.p95_latency_ms,
            mean_value=statistics.mean_value,
            first_at=statistics.first_at,
            last_at=statistics.last_at,
        )
