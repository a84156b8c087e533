"""Batch scoring of a fitted scikit-learn estimator against its input signature."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from models.signature import FeatureSpec, FeatureType

_NUMERIC = frozenset({FeatureType.NUMBER, FeatureType.INTEGER, FeatureType.BOOLEAN})


@dataclass(frozen=True)
class ModelOutput:
    """The prediction for one row: a label (classifiers) or a value (regressors)."""

    label: str | None
    value: float | None
    probabilities: tuple[tuple[str, float], ...] | None
    confidence: float | None


class Predictor:
    """Scores batches of feature mappings with a fitted estimator, single-threaded."""

    def __init__(
        self,
        estimator: Any,
        signature: Sequence[FeatureSpec],
        labels: Sequence[str] | None = None,
    ) -> None:
        self.estimator = estimator
        self.signature = tuple(signature)
        self.labels = self._resolve_labels(labels)
        n_jobs = {
            name: 1
            for name in estimator.get_params(deep=True)
            if name == "n_jobs" or name.endswith("__n_jobs")
        }
        if n_jobs:
            estimator.set_params(**n_jobs)

    def predict(self, rows: Sequence[Mapping[str, object]]) -> list[ModelOutput]:
        """Score all rows with one call to the estimator."""
        if not rows:
            return []
        matrix = self._matrix(rows)
        if self.labels is None:
            return self._values(matrix)
        if hasattr(self.estimator, "predict_proba"):
            return self._probable_labels(matrix, self.labels)
        return self._labels(matrix, self.labels)

    def _values(self, matrix: np.ndarray) -> list[ModelOutput]:
        """Regression outputs."""
        values = np.asarray(self.estimator.predict(matrix), dtype=np.float64)
        if values.size != len(matrix):
            raise ValueError("only single-output regressors are supported")
        return [ModelOutput(None, value, None, None) for value in values.ravel().tolist()]

    def _labels(self, matrix: np.ndarray, labels: tuple[str, ...]) -> list[ModelOutput]:
        """Classification outputs of an estimator without predict_proba."""
        index = {cls: i for i, cls in enumerate(self.estimator.classes_.tolist())}
        predicted = self.estimator.predict(matrix).tolist()
        return [ModelOutput(labels[index[cls]], None, None, None) for cls in predicted]

    def _probable_labels(self, matrix: np.ndarray, labels: tuple[str, ...]) -> list[ModelOutput]:
        """Classification outputs labelled with the most probable class."""
        outputs = []
        for row in np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64).tolist():
            best = max(range(len(row)), key=row.__getitem__)
            probabilities = tuple(zip(labels, row, strict=True))
            outputs.append(ModelOutput(labels[best], None, probabilities, row[best]))
        return outputs

    def _resolve_labels(self, labels: Sequence[str] | None) -> tuple[str, ...] | None:
        """One label per class (labels[i] names classes_[i]); None for regressors."""
        if not hasattr(self.estimator, "classes_"):
            if labels is not None:
                raise ValueError("labels were given for an estimator without classes_")
            return None
        classes = self.estimator.classes_.tolist()
        if labels is None:
            return tuple(str(cls) for cls in classes)
        if len(labels) != len(classes):
            raise ValueError(f"expected {len(classes)} labels, got {len(labels)}")
        return tuple(labels)

    def _matrix(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """A 2-D array with one column per feature, in signature order."""
        known = {spec.name for spec in self.signature}
        numeric = all(spec.type in _NUMERIC for spec in self.signature)
        cells = []
        for number, row in enumerate(rows):
            unknown = sorted(set(row) - known)
            if unknown:
                raise ValueError(f"row {number}: unknown feature(s) {', '.join(unknown)}")
            cells.append([_cell(spec, row.get(spec.name), number) for spec in self.signature])
        return np.array(cells, dtype=np.float64 if numeric else object)


def _cell(spec: FeatureSpec, value: object, row: int) -> object:
    """One feature value as the estimator sees it; NaN (numeric) or None when missing."""
    if value is None:
        if spec.required:
            raise ValueError(f"row {row}: missing required feature {spec.name!r}")
        return math.nan if spec.type in _NUMERIC else None
    if spec.type is FeatureType.BOOLEAN:
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"row {row}: feature {spec.name!r} expects a boolean")
        return 1.0 if value else 0.0
    if spec.type in _NUMERIC:
        if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
            raise ValueError(f"row {row}: feature {spec.name!r} expects a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"row {row}: feature {spec.name!r} expects a string")
    return value
