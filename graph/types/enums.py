"""The shared vocabulary (`models.vocabulary`) as enums of the public schema."""

from __future__ import annotations

import strawberry

from modelql.models import vocabulary

ModelTask = strawberry.enum(vocabulary.Task, name="ModelTask")
DataSplit = strawberry.enum(vocabulary.DataSplit)
FeatureType = strawberry.enum(vocabulary.FeatureType)
RoutingReason = strawberry.enum(
    vocabulary.RoutingReason, description="Why a version answered a prediction request."
)
