"""CBPE's parts on synthetic data with a known truth: isotonic calibration repairs
over-confident probabilities; the expected confusion matrix and expected ROC AUC agree with
the means over labels drawn from the calibrated probabilities (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modelql.models.estimation import (
    Calibrator,
    expected_confusion,
    expected_roc_auc,
    realised_roc_auc,
)


def over_confident(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes; the true class probabilities are a softmax of random scores, the model
    reports a sharper softmax (over-confident). Returns (reported, true probabilities)."""
    scores = rng.normal(0, 1.5, (count, 3))
    true = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    reported = np.exp(3 * scores) / np.exp(3 * scores).sum(axis=1, keepdims=True)
    return reported, true


def draw(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    cumulative = probabilities.cumsum(axis=1)
    return (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)


def test_calibration_repairs_over_confident_probabilities():
    rng = np.random.default_rng(1)
    reported, true = over_confident(rng, 20_000)
    calibrator = Calibrator.fit(reported, draw(rng, true))
    analysed, analysed_true = over_confident(rng, 5_000)
    calibrated = calibrator.calibrate(analysed)
    assert calibrated.sum(axis=1) == pytest.approx(np.ones(5_000))
    raw_error = np.abs(analysed - analysed_true).mean()
    calibrated_error = np.abs(calibrated - analysed_true).mean()
    assert calibrated_error < raw_error / 2, (calibrated_error, raw_error)

    predicted = analysed.argmax(axis=1)
    expected = np.trace(expected_confusion(predicted, calibrated)) / 5_000
    truly_expected = analysed_true[np.arange(5_000), predicted].mean()
    naive = analysed.max(axis=1).mean()  # the model's own confidence
    assert abs(expected - truly_expected) < 0.01
    assert naive - truly_expected > 0.05  # what calibration was needed for


def test_expected_confusion_and_auc_are_the_means_over_drawn_labels():
    rng = np.random.default_rng(2)
    reported, true = over_confident(rng, 400)
    predicted = reported.argmax(axis=1)
    confusion = expected_confusion(predicted, true)
    assert confusion.sum() == pytest.approx(400)
    assert confusion == pytest.approx(
        expected_confusion(predicted[:150], true[:150])
        + expected_confusion(predicted[150:], true[150:])
    )  # additive over periods

    drawn_confusions, drawn_areas = [], []
    for _ in range(1_000):
        observed = draw(rng, true)
        matrix = np.zeros((3, 3))
        np.add.at(matrix, (predicted, observed), 1)
        drawn_confusions.append(matrix)
        drawn_areas.append(realised_roc_auc(reported, observed))
    assert confusion == pytest.approx(np.mean(drawn_confusions, axis=0), abs=1.0)
    # the analytic value is the ratio of expected counts, the mean of ratios differs by far less
    assert expected_roc_auc(reported, true) == pytest.approx(np.mean(drawn_areas), abs=0.005)


def test_binary_auc_is_the_positive_class_curve_and_ties_count_half():
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6], [0.2, 0.8]])
    certain = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    truth = certain[:, 1].astype(int)
    assert expected_roc_auc(scores, certain) == pytest.approx(roc_auc_score(truth, scores[:, 1]))
    assert realised_roc_auc(scores, truth) == pytest.approx(roc_auc_score(truth, scores[:, 1]))
    assert expected_roc_auc(scores, np.column_stack([np.ones(4), np.zeros(4)])) is None
    assert realised_roc_auc(scores, [1, 1, 1, 1]) is None
