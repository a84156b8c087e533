"""Training one model version: fixed splits, fit, metrics and catalogue metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sklearn
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from modelql.models.metrics import PerformanceRecord, classification_records, regression_records
from modelql.models.profile import ReferenceProfile, build_profile
from modelql.models.signature import FeatureSpec, infer_signature
from modelql.models.vocabulary import Task

TEST_SIZE = 0.2
VALIDATION_SIZE = 0.2
RANDOM_STATE = 42


@dataclass(frozen=True)
class DatasetInfo:
    """Where a version's training data came from and how much of it was used."""

    name: str
    source: str | None
    num_train_samples: int | None
    num_test_samples: int | None


@dataclass(frozen=True)
class Dataset:
    """A numeric tabular dataset; for classification, labels[c] names class value c."""

    name: str
    source: str | None
    target: str
    feature_names: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...] | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ThresholdSlice:
    """The rows whose feature is at least `minimum`, named like "petal_length>=4"."""

    feature: str
    minimum: float

    @property
    def name(self) -> str:
        """The slice name used in performance records."""
        return f"{self.feature}>={self.minimum:g}"

    def mask(self, features: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """A boolean mask over the rows of a feature matrix with the given column names."""
        return features[:, list(feature_names).index(self.feature)] >= self.minimum


@dataclass
class TrainedVersion:
    """A fitted estimator plus everything the catalogue records about it."""

    model_name: str
    model_description: str
    task: Task
    tags: list[str]
    estimator: Any
    algorithm: str
    framework_version: str
    description: str
    signature: list[FeatureSpec]
    labels: list[str] | None
    dataset: DatasetInfo
    hyperparameters: dict[str, Any]
    data_arguments: dict[str, Any]
    performance: list[PerformanceRecord]
    trained_at: datetime
    slices: list[ThresholdSlice] = field(default_factory=list)
    reference: ReferenceProfile | None = None
    aliases: list[str] = field(default_factory=list)


def algorithm_of(estimator: Any) -> str:
    """The public class path of the estimator (of a pipeline's final step), e.g.
    "sklearn.linear_model.LogisticRegression"."""
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    cls = type(estimator)
    public = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join([*public, cls.__qualname__])


def json_safe_params(estimator: Any) -> dict[str, Any]:
    """get_params(deep=False) with every value a JSON number, string, bool, null or list."""
    return {name: _json_safe(value) for name, value in estimator.get_params(deep=False).items()}


def _json_safe(value: Any) -> Any:
    """Numbers, strings, booleans and None as they are, sequences as lists, the rest as repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return repr(value)


def train_version(
    *,
    model_name: str,
    model_description: str,
    task: Task,
    tags: Sequence[str],
    dataset: Dataset,
    estimator: Any,
    description: str,
    slices: Sequence[ThresholdSlice] = (),
) -> TrainedVersion:
    """Fit the estimator on the train split and measure it on train, validation and test."""
    classification = task == "CLASSIFICATION"
    class_names = dataset.labels if classification else None
    if classification and class_names is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels for classification")
    rest, test = train_test_split(
        np.arange(len(dataset.y)),
        test_size=TEST_SIZE,
        random_state=RANDOM_STATE,
        stratify=dataset.y if classification else None,
    )
    train, validation = train_test_split(
        rest,
        test_size=VALIDATION_SIZE,
        random_state=RANDOM_STATE,
        stratify=dataset.y[rest] if classification else None,
    )
    estimator.fit(dataset.X[train], dataset.y[train])
    labels = None if class_names is None else [class_names[c] for c in estimator.classes_.tolist()]
    performance = []
    for split, rows in (("TRAIN", train), ("VALIDATION", validation), ("TEST", test)):
        features, y = dataset.X[rows], dataset.y[rows]
        masks = {slice_.name: slice_.mask(features, dataset.feature_names) for slice_ in slices}
        predicted = estimator.predict(features)
        if labels is None:
            performance += regression_records(split, y, predicted, masks)
        else:
            performance += classification_records(
                split, y, predicted, estimator.classes_.tolist(), labels, masks
            )
    signature = infer_signature(dataset.feature_names, dataset.X, dataset.descriptions)
    return TrainedVersion(
        model_name=model_name,
        model_description=model_description,
        task=task,
        tags=list(tags),
        estimator=estimator,
        algorithm=algorithm_of(estimator),
        framework_version=sklearn.__version__,
        description=description,
        signature=signature,
        labels=labels,
        dataset=DatasetInfo(dataset.name, dataset.source, len(train), len(test)),
        hyperparameters=json_safe_params(estimator),
        data_arguments={
            "test_size": TEST_SIZE,
            "validation_size": VALIDATION_SIZE,
            "split_random_state": RANDOM_STATE,
            "stratify": classification,
            "features": list(dataset.feature_names),
            "target": dataset.target,
        },
        performance=performance,
        trained_at=datetime.now(UTC),
        slices=list(slices),
        reference=reference_profile(signature, dataset, train, estimator, labels),
    )


def reference_profile(
    signature: Sequence[FeatureSpec],
    dataset: Dataset,
    rows: np.ndarray,
    estimator: Any,
    labels: Sequence[str] | None,
) -> ReferenceProfile:
    """The profile of the training split's inputs and of the model's outputs on them."""
    features = dataset.X[rows]
    outputs = estimator.predict(features)
    if labels is not None:
        names = dict(zip(estimator.classes_.tolist(), labels, strict=True))
        outputs = [names[output] for output in outputs.tolist()]
    records = [dict(zip(dataset.feature_names, row, strict=True)) for row in features.tolist()]
    return build_profile(signature, records, list(outputs), classification=labels is not None)
