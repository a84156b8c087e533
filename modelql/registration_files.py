"""Reading the JSON files `modelql register` accepts, and describing an artifact."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import sklearn
from sklearn.base import is_classifier

from modelql.models.metrics import PerformanceRecord
from modelql.models.predictor import Predictor
from modelql.models.profile import ReferenceProfile, build_profile
from modelql.models.signature import FeatureSpec
from modelql.models.training import algorithm_of
from modelql.models.vocabulary import FeatureType
from modelql.services.errors import RegistrationError
from modelql.services.registration import VersionRegistration


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


def read_reference(
    path: Path, registration: VersionRegistration, estimator: Any
) -> ReferenceProfile:
    """The profile of a CSV of reference (training) inputs, one column per signature feature,
    and of the estimator's outputs on them."""
    try:
        with path.open(newline="") as handle:
            rows = [
                {
                    spec.name: _csv_value(spec, record.get(spec.name))
                    for spec in registration.signature
                }
                for record in csv.DictReader(handle)
            ]
    except (OSError, ValueError, csv.Error) as error:
        raise RegistrationError(f"{path}: {error}") from error
    if not rows:
        raise RegistrationError(f"{path}: no rows of reference data.")
    present = [{name: value for name, value in row.items() if value is not None} for row in rows]
    try:
        outputs = Predictor(estimator, registration.signature, registration.labels).predict(present)
    except ValueError as error:
        raise RegistrationError(f"{path}: the model cannot score these rows ({error}).") from error
    return build_profile(
        registration.signature,
        rows,
        [output.label if output.label is not None else output.value for output in outputs],
        classification=registration.labels is not None,
    )


def _csv_value(spec: FeatureSpec, text: str | None) -> Any:
    """A CSV cell as the feature's type; None for an empty or absent cell."""
    if text is None or text == "":
        return None
    if spec.type in (FeatureType.NUMBER, FeatureType.INTEGER):
        return float(text)
    if spec.type is FeatureType.BOOLEAN:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"feature {spec.name!r} expects true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return text
