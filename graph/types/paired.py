"""A paired test of two versions on the same labelled rows, as `compareVersions` and the alias
history show it."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from modelql.models.paired_tests import CONFIDENCE, PairedTest


@strawberry.type(
    name="PairedTest",
    description="Baseline and candidate on the same rows with a recorded outcome: accuracy "
    "with McNemar's exact test (classifiers), or mean absolute error with the paired t-test "
    "(regressors); `difference` is candidate minus baseline, with its confidence interval.",
)
class PairedTestType:
    metric: str = strawberry.field(description="`accuracy` or `mae`.")
    test: str = strawberry.field(description="`mcnemar_exact` or `paired_t`.")
    pairs: int
    baseline: float
    candidate: float
    difference: float
    confidence_level: float
    confidence_low: float | None = strawberry.field(description="Null below two pairs.")
    confidence_high: float | None
    p_value: float | None
    baseline_only: int | None = strawberry.field(
        description="McNemar: rows only the baseline got right."
    )
    candidate_only: int | None = strawberry.field(
        description="McNemar: rows only the candidate got right."
    )

    @classmethod
    def of(cls, test: PairedTest) -> PairedTestType:
        return cls.from_summary(dataclasses.asdict(test))

    @classmethod
    def from_summary(cls, kept: dict[str, Any]) -> PairedTestType:
        """From the test's fields as `Comparison.summary` keeps them."""
        return cls(
            metric=kept["metric"],
            test=kept["test"],
            pairs=kept["pairs"],
            baseline=kept["baseline"],
            candidate=kept["candidate"],
            difference=kept["difference"],
            confidence_level=CONFIDENCE,
            confidence_low=kept["low"],
            confidence_high=kept["high"],
            p_value=kept["p_value"],
            baseline_only=kept.get("baseline_only"),
            candidate_only=kept.get("candidate_only"),
        )
