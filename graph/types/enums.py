"""The shared vocabulary (`models.vocabulary`) as enums of the public schema: each name is the
enum itself (a type to mypy), registered with Strawberry by `strawberry.enum` (which returns it
unchanged)."""

from __future__ import annotations

import strawberry

from modelql.models import vocabulary

ModelTask = vocabulary.Task
strawberry.enum(ModelTask, name="ModelTask")
DataSplit = vocabulary.DataSplit
strawberry.enum(DataSplit)
FeatureType = vocabulary.FeatureType
strawberry.enum(FeatureType)
RoutingReason = vocabulary.RoutingReason
strawberry.enum(RoutingReason, description="Why a version answered a prediction request.")
