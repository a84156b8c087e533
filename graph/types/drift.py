"""Drift report types: live inputs and outputs against the version's training profile."""

from __future__ import annotations

import strawberry

from modelql.services import drift


@strawberry.type(name="DriftBin", description="One bin: its share of reference and of live data.")
class DriftBinType:
    label: str = strawberry.field(
        description='e.g. "< 4.35", "4.35 to 5.1", ">= 6.9", a category, "(other)" (live '
        'categories unseen in training) or "(missing)".'
    )
    reference: float = strawberry.field(description="Share of the reference data, 0 to 1.")
    live: float = strawberry.field(description="Share of the live sample, 0 to 1.")


@strawberry.type(name="FeatureDrift")
class FeatureDriftType:
    feature: str = strawberry.field(description='The feature, or "(prediction)" for the output.')
    method: str = strawberry.field(
        description='"psi": population stability index over the reference bins (deciles of '
        'numbers, categories); "none": not profiled (TEXT features).'
    )
    score: float | None = strawberry.field(
        description="The PSI; null when the live sample is smaller than MODELQL_DRIFT_MIN_SAMPLE."
    )
    drifted: bool | None = strawberry.field(
        description="score > MODELQL_DRIFT_PSI_THRESHOLD (default 0.2); null without a score."
    )
    out_of_range_rate: float | None = strawberry.field(
        description="Share of live values outside the signature's minimum..maximum (numbers); "
        "null when there is no range or no value."
    )
    bins: list[DriftBinType] = strawberry.field(description="Ready to chart, in bin order.")

    @classmethod
    def of(cls, found: drift.FeatureDrift) -> FeatureDriftType:
        return cls(
            feature=found.feature,
            method=found.method,
            score=found.score,
            drifted=found.drifted,
            out_of_range_rate=found.out_of_range_rate,
            bins=[
                DriftBinType(label=b.label, reference=b.reference, live=b.live) for b in found.bins
            ],
        )


@strawberry.type(name="DriftReport")
class DriftReportType:
    reference_available: bool = strawberry.field(
        description="False for versions registered without reference data."
    )
    sample_size: int = strawberry.field(
        description="Live predictions compared: the most recent in the window, at most "
        "MODELQL_DRIFT_MAX_SAMPLE."
    )
    features: list[FeatureDriftType] = strawberry.field(description="In signature order.")
    prediction: FeatureDriftType | None = strawberry.field(
        description="The output (label or value) against the model's outputs on the reference data."
    )

    @classmethod
    def of(cls, report: drift.DriftReport) -> DriftReportType:
        return cls(
            reference_available=report.reference_available,
            sample_size=report.sample_size,
            features=[FeatureDriftType.of(feature) for feature in report.features],
            prediction=FeatureDriftType.of(report.prediction) if report.prediction else None,
        )
