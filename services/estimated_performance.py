"""The ESTIMATED split: a classifier's performance estimated before labels arrive (CBPE).
Probabilities are calibrated on a labelled reference window; the expected confusion matrix of
the analysed predictions gives the LIVE metrics' names and definitions; where outcomes exist,
the realised metrics and the gap (realised minus estimated) come beside them, per period."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.models.estimation import (
    Calibrator,
    Matrix,
    expected_confusion,
    expected_roc_auc,
    realised_roc_auc,
)
from modelql.models.metrics import PerformanceRecord
from modelql.models.vocabulary import DataSplit
from modelql.persistence.estimation_repository import ScoredRow, analysis_rows, reference_rows
from modelql.persistence.stats_repository import Interval
from modelql.services.catalogue import Catalogue
from modelql.services.live_performance import Confusion, classification, per_class

ESTIMATED = DataSplit.ESTIMATED.value
ROC_AUC_METHOD = "expected"
"""How roc_auc is estimated: analytically, as the area under the ROC curve of expected true
and false positives (no sampling of labels)."""


@dataclass(frozen=True)
class EstimationPolicy:
    """How large the reference window is, how small it may be, and how many predictions an
    estimate reads at most."""

    reference_size: int = 5_000
    min_reference: int = 100
    max_sample: int = 100_000


class Unavailable(StrEnum):
    """Why no estimate could be made."""

    NOT_A_CLASSIFIER = "NOT_A_CLASSIFIER"
    NO_PROBABILITIES = "NO_PROBABILITIES"
    TOO_FEW_REFERENCE_ROWS = "TOO_FEW_REFERENCE_ROWS"


@dataclass(frozen=True)
class Window:
    """[since, until) on the predictions' createdAt; None: unbounded."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EstimatedPeriod:
    """Estimated metrics of the predictions of one period (or of the whole window, bucket
    None), and where some have outcomes the realised metrics and the gap (realised minus
    estimated)."""

    bucket: datetime | None
    count: int
    labelled: int
    estimated: dict[str, float]
    realised: dict[str, float]
    gap: dict[str, float]


@dataclass(frozen=True)
class Estimate:
    """The estimate of one version over one window, or the reason there is none."""

    unavailable: Unavailable | None
    reference_size: int
    sample_size: int
    records: list[PerformanceRecord]
    """ESTIMATED "overall" and "class:<label>" records (numSamples: predictions estimated)."""
    overall: EstimatedPeriod | None
    periods: list[EstimatedPeriod]


@dataclass(frozen=True)
class EstimateRequest:
    """What to estimate: the analysed window, the reference window and the period length."""

    window: Window = Window()
    reference: Window = Window()
    interval: Interval = Interval.DAY


def _unavailable(reason: Unavailable, reference_size: int = 0) -> Estimate:
    return Estimate(reason, reference_size, 0, [], None, [])


async def estimate(
    session: AsyncSession,
    catalogue: Catalogue,
    version_id: uuid.UUID,
    request: EstimateRequest,
    policy: EstimationPolicy,
) -> Estimate:
    """Calibrate on the version's `policy.reference_size` most recent labelled predictions of
    the reference window, then estimate over its `policy.max_sample` most recent predictions
    of the analysed window (two statements)."""
    version = (await catalogue.versions(session, [version_id]))[version_id]
    if version.labels is None:
        return _unavailable(Unavailable.NOT_A_CLASSIFIER)
    labels = version.labels
    reference = _scored(
        await reference_rows(
            session,
            version_id,
            since=request.reference.since,
            until=request.reference.until,
            limit=policy.reference_size,
        ),
        labels,
    )
    if len(reference.rows) < policy.min_reference:
        reason = Unavailable.TOO_FEW_REFERENCE_ROWS
        if reference.without_probabilities and not reference.rows:
            reason = Unavailable.NO_PROBABILITIES
        return _unavailable(reason, len(reference.rows))
    calibrator = Calibrator.fit(
        reference.probabilities, [-1 if o is None else o for o in reference.observed]
    )
    analysed = _scored(
        await analysis_rows(
            session,
            version_id,
            since=request.window.since,
            until=request.window.until,
            interval=request.interval,
            limit=policy.max_sample,
        ),
        labels,
    )
    calibrated = calibrator.calibrate(analysed.probabilities)
    overall = _period(None, analysed, calibrated, range(len(analysed.rows)), labels)
    by_bucket: dict[datetime, list[int]] = defaultdict(list)
    for position, row in enumerate(analysed.rows):
        by_bucket[row.bucket].append(position)
    periods = [
        _period(bucket, analysed, calibrated, by_bucket[bucket], labels)
        for bucket in sorted(by_bucket)
    ]
    records: list[PerformanceRecord] = []
    if analysed.rows:
        count = len(analysed.rows)
        confusion = _named(expected_confusion(analysed.predicted, calibrated), labels)
        records = [PerformanceRecord(ESTIMATED, "overall", count, overall.estimated)]
        records += per_class(confusion, labels, ESTIMATED)
    return Estimate(None, len(reference.rows), len(analysed.rows), records, overall, periods)


