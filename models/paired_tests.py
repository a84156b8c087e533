"""Paired tests of two versions on the same rows with known outcomes: McNemar's exact test
for classifiers (accuracy), the paired t-test for regressors (mean absolute error), each
with a confidence interval for the candidate's metric minus the baseline's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedTest:
    metric: str
    """`accuracy` (classifiers) or `mae` (regressors)."""
    test: str
    """`mcnemar_exact` or `paired_t`."""
    pairs: int
    baseline: float
    candidate: float
    difference: float
    """Candidate minus baseline."""
    low: float | None
    high: float | None
    """The confidence interval of the difference (CONFIDENCE); None with too few pairs."""
    p_value: float | None
    baseline_only: int | None = None
    """McNemar: pairs only the baseline got right."""
    candidate_only: int | None = None
    """McNemar: pairs only the candidate got right."""


def mcnemar(truths: Sequence[str], baseline: Sequence[str], candidate: Sequence[str]) -> PairedTest:
    """Accuracy of each side on the same rows; the exact (binomial) McNemar p-value on the
    discordant pairs, and the Wald interval of the paired difference of proportions."""
    n = len(truths)
    right_before = [b == t for b, t in zip(baseline, truths, strict=True)]
    right_after = [c == t for c, t in zip(candidate, truths, strict=True)]
    only_before = sum(a and not b for a, b in zip(right_before, right_after, strict=True))
    only_after = sum(b and not a for a, b in zip(right_before, right_after, strict=True))
    difference = (only_after - only_before) / n
    discordant = only_before + only_after
    p_value = (
        float(stats.binomtest(min(only_before, only_after), discordant, 0.5).pvalue)
        if discordant
        else 1.0
    )
    spread = math.sqrt(max(discordant - (only_after - only_before) ** 2 / n, 0.0)) / n
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    return PairedTest(
        metric="accuracy",
        test="mcnemar_exact",
        pairs=n,
        baseline=sum(right_before) / n,
        candidate=sum(right_after) / n,
        difference=difference,
        low=difference - z * spread,
        high=difference + z * spread,
        p_value=p_value,
        baseline_only=only_before,
        candidate_only=only_after,
    )


def paired_t(
    truths: Sequence[float], baseline: Sequence[float], candidate: Sequence[float]
) -> PairedTest:
    """Mean absolute error of each side on the same rows; the paired t-test on the rows'
    absolute errors (candidate minus baseline) and its interval (none below two pairs)."""
    n = len(truths)
    before = [abs(b - t) for b, t in zip(baseline, truths, strict=True)]
    after = [abs(c - t) for c, t in zip(candidate, truths, strict=True)]
    difference = (sum(after) - sum(before)) / n
    low = high = p_value = None
    if n >= 2:
        if all(a - b == after[0] - before[0] for a, b in zip(after, before, strict=True)):
            low = high = difference  # no spread: the t statistic is undefined
            p_value = 1.0 if difference == 0 else 0.0
        else:
            result = stats.ttest_rel(after, before)
            interval = result.confidence_interval(CONFIDENCE)
            low, high, p_value = float(interval.low), float(interval.high), float(result.pvalue)
    return PairedTest(
        metric="mae",
        test="paired_t",
        pairs=n,
        baseline=sum(before) / n,
        candidate=sum(after) / n,
        difference=difference,
        low=low,
        high=high,
        p_value=p_value,
    )
