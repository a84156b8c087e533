"""Paired tests of two versions on the same rows: the numbers scipy gives for McNemar's exact
test and the paired t-test, on small examples worked by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from modelql.models.paired_tests import CONFIDENCE, mcnemar, paired_t


def test_mcnemar_counts_the_discordant_pairs_and_tests_them_exactly():
    truths = list("aaaaaaaaaa")
    baseline = list("aaaaabbbbb")  # right on rows 0-4
    candidate = list(
        "aaaaaaaaab"
    )  # right on rows 0-8: 4 rows only it gets right, none only the baseline
    test = mcnemar(truths, baseline, candidate)

    assert (test.metric, test.test, test.pairs) == ("accuracy", "mcnemar_exact", 10)
    assert (test.baseline_only, test.candidate_only) == (0, 4)
    assert (test.baseline, test.candidate, test.difference) == (0.5, 0.9, pytest.approx(0.4))
    assert test.p_value == pytest.approx(stats.binomtest(0, 4, 0.5).pvalue)
    assert test.p_value == pytest.approx(0.125)  # 2 * 0.5**4
    # Wald interval of a paired difference: (c - b) / n +- z * sqrt(b + c - (c - b)**2 / n) / n
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    spread = math.sqrt(4 - 16 / 10) / 10
    assert (test.low, test.high) == (
        pytest.approx(0.4 - z * spread),
        pytest.approx(0.4 + z * spread),
    )


def test_mcnemar_without_discordant_pairs_finds_no_difference():
    test = mcnemar(["x", "y"], ["x", "x"], ["x", "x"])
    assert (test.difference, test.p_value, test.low, test.high) == (0.0, 1.0, 0.0, 0.0)


def test_paired_t_on_absolute_errors_matches_scipy():
    truths = [1.0, 2.0, 3.0, 4.0, 5.0]
    baseline = [1.5, 2.5, 2.0, 4.5, 6.0]  # absolute errors 0.5 0.5 1.0 0.5 1.0
    candidate = [1.1, 2.2, 3.3, 3.6, 5.5]  # absolute errors 0.1 0.2 0.3 0.4 0.5
    test = paired_t(truths, baseline, candidate)

    after, before = [0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.5, 1.0, 0.5, 1.0]
    expected = stats.ttest_rel(after, before)
    interval = expected.confidence_interval(CONFIDENCE)
    assert (test.metric, test.test, test.pairs) == ("mae", "paired_t", 5)
    assert test.baseline == pytest.approx(0.7)
    assert test.candidate == pytest.approx(0.3)
    assert test.difference == pytest.approx(-0.4)
    assert test.p_value == pytest.approx(expected.pvalue)
    assert (test.low, test.high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert test.high < 0, "the candidate's errors are smaller on every row"


def test_paired_t_needs_two_pairs_for_an_interval():
    single = paired_t([1.0], [2.0], [1.5])
    assert (single.difference, single.low, single.high, single.p_value) == (-0.5, None, None, None)
    same = paired_t([1.0, 2.0], [1.5, 2.5], [1.5, 2.5])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
