"""The LIVE split: a version's metrics computed from its stored predictions that have an
outcome, with the names and slices of the offline splits. PostgreSQL counts (predicted,
observed) pairs and sums errors; the metrics follow from those counts as scikit-learn's do."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelql.models.metrics import MIN_SLICE_SAMPLES, PerformanceRecord
from modelql.models.vocabulary import DataSplit
from modelql.persistence.live_repository import PairCount, pair_counts
from modelql.services.catalogue import Catalogue, Version

LIVE = DataSplit.LIVE.value


async def live_performance(
    session: AsyncSession,
    catalogue: Catalogue,
    version_ids: Sequence[uuid.UUID],
    *,
    since: datetime | None,
    until: datetime | None,
    named_slices: bool,
) -> dict[uuid.UUID, list[PerformanceRecord]]:
    """LIVE records of each version (none without labelled predictions), in one statement."""
    counts = await pair_counts(
        session, version_ids, since=since, until=until, named_slices=named_slices
    )
    versions = await catalogue.versions(session, list(counts))
    return {
        version_id: records(versions[version_id], pairs) for version_id, pairs in counts.items()
    }


def records(version: Version, pairs: Iterable[PairCount]) -> list[PerformanceRecord]:
    """ "overall", then per class (classification), then the named slices."""
    by_slice: dict[str, list[PairCount]] = defaultdict(list)
    for pair in pairs:
        by_slice[pair.slice].append(pair)
    found: list[PerformanceRecord] = []
    for name in sorted(by_slice, key=lambda name: (name != "overall", name)):
        slice_pairs = by_slice[name]
        count = sum(pair.count for pair in slice_pairs)
        if name != "overall" and count < MIN_SLICE_SAMPLES:
            continue
        if version.labels is None:
            found.append(PerformanceRecord(LIVE, name, count, regression(slice_pairs)))
            continue
        confusion: Confusion = {(pair.predicted, pair.observed): pair.count for pair in slice_pairs}
        found.append(PerformanceRecord(LIVE, name, count, classification(confusion)))
        if name == "overall":
            found += per_class(confusion, version.labels)
    return found


Confusion = dict[tuple[str | None, str | None], float]
"""(predicted label, observed label) -> number of predictions (expected, for ESTIMATED)."""


def _per_label(confusion: Confusion, label: str) -> tuple[float, float, float]:
    """(true positives, predicted as the label, observed as the label)."""
    true_positives = confusion.get((label, label), 0)
    predicted = sum(n for (p, _), n in confusion.items() if p == label)
    observed = sum(n for (_, o), n in confusion.items() if o == label)
    return true_positives, predicted, observed


def _scores(true_positives: float, predicted: float, observed: float) -> tuple[float, float, float]:
    """Precision, recall and f1, 0 where undefined (scikit-learn's zero_division=0)."""
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / observed if observed else 0.0
    f1 = 2 * true_positives / (predicted + observed) if predicted + observed else 0.0
    return precision, recall, f1


def classification(confusion: Confusion) -> dict[str, float]:
    """Accuracy plus macro and weighted precision, recall and f1 over the labels present
    (predicted or observed), like scikit-learn's functions without `labels`."""
    total = sum(confusion.values())
    present = sorted({label for pair in confusion for label in pair if label is not None})
    metrics = {"accuracy": sum(confusion.get((label, label), 0) for label in present) / total}
    scored = [(_scores(*_per_label(confusion, label)), _per_label(confusion, label)[2])
              for label in present]  # fmt: skip
    for position, name in enumerate(("precision", "recall", "f1")):
        values = [score[position] for score, _ in scored]
        metrics[f"{name}_macro"] = sum(values) / len(values)
        metrics[f"{name}_weighted"] = sum(
            score[position] * support for score, support in scored
        ) / sum(support for _, support in scored)
    return metrics


def per_class(
    confusion: Confusion, labels: Sequence[str], split: str = LIVE
) -> list[PerformanceRecord]:
    """One "class:<label>" record per label of the version, as in training."""
    found = []
    for label in labels:
        true_positives, predicted, observed = _per_label(confusion, label)
        precision, recall, f1 = _scores(true_positives, predicted, observed)
        metrics = {"precision": precision, "recall": recall, "f1": f1, "support": float(observed)}
        found.append(PerformanceRecord(split, f"class:{label}", round(observed), metrics))
    return found


def regression(pairs: Sequence[PairCount]) -> dict[str, float]:
    """rmse, mae and r2 (r2 from two samples on, 1 or 0 for constant truth, as scikit-learn)."""
    count = sum(pair.count for pair in pairs)
    squared = sum(pair.squared_error or 0.0 for pair in pairs)
    metrics = {
        "rmse": math.sqrt(squared / count),
        "mae": sum(pair.absolute_error or 0.0 for pair in pairs) / count,
    }
    if count >= MIN_SLICE_SAMPLES:
        variance = sum(pair.total_variance or 0.0 for pair in pairs)
        metrics["r2"] = 1 - squared / variance if variance else float(squared == 0)
    return metrics
