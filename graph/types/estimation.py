"""Estimated performance types: a classifier's metrics estimated before outcomes arrive
(CBPE), overall and per period, beside the realised metrics and the gap where outcomes exist."""

from __future__ import annotations

from datetime import datetime

import strawberry

from modelql.graph.types.catalogue import MetricType
from modelql.services import estimated_performance as estimation

# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
EstimationUnavailable = estimation.Unavailable
strawberry.enum(
    EstimationUnavailable,
    name="EstimationUnavailable",
    description="Why performance could not be estimated: NOT_A_CLASSIFIER (a regressor), "
    "NO_PROBABILITIES (the version stores no class probabilities), TOO_FEW_REFERENCE_ROWS "
    "(fewer labelled predictions in the reference window than MODELQL_ESTIMATION_MIN_REFERENCE).",
)


def _metrics(values: dict[str, float]) -> list[MetricType]:
    return [MetricType(name=name, value=value) for name, value in values.items()]


@strawberry.type(
    name="EstimatedPeriod",
    description="One period's predictions (or the whole window's): estimated metrics, and "
    "where some have outcomes the realised metrics and their gap.",
)
class EstimatedPeriodType:
    bucket: datetime | None = strawberry.field(
        description="Start of the period (UTC), as `groups` buckets; null for the whole window."
    )
    count: int = strawberry.field(description="Predictions estimated.")
    labelled: int = strawberry.field(description="Of them, predictions with an outcome.")
    estimated: list[MetricType] = strawberry.field(
        description="From the expected confusion matrix of the calibrated probabilities, with "
        "LIVE's names and definitions (accuracy; precision, recall, f1 macro and weighted over "
        "the classes with expected predictions or outcomes), plus roc_auc (macro one-vs-rest; "
        "binary: the positive class) when computable."
    )
    realised: list[MetricType] = strawberry.field(
        description="The same metrics on the labelled predictions of the period (roc_auc from "
        "the stored probabilities); empty without any."
    )
    gap: list[MetricType] = strawberry.field(
        description="realised minus estimated, per metric both have: a gap moving away from "
        "zero flags concept drift (the reference window's relation between probabilities and "
        "outcomes no longer holds)."
    )

    @classmethod
    def of(cls, period: estimation.EstimatedPeriod) -> EstimatedPeriodType:
        return cls(
            bucket=period.bucket,
            count=period.count,
            labelled=period.labelled,
            estimated=_metrics(period.estimated),
            realised=_metrics(period.realised),
            gap=_metrics(period.gap),
        )


@strawberry.type(
    name="EstimatedPerformance",
    description="Confidence-based performance estimation (CBPE): class probabilities "
    "calibrated with isotonic regression (one-vs-rest per class, renormalised) on the "
    "reference window's labelled predictions, then metrics expected from them over the "
    "window's predictions, labelled or not.",
)
class EstimatedPerformanceType:
    available: bool = strawberry.field(description="False: see `unavailableReason`.")
    unavailable_reason: EstimationUnavailable | None
    reference_size: int = strawberry.field(
        description="Labelled predictions calibrated on: the most recent of the reference "
        "window, at most MODELQL_ESTIMATION_REFERENCE_SIZE."
    )
    sample_size: int = strawberry.field(
        description="Predictions estimated: the most recent of the window, at most "
        "MODELQL_ESTIMATION_MAX_SAMPLE (when reached, the oldest period may be partial)."
    )
    roc_auc_method: str = strawberry.field(
        description='"expected": the area under the ROC curve of expected true and false '
        "positives at each of the model's scores (analytic, no sampling of labels)."
    )
    overall: EstimatedPeriodType | None = strawberry.field(
        description="The whole window; null when unavailable."
    )
    periods: list[EstimatedPeriodType] = strawberry.field(
        description="Per period of `interval` holding predictions, oldest first (the newest "
        "`first`)."
    )

    @classmethod
    def of(cls, found: estimation.Estimate, first: int) -> EstimatedPerformanceType:
        periods = found.periods[-first:] if first else []
        return cls(
            available=found.unavailable is None,
            unavailable_reason=found.unavailable,
            reference_size=found.reference_size,
            sample_size=found.sample_size,
            roc_auc_method=estimation.ROC_AUC_METHOD,
            overall=EstimatedPeriodType.of(found.overall) if found.overall else None,
            periods=[EstimatedPeriodType.of(period) for period in periods],
        )
