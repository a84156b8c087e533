"""Performance records: overall, per class and per named slice, as plain floats."""

from __future__ import annotations

import numpy as np
import pytest

from modelql.models.metrics import PerformanceRecord, classification_records, regression_records

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 0])


def test_classification_records_overall_then_one_per_class() -> None:
    records = classification_records("TEST", Y_TRUE, Y_PRED, [0, 1, 2], ["a", "b", "c"])

    assert [(r.slice, r.num_samples) for r in records] == [
        ("overall", 6),
        ("class:a", 3),
        ("class:b", 2),
        ("class:c", 1),
    ]
    overall = records[0].metrics
    assert set(overall) == {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
    }
    assert overall["accuracy"] == pytest.approx(4 / 6)
    assert overall["recall_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert records[1].metrics == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3.0}
    )
    assert records[3].metrics == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0}


def test_named_slices_get_overall_metrics_and_tiny_slices_are_skipped() -> None:
    slices = {"first_half": np.arange(6) < 3, "single_row": np.arange(6) == 5}

    records = classification_records("TRAIN", Y_TRUE, Y_PRED, [0, 1, 2], ["a", "b", "c"], slices)

    (first_half,) = [r for r in records if r.slice not in {"overall"} and ":" not in r.slice]
    assert first_half.slice == "first_half"
    assert first_half.num_samples == 3
    assert first_half.metrics["accuracy"] == pytest.approx(2 / 3)


def test_regression_records_rmse_mae_r2() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.0, 2.0, 3.0, 6.0])

    (overall, upper) = regression_records("VALIDATION", y_true, y_pred, {"upper": y_true >= 3})

    assert overall == PerformanceRecord(
        "VALIDATION", "overall", 4, {"rmse": 1.0, "mae": 0.5, "r2": pytest.approx(0.2)}
    )
    assert upper.slice == "upper"
    assert upper.metrics["mae"] == 1.0


def test_every_value_is_a_python_float() -> None:
    records = classification_records("TEST", Y_TRUE, Y_PRED, [0, 1, 2], ["a", "b", "c"])
    records += regression_records("TEST", Y_TRUE.astype(float), Y_PRED.astype(float))

    assert all(type(v) is float for r in records for v in r.metrics.values())
    assert all(type(r.num_samples) is int for r in records)


def test_unknown_split_and_reserved_slice_names_are_refused() -> None:
    with pytest.raises(ValueError, match="split"):
        regression_records("HOLDOUT", Y_TRUE, Y_PRED)
    with pytest.raises(ValueError, match="reserved"):
        regression_records("TEST", Y_TRUE, Y_PRED, {"overall": Y_TRUE > 0})
