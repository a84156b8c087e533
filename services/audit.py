"""Audit use-cases over stored predictions: filtered keyset pages, look-ups and statistics
(overall and grouped, from the hourly roll-ups when the filter allows)."""

from __future__ import annotations

from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.prediction_repository import Keyset, list_predictions, predictions_by_id
from modelql.persistence.stats_repository import (
    Dimension,
    Group,
    Interval,
    Totals,
    groups,
    label_counts,
    p95_latency,
    totals,
)

__all__ = [
    "Dimension",
    "Group",
    "Interval",
    "Keyset",
    "PredictionQuery",
    "Totals",
    "groups",
    "label_counts",
    "list_predictions",
    "p95_latency",
    "predictions_by_id",
    "totals",
]
