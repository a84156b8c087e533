"""Confidence-based performance estimation (CBPE, as NannyML defined it): class probabilities
calibrated on labelled predictions with isotonic regression, then the confusion matrix and ROC
AUC a classifier is expected to reach on unlabelled predictions, from those probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Calibrator:
    """One isotonic regression per class (one-vs-rest), fitted on a reference window."""

    regressions: tuple[IsotonicRegression, ...]

    @classmethod
    def fit(cls, probabilities: Matrix, observed: Sequence[int]) -> Calibrator:
        """Fit on the reference window: rows of class probabilities (in the version's label
        order) and the index of each row's observed class."""
        truth = np.asarray(observed)
        regressions = []
        for position in range(probabilities.shape[1]):
            regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            regression.fit(probabilities[:, position], (truth == position).astype(np.float64))
            regressions.append(regression)
        return cls(tuple(regressions))

    def calibrate(self, probabilities: Matrix) -> Matrix:
        """Calibrated probabilities, renormalised to sum to 1 per row (a row the calibration
        sends to all zeros keeps its raw probabilities)."""
        columns = [
            np.asarray(regression.predict(probabilities[:, position]), dtype=np.float64)
            for position, regression in enumerate(self.regressions)
        ]
        calibrated = np.column_stack(columns)
        sums = calibrated.sum(axis=1, keepdims=True)
        return np.where(sums > 0, calibrated / np.where(sums > 0, sums, 1.0), probabilities)


def expected_confusion(predicted: Sequence[int], calibrated: Matrix) -> Matrix:
    """[predicted class, observed class] -> expected number of predictions: each prediction
    adds its calibrated probabilities to the row of the class it predicted (additive, so the
    matrices of periods sum)."""
    confusion = np.zeros((calibrated.shape[1], calibrated.shape[1]))
    np.add.at(confusion, np.asarray(predicted, dtype=np.intp), calibrated)
    return confusion


def expected_roc_auc(scores: Matrix, calibrated: Matrix) -> float | None:
    """Macro one-vs-rest ROC AUC expected when each row's class is drawn from its calibrated
    probabilities, analytically (no sampling): per class, the ROC curve through the expected
    true and false positives above each distinct score of the model (NannyML's estimator,
    ranking by the model's own score); the classes with expected positives and negatives."""
    areas = [
        area
        for position in range(scores.shape[1])
        if (area := _expected_area(scores[:, position], calibrated[:, position])) is not None
    ]
    if not areas:
        return None
    if scores.shape[1] == 2:  # binary: the positive class's curve, as scikit-learn's
        return areas[-1]
    return float(np.mean(areas))


def _expected_area(score: NDArray[np.float64], positive: NDArray[np.float64]) -> float | None:
    positives, negatives = positive.sum(), (1.0 - positive).sum()
    if positives <= 0 or negatives <= 0:
        return None
    order = np.argsort(-score, kind="stable")
    ranked, weights = score[order], positive[order]
    last_of_tie = np.r_[np.diff(ranked) != 0, True]  # thresholds at distinct scores only
    true_positive = np.r_[0.0, np.cumsum(weights)[last_of_tie]] / positives
    false_positive = np.r_[0.0, np.cumsum(1.0 - weights)[last_of_tie]] / negatives
    return float(np.sum(np.diff(false_positive) * (true_positive[1:] + true_positive[:-1])) / 2)


def realised_roc_auc(scores: Matrix, observed: Sequence[int]) -> float | None:
    """Macro one-vs-rest ROC AUC of the model's scores on observed classes (scikit-learn's);
    None when fewer than two classes were observed."""
    truth = np.asarray(observed)
    present = np.unique(truth)
    if len(present) < 2:
        return None
    if scores.shape[1] == 2:
        return float(roc_auc_score(truth == 1, scores[:, 1]))
    areas = [float(roc_auc_score(truth == position, scores[:, position])) for position in present]
    return float(np.mean(areas))
