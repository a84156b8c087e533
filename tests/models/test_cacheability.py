"""Which estimators may be cached row by row: each one the allow-list names scores a row to the
same bits alone and within any batch (so `audit verify`, which re-scores a group commit as one
batch, matches a row whose output came from the cache); linear models are left out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelql.models.cacheability import (
    ROW_WISE_ESTIMATORS,
    inference_profile,
    scores_rows_independently,
)
from modelql.models.predictor import Predictor, RowScore, Scores
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType


def _fitted(estimator: Any) -> tuple[Any, np.ndarray]:
    """The estimator fitted on iris (classifiers) or diabetes (regressors), and rows to score
    near the training data."""
    regressor = getattr(estimator, "_estimator_type", None) == "regressor" or not hasattr(
        estimator, "predict_proba"
    )
    load = datasets.load_diabetes if regressor else datasets.load_iris
    features, target = load(return_X_y=True)
    estimator.set_params(**{"random_state": 0} if "random_state" in estimator.get_params() else {})
    estimator.fit(features, target)
    rng = np.random.default_rng(7)
    rows = features[rng.integers(0, len(features), 200)] * rng.uniform(0.8, 1.2, (200, 1))
    return estimator, rows


def _bits(row: RowScore) -> tuple[Any, ...]:
    """A row's outputs with every float as its exact bits."""
    label, value, probabilities, confidence, finite = row
    return (
        label,
        None if value is None else value.hex(),
        None if probabilities is None else [p.hex() for p in probabilities],
        None if confidence is None else confidence.hex(),
        finite,
    )


def _rows(scores: Scores) -> list[tuple[Any, ...]]:
    return [_bits(scores.row(index)) for index in range(len(scores))]


def _predictor(estimator: Any, columns: int) -> Predictor:
    signature = [FeatureSpec(f"f{n}", FeatureType.NUMBER) for n in range(columns)]
    return Predictor(estimator, signature)


@pytest.mark.parametrize(
    "estimator",
    [cls() for cls in ROW_WISE_ESTIMATORS]
    + [make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20))],
    ids=lambda estimator: type(estimator).__name__,
)
def test_every_row_wise_estimator_scores_a_row_alike_in_any_batch(estimator: Any):
    assert scores_rows_independently(estimator)
    fitted, matrix = _fitted(clone(estimator))
    predictor = _predictor(fitted, matrix.shape[1])
    scores = predictor.score([{}] * len(matrix), matrix)
    whole = _rows(scores)
    rows = [scores.row(index) for index in range(len(scores))]
    assert Scores.of_rows(rows, predictor.labels) == scores  # put back together as scored

    alone = [_rows(predictor.score([{}], matrix[n : n + 1]))[0] for n in range(len(matrix))]
    assert alone == whole
    for start, size in ((0, 7), (13, 64), (101, 99), (150, 3)):
        part = matrix[start : start + size]
        assert _rows(predictor.score([{}] * len(part), part)) == whole[start : start + size]
    shuffled = np.random.default_rng(3).permutation(len(matrix))
    reordered = _rows(predictor.score([{}] * len(matrix), matrix[shuffled]))
    assert reordered == [whole[n] for n in shuffled]


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(),
        Ridge(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        make_pipeline(PCA(), RandomForestClassifier()),  # PCA's projection is a matrix product
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_other_estimators_are_not_row_wise(estimator: Any):
    assert not scores_rows_independently(estimator)


def test_a_logistic_regression_is_profiled_as_not_row_wise_and_not_timed():
    fitted, matrix = _fitted(LogisticRegression(max_iter=1000))
    profile = inference_profile(_predictor(fitted, matrix.shape[1]))
    assert (profile.row_wise, profile.call_s) == (False, None)


def test_a_forest_is_timed_on_a_probe_row():
    fitted, matrix = _fitted(RandomForestClassifier(n_estimators=10))
    profile = inference_profile(_predictor(fitted, matrix.shape[1]))
    assert profile.row_wise
    assert profile.call_s is not None and profile.call_s > 0


def test_a_signature_with_text_features_is_not_timed():
    fitted, matrix = _fitted(RandomForestClassifier(n_estimators=10))
    signature = [FeatureSpec(f"f{n}", FeatureType.NUMBER) for n in range(matrix.shape[1] - 1)]
    signature.append(FeatureSpec("name", FeatureType.TEXT))
    profile = inference_profile(Predictor(fitted, signature))
    assert (profile.row_wise, profile.call_s) == (True, None)
