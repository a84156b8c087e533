"""Performance records of a model version on one data split, overall, per class and per slice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    root_mean_squared_error,
)

from modelql.models.vocabulary import STORED_SPLITS

SPLITS = STORED_SPLITS
MIN_SLICE_SAMPLES = 2


@dataclass(frozen=True)
class PerformanceRecord:
    """Metrics of one split ("TRAIN", "VALIDATION", "TEST") on one slice of it."""

    split: str
    slice: str
    num_samples: int
    metrics: dict[str, float]


def classification_records(
    split: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[object],
    labels: Sequence[str],
    slices: Mapping[str, np.ndarray] | None = None,
) -> list[PerformanceRecord]:
    """Overall, per-class ("class:<label>") and named-slice records; labels[i] names classes[i]."""
    _check_split(split)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    records = [PerformanceRecord(split, "overall", len(y_true), _classification(y_true, y_pred))]
    per_class = precision_recall_fscore_support(
        y_true, y_pred, labels=np.asarray(classes), zero_division=0
    )
    # Without `average`, each is an array (by class); the stubs also allow floats and None.
    precision, recall, f1, support = (np.asarray(column) for column in per_class)
    for index, label in enumerate(labels):
        metrics = {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": float(support[index]),
        }
        records.append(PerformanceRecord(split, f"class:{label}", int(support[index]), metrics))
    for name, mask in _usable_slices(slices, len(y_true)):
        metrics = _classification(y_true[mask], y_pred[mask])
        records.append(PerformanceRecord(split, name, int(mask.sum()), metrics))
    return records


def regression_records(
    split: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    slices: Mapping[str, np.ndarray] | None = None,
) -> list[PerformanceRecord]:
    """Overall and named-slice records with rmse, mae and r2."""
    _check_split(split)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    records = [PerformanceRecord(split, "overall", len(y_true), _regression(y_true, y_pred))]
    for name, mask in _usable_slices(slices, len(y_true)):
        metrics = _regression(y_true[mask], y_pred[mask])
        records.append(PerformanceRecord(split, name, int(mask.sum()), metrics))
    return records


def overall_metrics(
    classification: bool, y_true: Sequence[object], y_pred: Sequence[object]
) -> dict[str, float]:
    """The metrics of an "overall" record, for predictions compared with their outcomes."""
    truths, answers = np.asarray(y_true), np.asarray(y_pred)
    return _classification(truths, answers) if classification else _regression(truths, answers)


def _classification(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy plus macro and weighted precision, recall and f1 over the labels present."""
    metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    return metrics


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Root mean squared error, mean absolute error and r2."""
    return {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def _usable_slices(
    slices: Mapping[str, np.ndarray] | None, num_samples: int
) -> list[tuple[str, np.ndarray]]:
    """Named boolean masks with at least MIN_SLICE_SAMPLES rows."""
    usable = []
    for name, raw_mask in (slices or {}).items():
        if name == "overall" or name.startswith("class:"):
            raise ValueError(f"slice name {name!r} is reserved")
        mask = np.asarray(raw_mask, dtype=bool)
        if mask.shape != (num_samples,):
            raise ValueError(f"slice {name!r} mask has shape {mask.shape}, expected {num_samples}")
        if mask.sum() >= MIN_SLICE_SAMPLES:
            usable.append((name, mask))
    return usable


def _check_split(split: str) -> None:
    """Refuse a split name outside SPLITS."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
