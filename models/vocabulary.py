"""The words every layer shares: model tasks, data splits and feature types, defined once.

Registration, metrics, the database's CHECK constraints and the GraphQL enums all use these."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """What a model predicts: a class label or a number."""

    CLASSIFICATION = "CLASSIFICATION"
    REGRESSION = "REGRESSION"


class DataSplit(StrEnum):
    """The part of the data a metric was measured on."""

    TRAIN = "TRAIN"
    VALIDATION = "VALIDATION"
    TEST = "TEST"
    LIVE = "LIVE"
    """Computed from stored predictions and their recorded outcomes; never registered."""
    ESTIMATED = "ESTIMATED"
    """Estimated from stored predictions' calibrated probabilities, before outcomes arrive
    (classifiers with probabilities; never registered)."""


STORED_SPLITS: tuple[DataSplit, ...] = (DataSplit.TRAIN, DataSplit.VALIDATION, DataSplit.TEST)
"""The splits whose metrics are measured offline and registered with a version."""


class FeatureType(StrEnum):
    """The kind of value a feature holds."""

    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    CATEGORY = "CATEGORY"
    TEXT = "TEXT"


class RoutingReason(StrEnum):
    """Why a version answered a prediction request."""

    VERSION = "VERSION"
    """The request named the version number."""
    ALIAS = "ALIAS"
    """The request named an alias."""
    DEFAULT = "DEFAULT"
    """Neither: the model's default version (alias `production`, else the newest)."""
    SPLIT = "SPLIT"
    """Neither, and the model has a traffic split: drawn by its weights."""


class JobState(StrEnum):
    """Where a prediction job is: waiting for a worker, being worked, or done one way."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class SourceFormat(StrEnum):
    """The file formats a prediction job reads."""

    CSV = "csv"
    PARQUET = "parquet"
