"""Reading the JSON files `modelql register` accepts, and describing an artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sklearn
from sklearn.base import is_classifier

from models.metrics import PerformanceRecord
from models.signature import FeatureSpec, FeatureType
from models.training import algorithm_of
from services.errors import RegistrationError
from services.registration import VersionRegistration


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RegistrationError(f"Cannot read {path} as JSON: {error}") from error


def read_metrics(path: Path) -> list[PerformanceRecord]:
    """`[{"split": "TEST", "slice": "overall", "num_samples": 30, "metrics": {"accuracy": 0.9}}]`"""
    data = _read_json(path)
    if not isinstance(data, list):
        raise RegistrationError(f"{path}: expected a list of performance records.")
    records = []
    for index, item in enumerate(data):
        try:
            metrics = {str(name): float(value) for name, value in item["metrics"].items()}
            records.append(
                PerformanceRecord(
                    split=str(item["split"]).upper(),
                    slice=str(item.get("slice", "overall")),
                    num_samples=int(item["num_samples"]),
                    metrics=metrics,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RegistrationError(
                f"{path}: record {index} needs split, num_samples and a metrics object "
                f"of numbers ({error!r})."
            ) from error
    return records


def read_arguments(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`{"hyperparameters": {...}, "data": {...}}`: two objects of JSON values."""
    data = _read_json(path)
    if not isinstance(data, dict) or set(data) - {"hyperparameters", "data"}:
        raise RegistrationError(f"{path}: expected an object with 'hyperparameters' and 'data'.")
    hyperparameters, data_arguments = data.get("hyperparameters", {}), data.get("data", {})
    if not isinstance(hyperparameters, dict) or not isinstance(data_arguments, dict):
        raise RegistrationError(f"{path}: 'hyperparameters' and 'data' must be objects.")
    return hyperparameters, data_arguments


def read_signature(path: Path) -> list[FeatureSpec]:
    """`[{"name": "x", "type": "NUMBER", "minimum": 0, "maximum": 1}, ...]` in model order."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise RegistrationError(f"{path}: expected a list of features in model order.")
    try:
        return [FeatureSpec.from_json(item) for item in data]
    except (ValueError, TypeError, AttributeError) as error:
        raise RegistrationError(f"{path}: {error}") from error


def describe_estimator(
    estimator: Any, *, model_name: str, signature: list[FeatureSpec] | None
) -> VersionRegistration:
    """What can be read off a fitted scikit-learn estimator itself."""
    if not hasattr(estimator, "predict"):
        raise RegistrationError("The artifact is not a fitted estimator with a predict method.")
    if signature is None:
        names = getattr(estimator, "feature_names_in_", None)
        if names is None:
            raise RegistrationError(
                "The estimator does not record its feature names; pass --signature FILE."
            )
        signature = [FeatureSpec(name=str(name), type=FeatureType.NUMBER) for name in names]
    classifier = is_classifier(estimator)
    return VersionRegistration(
        model_name=model_name,
        task="CLASSIFICATION" if classifier else "REGRESSION",
        algorithm=algorithm_of(estimator),
        framework_version=sklearn.__version__,
        signature=signature,
        labels=[str(label) for label in estimator.classes_] if classifier else None,
    )
