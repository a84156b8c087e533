"""Batch scoring of a fitted scikit-learn estimator against its input signature."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, TypeVar

import numpy as np

from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType

_NUMBERS = frozenset({FeatureType.NUMBER, FeatureType.INTEGER})
_NUMERIC = _NUMBERS | {FeatureType.BOOLEAN}

T = TypeVar("T")

RowScore = tuple[str | None, float | None, list[float] | None, float | None, bool]
"""One row's outputs as `Scores` holds them: label, value, probabilities, confidence, finite."""


@dataclass(frozen=True)
class ModelOutput:
    """The prediction for one row: a label (classifiers) or a value (regressors)."""

    label: str | None
    value: float | None
    probabilities: tuple[tuple[str, float], ...] | None
    confidence: float | None


@dataclass(frozen=True)
class Scores:
    """A batch's outputs column by column: item i of each list belongs to input row i."""

    labels: list[str] | None
    """Classification: the predicted label of each row."""
    values: list[float] | None
    """Regression: the predicted value of each row."""
    probabilities: list[list[float]] | None
    """Classifiers with predict_proba: each row's probabilities, in `classes` order."""
    confidences: list[float] | None
    classes: tuple[str, ...] | None
    finite: list[bool]
    """Whether every number the row's output holds is finite."""

    def __len__(self) -> int:
        return len(self.finite)

    def slice(self, start: int, end: int) -> Scores:
        def part(column: list[T] | None) -> list[T] | None:
            return None if column is None else column[start:end]

        return Scores(
            labels=part(self.labels),
            values=part(self.values),
            probabilities=part(self.probabilities),
            confidences=part(self.confidences),
            classes=self.classes,
            finite=self.finite[start:end],
        )

    def row(self, index: int) -> RowScore:
        """Row `index`'s outputs, exactly as scored (the cells of each column)."""
        return (
            None if self.labels is None else self.labels[index],
            None if self.values is None else self.values[index],
            None if self.probabilities is None else self.probabilities[index],
            None if self.confidences is None else self.confidences[index],
            self.finite[index],
        )

    @classmethod
    def of_rows(cls, rows: Sequence[RowScore], classes: tuple[str, ...] | None) -> Scores:
        """Scores put together from rows of one version (every row has the same columns)."""
        labels = _cells(rows, 0)
        return cls(
            labels=labels,
            values=_cells(rows, 1),
            probabilities=_cells(rows, 2),
            confidences=_cells(rows, 3),
            classes=None if labels is None else classes,
            finite=[row[4] for row in rows],
        )

    def output(self, row: int) -> ModelOutput:
        probabilities = self.probabilities[row] if self.probabilities is not None else None
        return ModelOutput(
            label=self.labels[row] if self.labels is not None else None,
            value=self.values[row] if self.values is not None else None,
            probabilities=tuple(zip(self.classes or (), probabilities, strict=True))
            if probabilities is not None
            else None,
            confidence=self.confidences[row] if self.confidences is not None else None,
        )

    def outputs(self) -> list[ModelOutput]:
        return [self.output(row) for row in range(len(self))]


def _cells(rows: Sequence[RowScore], index: int) -> list[Any] | None:
    """Column `index` of the rows; None when the version's outputs have no such column."""
    return None if rows[0][index] is None else [row[index] for row in rows]


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
        self._names = [spec.name for spec in self.signature]
        self.labels = self._resolve_labels(labels)
        n_jobs = {
            name: 1
            for name in estimator.get_params(deep=True)
            if name == "n_jobs" or name.endswith("__n_jobs")
        }
        if n_jobs:
            estimator.set_params(**n_jobs)

    def predict(self, rows: Sequence[Mapping[str, object]]) -> list[ModelOutput]:
        """Score all rows with one call to the estimator, one output per row."""
        return self.score(rows).outputs()

    def score(
        self, rows: Sequence[Mapping[str, object]], matrix: np.ndarray | None = None
    ) -> Scores:
        """Score all rows with one call to the estimator, column by column (no per-row
        objects: the prediction pipeline scores thousands of rows at a time). `matrix`, when
        given, is the rows already as the estimator's float matrix (see `number_matrix`).
        Overflow in the estimator is not warned about: `Scores.finite` reports it, row by row."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._score(rows, matrix)

    def _score(self, rows: Sequence[Mapping[str, object]], matrix: np.ndarray | None) -> Scores:
        if not rows:
            empty: list[str] | None = None if self.labels is None else []
            return Scores(empty, [] if self.labels is None else None, None, None, None, [])
        if matrix is None:
            matrix = self.matrix(rows)
        if self.labels is None:
            values = np.asarray(self.estimator.predict(matrix), dtype=np.float64)
            if values.size != len(matrix):
                raise ValueError("only single-output regressors are supported")
            values = values.ravel()
            return Scores(None, values.tolist(), None, None, None, np.isfinite(values).tolist())
        labels = np.asarray(self.labels, dtype=object)
        if not hasattr(self.estimator, "predict_proba"):
            index = {cls: i for i, cls in enumerate(self.estimator.classes_.tolist())}
            predicted = [index[cls] for cls in self.estimator.predict(matrix).tolist()]
            return Scores(
                labels[predicted].tolist(), None, None, None, self.labels, [True] * len(rows)
            )
        probabilities = np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)
        best = probabilities.argmax(axis=1)
        return Scores(
            labels=labels[best].tolist(),
            values=None,
            probabilities=probabilities.tolist(),
            confidences=probabilities[np.arange(len(best)), best].tolist(),
            classes=self.labels,
            finite=np.all(np.isfinite(probabilities), axis=1).tolist(),
        )

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

    def matrix(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """A 2-D array with one column per feature, in signature order: what the estimator
        is given (float64 when every feature is numeric, else objects)."""
        numbers = all(spec.type in _NUMBERS for spec in self.signature)
        if numbers and (matrix := number_matrix(rows, self._names)) is not None:
            return matrix
        known = set(self._names)
        numeric = all(spec.type in _NUMERIC for spec in self.signature)
        cells = []
        for number, row in enumerate(rows):
            if not known.issuperset(row):
                unknown = sorted(set(row) - known)
                raise ValueError(f"row {number}: unknown feature(s) {', '.join(unknown)}")
            cells.append([_cell(spec, row.get(spec.name), number) for spec in self.signature])
        return np.array(cells, dtype=np.float64 if numeric else object)


def number_matrix(rows: Sequence[Any], names: Sequence[str]) -> np.ndarray | None:
    """The rows as a float matrix, one column per name in order, when every row is a dict with
    exactly these keys and every value an int or a float (not a bool); None otherwise. The
    common case of scoring and bulk validation, without a call per cell."""
    expected = set(names)
    if not all(type(row) is dict and row.keys() == expected for row in rows):
        return None
    values = [[row[name] for name in names] for row in rows]
    if not {type(value) for row in values for value in row} <= {int, float}:
        return None
    try:
        return np.array(values, dtype=np.float64).reshape(len(rows), len(names))
    except OverflowError:
        return None


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
        if type(value) is float or type(value) is int:  # the common case, without ABC checks
            return float(value)
        if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
            raise ValueError(f"row {row}: feature {spec.name!r} expects a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"row {row}: feature {spec.name!r} expects a string")
    return value
