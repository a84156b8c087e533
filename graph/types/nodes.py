"""The node types, which refer to one another: models, their versions and aliases, and the
predictions versions made. Their lists are pages from `graph.paging`."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry
from cachetools import LRUCache
from strawberry.permission import BasePermission
from strawberry.scalars import JSON

from modelql.graph.context import GraphContext
from modelql.graph.errors import bad_input
from modelql.graph.paging import prediction_page, select_version, version_page
from modelql.graph.permissions import CanAudit, CanRead
from modelql.graph.types.catalogue import (
    DatasetInfoType,
    FeatureSpecType,
    PerformanceSliceType,
    TrainingArgumentType,
    group_performance,
)
from modelql.graph.types.connection import Connection
from modelql.graph.types.drift import DriftReportType
from modelql.graph.types.enums import DataSplit, ModelTask, RoutingReason
from modelql.graph.types.estimation import EstimatedPerformanceType
from modelql.graph.types.node import Node, to_global_id, to_global_ids
from modelql.graph.types.paired import PairedTestType
from modelql.graph.types.predictions import (
    MAX_GROUPS,
    ClassProbabilityType,
    Interval,
    OutcomeType,
    PredictionFilter,
)
from modelql.models import signature_changes
from modelql.persistence import tables
from modelql.services import prediction_audit
from modelql.services.api_keys import Scope
from modelql.services.catalogue import Version, version_at
from modelql.services.estimated_performance import Estimate, EstimateRequest, Window
from modelql.services.outcomes import OutcomeRow
from modelql.services.predictions import StoredBatch

# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
SignatureChangeKind = signature_changes.SignatureChangeKind
strawberry.enum(SignatureChangeKind)

Info = strawberry.Info[GraphContext, None]

VERSION_VIEWS_KEPT = 4096
_signatures: LRUCache[uuid.UUID, tuple[FeatureSpecType, ...]] = LRUCache(VERSION_VIEWS_KEPT)
_version_views: LRUCache[uuid.UUID, ModelVersionType] = LRUCache(VERSION_VIEWS_KEPT)
_offline_performance: LRUCache[uuid.UUID, tuple[PerformanceSliceType, ...]] = LRUCache(
    VERSION_VIEWS_KEPT
)
"""A version's signature and offline metrics as GraphQL values, made once: versions never
change, and these values are only read while answers are completed."""


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
    ) -> Connection[ModelVersionType]:
        page = await version_page(info, self.key, first, after)
        return Connection.of(page, ModelVersionType.from_version)

    @strawberry.field(description="A version by number or alias; neither: the default version.")
    async def version(
        self, info: Info, number: int | None = None, alias: str | None = None
    ) -> ModelVersionType | None:
        version = await select_version(info, self.key, number, alias)
        return ModelVersionType.from_version(version) if version else None

    @strawberry.field(description='The version aliased "production", else the newest version.')
    async def default_version(self, info: Info) -> ModelVersionType | None:
        version = await select_version(info, self.key, None, None)
        return ModelVersionType.from_version(version) if version else None

    @strawberry.field
    async def aliases(self, info: Info) -> list[ModelAliasType]:
        route = await info.context.loaders.route_by_model_id.load(self.key)
        if route is None:
            return []
        return [
            ModelAliasType(alias=alias, version_id=version_id)
            for alias, version_id in route.aliases.items()
        ]

    @strawberry.field(
        description="Every move of this model's aliases, newest first: which version an alias "
        "such as `production` pointed at, when and by whom."
    )
    async def alias_history(self, info: Info, alias: str | None = None) -> list[AliasChangeType]:
        events = await info.context.loaders.alias_events_by_model.load(self.key)
        return [AliasChangeType.from_row(event) for event in events if alias in (None, event.alias)]

    @strawberry.field(
        description="The version `alias` named at the moment `at`, by the alias history; null "
        "before the alias was first set or while it was removed."
    )
    async def version_at(self, info: Info, alias: str, at: datetime) -> ModelVersionType | None:
        events = await info.context.loaders.alias_events_by_model.load(self.key)
        return await _version_or_none(info, version_at(events, alias, at))

    @strawberry.field(
        description="The traffic split: requests naming neither version nor alias are drawn "
        "by these weights (relative; each version's share is its weight over their sum), "
        "sticky per routing key. Empty: no split, the default version answers."
    )
    async def traffic_split(self, info: Info) -> list[TrafficShareType]:
        route = await info.context.loaders.route_by_model_id.load(self.key)
        return [
            TrafficShareType(version_id=version_id, weight=weight)
            for version_id, weight in (route.split if route else ())
        ]

    @strawberry.field(description="Every change of the traffic split, newest first.")
    async def traffic_split_history(self, info: Info) -> list[TrafficSplitChangeType]:
        events = await info.context.loaders.split_events_by_model.load(self.key)
        return [TrafficSplitChangeType.from_row(event) for event in events]

    @strawberry.field(
        description="The versions scoring a sampled share of live requests in the shadow "
        "(`setShadow`), in version order; empty: none."
    )
    async def shadow_versions(self, info: Info) -> list[ModelVersionType]:
        route = await info.context.loaders.route_by_model_id.load(self.key)
        return [await _existing_version(info, v) for v in (route.shadows if route else ())]

    @strawberry.field(description="The share of live requests the shadows score; null: none.")
    async def shadow_sample(self, info: Info) -> float | None:
        route = await info.context.loaders.route_by_model_id.load(self.key)
        return route.shadow_sample if route and route.shadows else None

    @strawberry.field(description="Every change of the shadow versions, newest first.")
    async def shadow_history(self, info: Info) -> list[ShadowChangeType]:
        events = await info.context.loaders.shadow_events_by_model.load(self.key)
        return [
            ShadowChangeType(
                versions=list(event.versions),
                sample=event.sample,
                changed_at=event.changed_at,
                changed_by=event.changed_by,
            )
            for event in events
        ]

    @strawberry.field(
        description="Predictions made by any version of this model, newest first.",
        permission_classes=[CanAudit],
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilter | None = None,
    ) -> Connection[PredictionType]:
        query = PredictionFilter.query(filter, model_id=self.key)
        return Connection.of(
            await prediction_page(info, first, after, query), PredictionType.from_row
        )


@strawberry.type(name="ModelAlias")
class ModelAliasType:
    alias: str
    version_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def version(self, info: Info) -> ModelVersionType:
        return await _existing_version(info, self.version_id)


@strawberry.type(name="TrafficShare", description="One version's weight in a traffic split.")
class TrafficShareType:
    weight: float
    version_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def version(self, info: Info) -> ModelVersionType:
        return await _existing_version(info, self.version_id)


@strawberry.type(name="TrafficSplitShare", description="A share as it was set: number, weight.")
class TrafficSplitShareType:
    version: int
    weight: float


@strawberry.type(
    name="TrafficSplitChange",
    description="One change of a traffic split; empty shares: the split was removed.",
)
class TrafficSplitChangeType:
    shares: list[TrafficSplitShareType]
    changed_at: datetime
    changed_by: str | None

    @classmethod
    def from_row(cls, row: tables.TrafficSplitEvent) -> TrafficSplitChangeType:
        return cls(
            shares=[
                TrafficSplitShareType(version=share["version"], weight=share["weight"])
                for share in row.shares
            ],
            changed_at=row.changed_at,
            changed_by=row.changed_by,
        )


@strawberry.type(
    name="SignatureChange", description="One way one feature changed between two signatures."
)
class SignatureChangeType:
    feature: str
    kind: SignatureChangeKind
    before: FeatureSpecType | None = strawberry.field(description="Null: the feature is new.")
    after: FeatureSpecType | None = strawberry.field(description="Null: it was removed.")

    @classmethod
    def of(cls, change: signature_changes.SignatureChange) -> SignatureChangeType:
        return cls(
            feature=change.feature,
            kind=change.kind,
            before=FeatureSpecType.from_json(change.before.to_json()) if change.before else None,
            after=FeatureSpecType.from_json(change.after.to_json()) if change.after else None,
        )


@strawberry.type(
    name="ShadowChange",
    description="One change of a model's shadow versions; empty versions: they were cleared.",
)
class ShadowChangeType:
    versions: list[int]
    sample: float | None
    changed_at: datetime
    changed_by: str | None


@strawberry.type(
    name="ComparisonSummary",
    description="What an alias move was based on: the comparison run by `setAlias(basedOn)` "
    "with the version moved to as the candidate, as it stood then.",
)
class ComparisonSummaryType:
    source: str = strawberry.field(description="`SHADOW` or `REPLAY`.")
    candidate: int
    baseline: int | None = strawberry.field(description="Null: what requests were answered.")
    compared: int
    skipped: int
    agreement: float | None
    mean_absolute_difference: float | None
    paired: PairedTestType | None

    @classmethod
    def of(cls, kept: dict[str, Any]) -> ComparisonSummaryType:
        paired = kept.get("paired")
        return cls(
            source=kept["source"],
            candidate=kept["candidate"],
            baseline=kept.get("baseline"),
            compared=kept["compared"],
            skipped=kept["skipped"],
            agreement=kept.get("agreement"),
            mean_absolute_difference=kept.get("meanAbsoluteDifference"),
            paired=PairedTestType.from_summary(paired) if paired else None,
        )


@strawberry.type(
    name="AliasChange",
    description="One move of an alias; a null version means none (set or removed).",
)
class AliasChangeType:
    alias: str
    changed_at: datetime
    changed_by: str | None
    based_on: ComparisonSummaryType | None = strawberry.field(
        description="The comparison the move was based on (`setAlias(input: {basedOn})`); "
        "null when none was asked for."
    )
    from_version_id: strawberry.Private[uuid.UUID | None]
    to_version_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: tables.AliasEvent) -> AliasChangeType:
        return cls(
            alias=row.alias,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
            based_on=ComparisonSummaryType.of(row.based_on) if row.based_on else None,
            from_version_id=row.from_version_id,
            to_version_id=row.to_version_id,
        )

    @strawberry.field
    async def from_version(self, info: Info) -> ModelVersionType | None:
        return await _version_or_none(info, self.from_version_id)

    @strawberry.field
    async def to_version(self, info: Info) -> ModelVersionType | None:
        return await _version_or_none(info, self.to_version_id)


async def _existing_version(info: Info, version_id: uuid.UUID) -> ModelVersionType:
    """A version an alias or a split points at (foreign keys guarantee it exists)."""
    version = await info.context.loaders.version_by_id.load(version_id)
    assert version is not None, "aliases and splits point at existing versions"
    return ModelVersionType.from_version(version)


async def _version_or_none(info: Info, version_id: uuid.UUID | None) -> ModelVersionType | None:
    version = await info.context.loaders.version_by_id.load(version_id) if version_id else None
    return ModelVersionType.from_version(version) if version else None


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
    version: strawberry.Private[Version]

    @classmethod
    def from_version(cls, version: Version) -> ModelVersionType:
        """Made once per version and kept (versions never change): an audit page asks for its
        version once per prediction."""
        view = _version_views.get(version.id)
        if view is None:
            view = _version_views[version.id] = cls._made_from(version)
        return view

    @classmethod
    def _made_from(cls, version: Version) -> ModelVersionType:
        return cls(
            id=to_global_id("ModelVersion", version.id),
            version=version,
            number=version.number,
            description=version.description,
            algorithm=version.algorithm,
            framework=version.framework,
            framework_version=version.framework_version,
            artifact_sha256=version.artifact_sha256,
            created_at=version.created_at,
            trained_at=version.trained_at,
            labels=list(version.labels) if version.labels is not None else None,
        )

    @strawberry.field(description="The signature, in model order.")
    def input_schema(self) -> list[FeatureSpecType]:
        specs = _signatures.get(self.version.id)
        if specs is None:
            specs = tuple(FeatureSpecType.from_json(spec) for spec in self.version.input_schema)
            _signatures[self.version.id] = specs
        return list(specs)

    @strawberry.field
    def dataset(self) -> DatasetInfoType | None:
        dataset = self.version.dataset
        return DatasetInfoType.from_json(dataset) if dataset else None

    @strawberry.field(permission_classes=[CanRead])
    async def model(self, info: Info) -> ModelType:
        row = await info.context.loaders.model_by_id.load(self.version.model_id)
        assert row is not None, "a version always belongs to an existing model"
        return ModelType.from_row(row)

    @strawberry.field
    async def aliases(self, info: Info) -> list[str]:
        route = await info.context.loaders.route_by_model_id.load(self.version.model_id)
        return route.aliases_of(self.version.id) if route else []

    @strawberry.field(description="Hyperparameters and data parameters, by name.")
    async def training_arguments(self, info: Info) -> list[TrainingArgumentType]:
        rows = await info.context.loaders.training_arguments.load(self.version.id)
        return [TrainingArgumentType(name=row.name, value=row.value, kind=row.kind) for row in rows]

    @strawberry.field(description="One training argument; null when unknown.")
    async def training_argument(self, info: Info, name: str) -> TrainingArgumentType | None:
        arguments = await self.training_arguments(info)
        return next((argument for argument in arguments if argument.name == name), None)

    @strawberry.field(
        description="Measured performance, optionally of one split and/or slice. Without a "
        "split: the offline splits (TRAIN, VALIDATION, TEST). LIVE is computed from this "
        "version's stored predictions that have an outcome, optionally in a window on their "
        "createdAt (`since` inclusive, `until` exclusive; both ignored for offline splits); its "
        "numSamples is the number of labelled predictions, and it is absent without any. "
        "ESTIMATED (classifiers with probabilities) is estimated before outcomes arrive from "
        "the window's predictions, calibrated on the most recent labelled ones (see "
        "`estimatedPerformance`): overall and per class, numSamples the predictions estimated; "
        "absent when it cannot be estimated; a regressor is an error."
    )
    async def performance(
        self,
        info: Info,
        split: DataSplit | None = None,
        slice: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[PerformanceSliceType]:
        if split == DataSplit.LIVE:
            named = slice is None or not (slice == "overall" or slice.startswith("class:"))
            key = (self.version.id, since, until, named)
            records = await info.context.loaders.live_performance.load(key)
            return [
                PerformanceSliceType.of(record)
                for record in records
                if slice is None or record.slice == slice
            ]
        if split == DataSplit.ESTIMATED:
            found = await self._estimate(info, EstimateRequest(window=Window(since, until)))
            return [
                PerformanceSliceType.of(record)
                for record in found.records
                if slice is None or record.slice == slice
            ]
        groups = _offline_performance.get(self.version.id)
        if groups is None:
            rows = await info.context.loaders.metrics.load(self.version.id)
            groups = _offline_performance[self.version.id] = tuple(group_performance(rows))
        return [
            group
            for group in groups
            if (split is None or group.split == split) and (slice is None or group.slice == slice)
        ]

    @strawberry.field(
        description="One metric value; null when it was not measured (LIVE: when no "
        "prediction in the window has an outcome; ESTIMATED: when it cannot be estimated, "
        "`estimatedPerformance` says why). `since`/`until` as in `performance`."
    )
    async def metric(
        self,
        info: Info,
        name: str,
        split: DataSplit | None = DataSplit.TEST,
        slice: str | None = "overall",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> float | None:
        split = split or DataSplit.TEST
        slice = slice or "overall"
        if split in (DataSplit.LIVE, DataSplit.ESTIMATED):
            found = await self.performance(info, split, slice, since, until)
            return next((m.value for group in found for m in group.metrics if m.name == name), None)
        rows = await info.context.loaders.metrics.load(self.version.id)
        return next(
            (
                row.value
                for row in rows
                if row.metric == name and row.split == split and row.slice == slice
            ),
            None,
        )

    async def _estimate(self, info: Info, request: EstimateRequest) -> Estimate:
        if self.version.labels is None:
            raise bad_input(
                f"Version {self.version.number} is a regressor: performance is estimated for "
                "classifiers with probabilities only.",
                "split",
            )
        return await info.context.loaders.estimates.load((self.version.id, request))

    @strawberry.field(
        description="Performance estimated before outcomes arrive (CBPE), over the predictions "
        "created in [since, until), overall and per period of `interval`, with the realised "
        "metrics and their gap where outcomes exist. Calibrated on the most recent labelled "
        "predictions (at most MODELQL_ESTIMATION_REFERENCE_SIZE) created in [referenceSince, "
        "referenceUntil): end the reference before the window for the gap to flag concept "
        "drift. Unavailable (with the reason) for regressors, versions without probabilities, "
        "or fewer labelled predictions than MODELQL_ESTIMATION_MIN_REFERENCE."
    )
    async def estimated_performance(
        self,
        info: Info,
        interval: Interval | None = prediction_audit.Interval.DAY,
        since: datetime | None = None,
        until: datetime | None = None,
        reference_since: datetime | None = None,
        reference_until: datetime | None = None,
        first: int | None = 100,
    ) -> EstimatedPerformanceType:
        limit = info.context.limits.page_size(first, default=100, maximum=MAX_GROUPS)
        request = EstimateRequest(
            window=Window(since, until),
            reference=Window(reference_since, reference_until),
            interval=prediction_audit.Interval(interval or "DAY"),
        )
        found = await info.context.loaders.estimates.load((self.version.id, request))
        return EstimatedPerformanceType.of(found, limit)

    @strawberry.field(
        description="How the signature changed since version `from` of the same model: "
        "features added, removed, retyped, or with changed range, categories or required flag."
    )
    async def signature_changes(
        self, info: Info, from_: Annotated[int, strawberry.argument(name="from")]
    ) -> list[SignatureChangeType]:
        route = await info.context.loaders.route_by_model_id.load(self.version.model_id)
        earlier_id = route.numbers.get(from_) if route else None
        earlier = await info.context.loaders.version_by_id.load(earlier_id) if earlier_id else None
        if earlier is None:
            raise bad_input(f"This model has no version {from_}.", "from")
        changes = signature_changes.signature_changes(earlier.signature, self.version.signature)
        return [SignatureChangeType.of(change) for change in changes]

    @strawberry.field(
        description="Live inputs and outputs of this version in a window on createdAt (`since` "
        "inclusive, `until` exclusive) against its training data's profile."
    )
    async def input_drift(
        self, info: Info, since: datetime | None = None, until: datetime | None = None
    ) -> DriftReportType:
        report = await info.context.loaders.input_drift.load((self.version.id, since, until))
        return DriftReportType.of(report)

    @strawberry.field(
        description="Predictions made by this version, newest first.",
        permission_classes=[CanAudit],
    )
    async def predictions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: PredictionFilter | None = None,
    ) -> Connection[PredictionType]:
        query = PredictionFilter.query(filter, version_id=self.version.id)
        return Connection.of(
            await prediction_page(info, first, after, query), PredictionType.from_row
        )


class CanReadOrOwnPrediction(BasePermission):
    """The catalogue needs `read`, except the version that answered the caller's own new
    prediction, which is part of the answer to a `predict` key."""

    message = CanRead.message
    error_extensions = CanRead.error_extensions

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        scopes = info.context.scopes
        return Scope.READ in scopes or (source.created_by_this_request and Scope.PREDICT in scopes)


def _finite(number: float | None) -> float | None:
    """A stored number as the API shows it: a non-finite one (only an older database can hold
    one) reads as null instead of failing the page it is on."""
    return number if number is not None and math.isfinite(number) else None


def _finite_probabilities(items: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if items is None or all(_finite(item["probability"]) is not None for item in items):
        return items
    return None


def _class_probabilities(root: PredictionType) -> list[ClassProbabilityType] | None:
    """Built only when selected: a batch answer often asks for ids alone."""
    stored = _finite_probabilities(root.stored_probabilities)
    if stored is None:
        return None
    return [
        ClassProbabilityType(label=item["label"], probability=item["probability"])
        for item in stored
    ]


@strawberry.type(name="Prediction", description="One scored instance, exactly as it was scored.")
class PredictionType(Node):
    id: strawberry.ID
    inputs: JSON = strawberry.field(description="Exactly the features that were scored.")
    label: str | None
    value: float | None
    probabilities: list[ClassProbabilityType] | None = strawberry.field(
        resolver=_class_probabilities
    )
    confidence: float | None = strawberry.field(description="The highest probability.")
    latency_ms: float = strawberry.field(
        description="Inference time for this prediction (a batch's time divided by its size; "
        "a row the inference cache answered counts 0, averaged over its request)."
    )
    created_at: datetime = strawberry.field(
        description="Database time of the storing transaction; one request's predictions share it."
    )
    request_id: str
    caller: str | None
    idempotency_key: str | None
    routed_by: RoutingReason = strawberry.field(
        description="Why this version answered: the request named it (VERSION) or an alias "
        "(ALIAS), or neither and it was the default (DEFAULT) or drawn by the traffic split "
        "(SPLIT). Predictions stored before routing was recorded say DEFAULT."
    )
    key: strawberry.Private[uuid.UUID]
    version_id: strawberry.Private[uuid.UUID]
    created_by_this_request: strawberry.Private[bool]
    stored_probabilities: strawberry.Private[list[dict[str, Any]] | None]

    @classmethod
    def from_row(cls, row: Any, *, created_by_this_request: bool = False) -> PredictionType:
        """From a stored prediction: a table row, or what the prediction use case returns."""
        return cls(
            id=to_global_id("Prediction", row.id),
            key=row.id,
            version_id=row.model_version_id,
            inputs=row.inputs,
            label=row.label,
            value=_finite(row.value),
            stored_probabilities=row.probabilities,
            confidence=_finite(row.confidence),
            latency_ms=row.latency_ms,
            created_at=row.created_at,
            request_id=row.request_id,
            caller=row.caller,
            idempotency_key=row.idempotency_key,
            routed_by=row.routed_by
            if isinstance(row.routed_by, RoutingReason)
            else RoutingReason(row.routed_by),
            created_by_this_request=created_by_this_request,
        )

    @classmethod
    def from_batch(cls, batch: StoredBatch) -> list[PredictionType]:
        """What this request just stored, built from the batch's columns (its shared values
        converted once)."""
        rows = batch.rows
        routed_by = RoutingReason(rows.routed_by)
        return [
            cls(
                id=global_id,
                key=key,
                version_id=rows.model_version_id,
                inputs=inputs,
                label=label,
                value=_finite(value),
                stored_probabilities=probabilities,
                confidence=_finite(confidence),
                latency_ms=rows.latency_ms,
                created_at=batch.created_at,
                request_id=rows.request_id,
                caller=rows.caller,
                idempotency_key=rows.idempotency_key,
                routed_by=routed_by,
                created_by_this_request=True,
            )
            for global_id, key, inputs, label, value, probabilities, confidence in zip(
                to_global_ids("Prediction", rows.ids),
                rows.ids,
                rows.inputs,
                batch.column(rows.labels),
                batch.column(rows.values),
                batch.column(rows.probabilities),
                batch.column(rows.confidences),
                strict=True,
            )
        ]

    @strawberry.field(
        description="The exact version that produced this prediction.",
        permission_classes=[CanReadOrOwnPrediction],
    )
    async def model_version(self, info: Info) -> ModelVersionType:
        version = await info.context.loaders.version_by_id.load(self.version_id)
        assert version is not None, "a prediction always references an existing version"
        return ModelVersionType.from_version(version)

    @strawberry.field(
        description="The shadow versions' answers to this prediction's input (`setShadow`), "
        "stored after it was answered (a live request) or with it (a prediction job's row); "
        "empty while none scored it (or not sampled, or shed)."
    )
    async def shadows(self, info: Info) -> list[ShadowPredictionType]:
        rows = await info.context.loaders.shadows_by_prediction.load(self.key)
        return [ShadowPredictionType.from_row(row) for row in rows]

    @strawberry.field(description="The latest recorded truth; null when none was recorded.")
    async def outcome(self, info: Info) -> OutcomeType | None:
        latest = await self._latest_outcome(info)
        return OutcomeType.of(latest) if latest else None

    async def _latest_outcome(self, info: Info) -> OutcomeRow | None:
        history = await info.context.loaders.outcome_history.load(self.key)
        return next((row for row in history if row.latest), None)

    @strawberry.field(
        description="Every outcome recorded, oldest first; corrections are kept, the latest counts."
    )
    async def outcome_history(self, info: Info) -> list[OutcomeType]:
        history = await info.context.loaders.outcome_history.load(self.key)
        return [OutcomeType.of(row) for row in history]

    @strawberry.field(
        description="Classification: whether `label` equals the outcome's label; null without "
        "an outcome."
    )
    async def correct(self, info: Info) -> bool | None:
        outcome = await self._latest_outcome(info)
        if outcome is None or self.label is None:
            return None
        return self.label == outcome.label

    @strawberry.field(
        description="Regression: `value` minus the outcome's value; null without an outcome."
    )
    async def error(self, info: Info) -> float | None:
        outcome = await self._latest_outcome(info)
        if outcome is None or self.value is None or outcome.value is None:
            return None
        return self.value - outcome.value


@strawberry.type(
    name="ShadowPrediction",
    description="A shadow version's answer to a live prediction's input; kept apart from "
    "predictions (never in the audit, statistics or LIVE metrics).",
)
class ShadowPredictionType:
    id: strawberry.ID
    label: str | None
    value: float | None
    probabilities: list[ClassProbabilityType] | None
    confidence: float | None
    latency_ms: float = strawberry.field(description="Its share of the shadow's estimator call.")
    created_at: datetime
    refusal: str | None = strawberry.field(
        description="Why the shadow could not score the input (its signature or estimator "
        "refused it); the outputs are then null."
    )
    version_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: tables.ShadowPrediction) -> ShadowPredictionType:
        return cls(
            id=strawberry.ID(str(row.id)),
            label=row.label,
            value=_finite(row.value),
            probabilities=[
                ClassProbabilityType(label=item["label"], probability=item["probability"])
                for item in row.probabilities
            ]
            if row.probabilities is not None
            else None,
            confidence=_finite(row.confidence),
            latency_ms=row.latency_ms,
            created_at=row.created_at,
            refusal=row.refusal,
            version_id=row.model_version_id,
        )

    @strawberry.field(description="The shadow version that answered.")
    async def model_version(self, info: Info) -> ModelVersionType:
        return await _existing_version(info, self.version_id)
