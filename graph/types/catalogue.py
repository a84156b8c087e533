"""Catalogue value types: signatures, datasets, training arguments and metrics."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from modelql.graph.types.enums import DataSplit, FeatureType
from modelql.models.metrics import PerformanceRecord
from modelql.services.catalogue import MetricRow


@strawberry.type(name="FeatureSpec", description="One input feature of a model's signature.")
class FeatureSpecType:
    name: str
    type: FeatureType
    required: bool
    description: str | None
    minimum: float | None = strawberry.field(description="Seen in training data.")
    maximum: float | None
    allowed_values: list[str] | None

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> FeatureSpecType:
        return cls(
            name=spec["name"],
            type=FeatureType(spec["type"]),
            required=spec.get("required", True),
            description=spec.get("description"),
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
            allowed_values=spec.get("allowed_values"),
        )


@strawberry.type(name="DatasetInfo")
class DatasetInfoType:
    name: str
    source: str | None
    num_train_samples: int | None
    num_test_samples: int | None

    @classmethod
    def from_json(cls, dataset: dict[str, Any]) -> DatasetInfoType:
        return cls(
            name=dataset["name"],
            source=dataset.get("source"),
            num_train_samples=dataset.get("num_train_samples"),
            num_test_samples=dataset.get("num_test_samples"),
        )


@strawberry.type(name="TrainingArgument")
class TrainingArgumentType:
    name: str
    value: JSON | None
    kind: str = strawberry.field(description='"HYPERPARAMETER" or "DATA".')


@strawberry.type(name="Metric")
class MetricType:
    name: str
    value: float


@strawberry.type(name="PerformanceSlice")
class PerformanceSliceType:
    split: DataSplit
    slice: str = strawberry.field(description='"overall", "class:<label>" or a named slice.')
    num_samples: int
    metrics: list[MetricType]

    @classmethod
    def of(cls, record: PerformanceRecord) -> PerformanceSliceType:
        return cls(
            split=DataSplit(record.split),
            slice=record.slice,
            num_samples=record.num_samples,
            metrics=[MetricType(name=name, value=value) for name, value in record.metrics.items()],
        )


def group_performance(rows: list[MetricRow]) -> list[PerformanceSliceType]:
    """Metric rows grouped by (split, slice), in the order they were registered."""
    slices: dict[tuple[str, str], PerformanceSliceType] = {}
    for row in rows:
        group = slices.get((row.split, row.slice))
        if group is None:
            group = PerformanceSliceType(
                split=DataSplit(row.split), slice=row.slice, num_samples=row.num_samples, metrics=[]
            )
            slices[(row.split, row.slice)] = group
        group.metrics.append(MetricType(name=row.metric, value=row.value))
    return list(slices.values())
