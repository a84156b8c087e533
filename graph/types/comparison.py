"""The answer of `compareVersions`: a candidate version against a baseline on stored traffic."""

from __future__ import annotations

import strawberry

from modelql.graph.context import GraphContext
from modelql.graph.types.catalogue import MetricType
from modelql.graph.types.nodes import ModelVersionType, PredictionType
from modelql.graph.types.paired import PairedTestType
from modelql.models.predictor import ModelOutput
from modelql.services import comparison

Info = strawberry.Info[GraphContext, None]
# The enum itself (a type to mypy), registered with Strawberry as a GraphQL enum.
ComparisonSource = comparison.ComparisonSource
strawberry.enum(
    ComparisonSource,
    name="ComparisonSource",
    description="REPLAY: the candidate re-scores stored predictions now; SHADOW: the answers "
    "the candidate stored while it ran in the shadow of live requests (`setShadow`).",
)


@strawberry.input(description="A version by number or alias (both: they must agree).")
class VersionSelector:
    version: int | None = None
    alias: str | None = None

    def to_selector(self) -> comparison.VersionSelector:
        return comparison.VersionSelector(number=self.version, alias=self.alias)


@strawberry.type(description="How often the baseline's label became another candidate label.")
class LabelChange:
    from_: str = strawberry.field(name="from")
    to: str
    count: int


@strawberry.type(
    description="A stored prediction, with the baseline's and the candidate's answers to its "
    "inputs; the answers are null when the input was skipped (see `skippedReason`)."
)
class PredictionDiff:
    prediction: PredictionType
    candidate_label: str | None
    candidate_value: float | None
    candidate_confidence: float | None
    baseline_label: str | None = strawberry.field(
        description="What the baseline answered: the stored answer when no baseline was given."
    )
    baseline_value: float | None
    baseline_confidence: float | None
    skipped_reason: str | None = strawberry.field(
        description="Why the input was not compared (a signature refuses it); null if it was."
    )

    @classmethod
    def of(cls, diff: comparison.PredictionDiff) -> PredictionDiff:
        empty = ModelOutput(None, None, None, None)
        candidate, baseline = diff.candidate or empty, diff.baseline or empty
        return cls(
            prediction=PredictionType.from_row(diff.prediction),
            candidate_label=candidate.label,
            candidate_value=candidate.value,
            candidate_confidence=candidate.confidence,
            baseline_label=baseline.label,
            baseline_value=baseline.value,
            baseline_confidence=baseline.confidence,
            skipped_reason=diff.skipped_reason,
        )


@strawberry.type(
    description="A candidate version re-scoring a sample of stored predictions (newest first), "
    "against a baseline version or what each prediction answered; or (source SHADOW) the "
    "answers a shadow version stored beside what was served. Nothing is stored."
)
class VersionComparison:
    candidate: ModelVersionType
    baseline: ModelVersionType | None = strawberry.field(
        description="Null: the baseline is what each stored prediction answered."
    )
    compared: int = strawberry.field(description="Predictions both sides scored.")
    skipped: int = strawberry.field(
        description="Stored inputs the candidate's (or the baseline's) signature refuses."
    )
    agreement: float | None = strawberry.field(
        description="Classification: share of compared predictions with the same label, 0 to 1."
    )
    label_changes: list[LabelChange] = strawberry.field(description="Most frequent first.")
    mean_absolute_difference: float | None = strawberry.field(
        description="Regression: mean of |candidate value - baseline value|."
    )
    baseline_metrics: list[MetricType] = strawberry.field(
        description="On the compared predictions that have a recorded outcome."
    )
    candidate_metrics: list[MetricType]
    source: ComparisonSource
    paired: PairedTestType | None = strawberry.field(
        description="Both sides on the compared predictions with a recorded outcome, paired "
        "row by row; null without any."
    )
    diffs: strawberry.Private[list[comparison.PredictionDiff]]

    @classmethod
    def of(cls, result: comparison.Comparison) -> VersionComparison:
        return cls(
            candidate=ModelVersionType.from_version(result.candidate),
            baseline=ModelVersionType.from_version(result.baseline) if result.baseline else None,
            compared=result.compared,
            skipped=result.skipped,
            agreement=result.agreement,
            label_changes=[
                LabelChange(from_=before, to=after, count=count)
                for before, after, count in result.label_changes
            ],
            mean_absolute_difference=result.mean_absolute_difference,
            baseline_metrics=_metrics(result.baseline_metrics),
            candidate_metrics=_metrics(result.candidate_metrics),
            source=result.source,
            paired=PairedTestType.of(result.paired) if result.paired else None,
            diffs=result.examples,
        )

    @strawberry.field(
        description="Up to `first` predictions: the first few skipped inputs with their reason, "
        "then the compared ones, most different first (another label; for regression the "
        "largest difference)."
    )
    def examples(self, info: Info, first: int | None = 10) -> list[PredictionDiff]:
        size = info.context.limits.page_size(first, default=10)
        return [PredictionDiff.of(diff) for diff in self.diffs[:size]]


def _metrics(metrics: dict[str, float]) -> list[MetricType]:
    return [MetricType(name=name, value=value) for name, value in metrics.items()]