@dataclass(frozen=True)
class _Scored:
    """Rows with usable probabilities, as arrays in the version's label order."""

    rows: list[ScoredRow]
    probabilities: Matrix
    predicted: list[int]
    observed: list[int | None]
    without_probabilities: int


def _scored(rows: Sequence[ScoredRow], labels: Sequence[str]) -> _Scored:
    position = {label: index for index, label in enumerate(labels)}
    ordered = list(labels)
    kept: list[ScoredRow] = []
    vectors: list[list[float]] = []
    for row in rows:
        vector = _vector(row.probabilities, ordered)
        if vector is not None and row.predicted in position:
            kept.append(row)
            vectors.append(vector)
    matrix = np.array(vectors, dtype=np.float64).reshape(len(vectors), len(labels))
    return _Scored(
        rows=kept,
        probabilities=matrix,
        predicted=[position[str(row.predicted)] for row in kept],
        observed=[position.get(row.observed) if row.observed else None for row in kept],
        without_probabilities=len(rows) - len(kept),
    )


def _vector(stored: list[dict[str, Any]] | None, labels: list[str]) -> list[float] | None:
    """The stored probabilities in the order of `labels`; None unless exactly those labels."""
    if not stored or len(stored) != len(labels):
        return None
    if [item["label"] for item in stored] == labels:  # stored in label order: the usual case
        return [float(item["probability"]) for item in stored]
    found = {item["label"]: item["probability"] for item in stored}
    return [float(found[label]) for label in labels] if set(found) == set(labels) else None


def _named(matrix: Matrix, labels: Sequence[str]) -> Confusion:
    """A confusion matrix as LIVE's (predicted, observed) -> count, without empty cells."""
    return {
        (labels[p], labels[o]): float(matrix[p, o])
        for p in range(len(labels))
        for o in range(len(labels))
        if matrix[p, o] > 0
    }


def _period(
    bucket: datetime | None,
    analysed: _Scored,
    calibrated: Matrix,
    positions: Sequence[int],
    labels: Sequence[str],
) -> EstimatedPeriod:
    chosen = np.asarray(positions, dtype=np.intp)
    predicted = [analysed.predicted[p] for p in positions]
    estimated: dict[str, float] = {}
    if len(positions):
        estimated = classification(
            _named(expected_confusion(predicted, calibrated[chosen]), labels)
        )
        auc = expected_roc_auc(analysed.probabilities[chosen], calibrated[chosen])
        if auc is not None:
            estimated["roc_auc"] = auc
    labelled = [p for p in positions if analysed.observed[p] is not None]
    realised: dict[str, float] = {}
    if labelled:
        confusion: Confusion = defaultdict(float)
        observed = [int(analysed.observed[p] or 0) for p in labelled]
        for p, o in zip(labelled, observed, strict=True):
            confusion[(labels[analysed.predicted[p]], labels[o])] += 1
        realised = classification(confusion)
        auc = realised_roc_auc(analysed.probabilities[np.asarray(labelled)], observed)
        if auc is not None:
            realised["roc_auc"] = auc
    gap = {name: realised[name] - estimated[name] for name in realised if name in estimated}
    return EstimatedPeriod(bucket, len(positions), len(labelled), estimated, realised, gap)
