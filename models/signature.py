"""Input signatures: the typed features a model version expects."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelql.models.vocabulary import FeatureType

_KEYS = frozenset(
    {"name", "type", "required", "description", "minimum", "maximum", "allowed_values"}
)


_TYPES = frozenset(member.value for member in FeatureType)


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature of a model version."""

    name: str
    type: FeatureType
    required: bool = True
    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form of this spec."""
        return {
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
            "description": self.description,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "allowed_values": None if self.allowed_values is None else list(self.allowed_values),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Parse and validate the output of `to_json`; raise ValueError naming a bad key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"feature spec must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ValueError(f"feature spec has unknown key(s): {', '.join(map(str, unknown))}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("feature spec key 'name' must be a non-empty string")
        raw_type = data.get("type")
        if not isinstance(raw_type, str) or raw_type not in _TYPES:
            choices = ", ".join(sorted(_TYPES))
            raise ValueError(
                f"feature {name!r}: key 'type' must be one of {choices}, got {raw_type!r}"
            )
        required = data.get("required", True)
        if not isinstance(required, bool):
            raise ValueError(f"feature {name!r}: key 'required' must be a boolean")
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise ValueError(f"feature {name!r}: key 'description' must be a string or null")
        minimum = _bound(data, "minimum", name)
        maximum = _bound(data, "maximum", name)
        if minimum is not None and maximum is not None and minimum > maximum:
            raise ValueError(f"feature {name!r}: key 'minimum' is greater than key 'maximum'")
        return cls(
            name=name,
            type=FeatureType(raw_type),
            required=required,
            description=description,
            minimum=minimum,
            maximum=maximum,
            allowed_values=_allowed_values(data, name),
        )


def _bound(data: Mapping[str, Any], key: str, name: str) -> float | None:
    """A finite numeric bound, or None."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"feature {name!r}: key {key!r} must be a finite number or null")
    return float(value)


def _allowed_values(data: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    """The allowed values as a tuple of strings, or None."""
    values = data.get("allowed_values")
    if values is None:
        return None
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"feature {name!r}: key 'allowed_values' must be a list of strings")
    return tuple(values)


def infer_signature(
    feature_names: Sequence[str],
    X: np.ndarray,  # noqa: N803 - the scikit-learn convention
    descriptions: Mapping[str, str] | None = None,
) -> list[FeatureSpec]:
    """Numeric specs for the columns of X: INTEGER when every value is integral, else NUMBER."""
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise ValueError(
            f"X has shape {matrix.shape}, expected 2-D with {len(feature_names)} columns"
        )
    descriptions = descriptions or {}
    specs = []
    for index, name in enumerate(feature_names):
        column = matrix[:, index]
        seen = column[np.isfinite(column)]
        integral = seen.size > 0 and bool(np.all(seen == np.round(seen)))
        specs.append(
            FeatureSpec(
                name=name,
                type=FeatureType.INTEGER if integral else FeatureType.NUMBER,
                description=descriptions.get(name),
                minimum=float(seen.min()) if seen.size else None,
                maximum=float(seen.max()) if seen.size else None,
            )
        )
    return specs
