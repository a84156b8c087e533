"""Validation of one instance's features against a version's input signature."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelql.models.predictor import number_matrix
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services.errors import ErrorCode, FieldProblem


@dataclass
class ValidatedInstance:
    """The features to score, in signature order, or the problems that prevent scoring."""

    features: dict[str, Any] = field(default_factory=dict)
    problems: list[FieldProblem] = field(default_factory=list)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(spec: FeatureSpec) -> str:
    if spec.type is FeatureType.CATEGORY and spec.allowed_values:
        return f"one of {', '.join(repr(value) for value in spec.allowed_values)}"
    description = {
        FeatureType.NUMBER: "a finite number",
        FeatureType.INTEGER: "a whole number",
        FeatureType.BOOLEAN: "true or false",
        FeatureType.CATEGORY: "a string",
        FeatureType.TEXT: "a string",
    }[spec.type]
    if spec.minimum is not None and spec.maximum is not None:
        description += f" (training data ranged from {spec.minimum:g} to {spec.maximum:g})"
    return description


def _check_value(spec: FeatureSpec, value: Any) -> str | None:
    """Why `value` does not fit `spec`, or None when it does."""
    if spec.type in (FeatureType.NUMBER, FeatureType.INTEGER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "wrong type"
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            return "not finite"
        if spec.type is FeatureType.INTEGER and isinstance(value, float) and not value.is_integer():
            return "not whole"
        return None
    if spec.type is FeatureType.BOOLEAN:
        return None if isinstance(value, bool) else "wrong type"
    if not isinstance(value, str):
        return "wrong type"
    if "\x00" in value:
        return "NUL character"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "not UTF-8"
    if spec.type is FeatureType.CATEGORY and spec.allowed_values:
        return None if value in spec.allowed_values else "not allowed"
    return None


def _storable(value: Any) -> Any:
    """An integer past 64 bits as the float the model scores: JSON storage takes 64 bits."""
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


def validate_instance(
    features: Any, signature: Sequence[FeatureSpec], path: tuple[str, ...]
) -> ValidatedInstance:
    """Check every feature of one instance; report every problem, each with its input path."""
    result = ValidatedInstance()
    if not isinstance(features, dict):
        names = ", ".join(spec.name for spec in signature)
        result.problems.append(
            FieldProblem(
                path,
                ErrorCode.INVALID_FEATURES,
                f"Expected an object mapping feature names ({names}) to values, "
                f"got {_json_type(features)}.",
            )
        )
        return result
    known = {spec.name for spec in signature}
    for name in features:
        if name not in known:
            result.problems.append(
                FieldProblem(
                    (*path, str(name)),
                    ErrorCode.INVALID_FEATURES,
                    f"Unknown feature {name!r}; the model expects: "
                    f"{', '.join(spec.name for spec in signature)}.",
                )
            )
    for spec in signature:
        feature_path = (*path, spec.name)
        if spec.name not in features:
            if spec.required:
                result.problems.append(
                    FieldProblem(
                        feature_path,
                        ErrorCode.INVALID_FEATURES,
                        f"Missing required feature {spec.name!r}: expected {_expected(spec)}.",
                    )
                )
            continue
        value = features[spec.name]
        reason = _check_value(spec, value)
        if reason is None:
            result.features[spec.name] = _storable(value)
            continue
        problem = {
            "not finite": "got a value that is not finite",
            "not allowed": f"got {value!r}, which the model was not trained on",
            "NUL character": "got a string containing a NUL character",
            "not UTF-8": "got a string with an unpaired surrogate (not valid UTF-8)",
        }.get(reason, f"got {_json_type(value)}")
        result.problems.append(
            FieldProblem(
                feature_path,
                ErrorCode.INVALID_FEATURES,
                f"Feature {spec.name!r} expects {_expected(spec)}; {problem}.",
            )
        )
    return result


_NUMERIC = (FeatureType.NUMBER, FeatureType.INTEGER)


@dataclass(frozen=True, slots=True)
class CheckedRows:
    """Rows that passed bulk validation, and the same rows as the estimator's float matrix
    (one column per feature, in signature order), built once for validating and scoring."""

    rows: list[dict[str, Any]]
    matrix: np.ndarray


def matrix_passes(matrix: np.ndarray, signature: Sequence[FeatureSpec]) -> bool:
    """Whether every value of a numeric signature's matrix (one column per feature, in
    signature order) is valid: finite, within 64 bits, whole where the feature is an integer."""
    if not np.isfinite(matrix).all() or (np.abs(matrix) >= 2**63).any():
        return False
    whole = [index for index, spec in enumerate(signature) if spec.type is FeatureType.INTEGER]
    return not whole or bool((matrix[:, whole] == np.floor(matrix[:, whole])).all())


def rows_checked_in_bulk(
    instances: Sequence[Any], signature: Sequence[FeatureSpec]
) -> CheckedRows | None:
    """The rows to score, when a numeric signature's instances all pass in bulk: objects
    with exactly its features, every value a finite number, whole where it must be. None
    when anything may be wrong: then `validate_instance` checks each one and names each
    problem. The same rows as `validate_instance` gives (the instances themselves when their
    features are already in signature order), at a fraction of its cost."""
    if not signature or any(spec.type not in _NUMERIC for spec in signature):
        return None
    names = [spec.name for spec in signature]
    matrix = number_matrix(instances, names)
    if matrix is None or not matrix_passes(matrix, signature):
        return None
    if all(list(instance) == names for instance in instances):
        return CheckedRows(list(instances), matrix)  # features already in signature order
    return CheckedRows([{name: instance[name] for name in names} for instance in instances], matrix)
