"""Whether a fitted estimator's outputs may be reused row by row, and what one call costs.

A cached output is served in place of what the estimator would give for that row in whatever
batch the row lands in, and `modelql audit verify` re-scores each group commit as one batch and
compares bit for bit. So only estimators that compute every row on its own may be cached: the
tree models below walk each row down each tree and add the trees' values row by row, in tree
order, whatever else is in the batch. Linear models may not: their matrix product goes through
BLAS, whose kernels round the last bit differently for different batch shapes (a logistic
regression's probabilities for a row alone and within a batch differ in about two rows of
three)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

from modelql.models.predictor import Predictor
from modelql.models.vocabulary import FeatureType

ROW_WISE_ESTIMATORS: tuple[type, ...] = (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
)
"""Estimators whose output for a row does not depend on the other rows of the batch, to the
bit (tests/models/test_cacheability.py checks each)."""

ROW_WISE_TRANSFORMERS: tuple[type, ...] = (StandardScaler, MinMaxScaler, MaxAbsScaler)
"""Pipeline steps that may come before one of them: element-wise arithmetic per column."""

PROBE_CALLS = 3
_NUMERIC = frozenset({FeatureType.NUMBER, FeatureType.INTEGER, FeatureType.BOOLEAN})


@dataclass(frozen=True)
class InferenceProfile:
    """What decides whether a version's outputs are worth caching."""

    row_wise: bool
    """Each row's output is independent of the batch it is scored in (see above)."""
    call_s: float | None
    """The fastest of a few estimator calls on one probe row; None when not measured (not
    row-wise, a signature with non-numeric features, or the probe was refused)."""


def scores_rows_independently(estimator: Any) -> bool:
    """Whether the estimator (or pipeline) computes each row's output on its own."""
    if isinstance(estimator, Pipeline):
        *steps, last = [step for _, step in estimator.steps if step != "passthrough"]
        return all(isinstance(step, ROW_WISE_TRANSFORMERS) for step in steps) and (
            scores_rows_independently(last)
        )
    return isinstance(estimator, ROW_WISE_ESTIMATORS)


def inference_profile(predictor: Predictor) -> InferenceProfile:
    """Row-wise or not, and, when row-wise with numeric features, the time of one call on a
    row of zeros (the fastest of PROBE_CALLS: noise on a busy machine only adds time)."""
    if not scores_rows_independently(predictor.estimator):
        return InferenceProfile(row_wise=False, call_s=None)
    if any(spec.type not in _NUMERIC for spec in predictor.signature):
        return InferenceProfile(row_wise=True, call_s=None)
    probe = np.zeros((1, len(predictor.signature)), dtype=np.float64)
    fastest = float("inf")
    try:
        for _ in range(PROBE_CALLS):
            started = time.perf_counter()
            predictor.score([{}], probe)
            fastest = min(fastest, time.perf_counter() - started)
    except ValueError:
        return InferenceProfile(row_wise=True, call_s=None)
    return InferenceProfile(row_wise=True, call_s=fastest)
