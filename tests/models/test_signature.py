"""Feature specs survive JSON, reject malformed JSON, and can be inferred from data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelql.models.signature import FeatureSpec, infer_signature
from modelql.models.vocabulary import FeatureType

COLOUR = FeatureSpec(
    name="colour",
    type=FeatureType.CATEGORY,
    required=False,
    description="Paint colour",
    allowed_values=("red", "green"),
)
LENGTH = FeatureSpec(name="length", type=FeatureType.NUMBER, minimum=0.5, maximum=7.0)


@pytest.mark.parametrize("spec", [COLOUR, LENGTH, FeatureSpec("flag", FeatureType.BOOLEAN)])
def test_json_round_trip_returns_an_equal_spec(spec: FeatureSpec) -> None:
    assert FeatureSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_to_json_has_every_key_in_plain_json_types() -> None:
    assert COLOUR.to_json() == {
        "name": "colour",
        "type": "CATEGORY",
        "required": False,
        "description": "Paint colour",
        "minimum": None,
        "maximum": None,
        "allowed_values": ["red", "green"],
    }


def test_from_json_defaults_optional_keys() -> None:
    spec = FeatureSpec.from_json({"name": "age", "type": "INTEGER"})
    assert spec == FeatureSpec("age", FeatureType.INTEGER, required=True)


@pytest.mark.parametrize(
    ("data", "offending_key"),
    [
        ({"name": "x", "type": "FLOAT"}, "type"),
        ({"name": "x", "type": None}, "type"),
        ({"name": "x"}, "type"),
        ({"type": "NUMBER"}, "name"),
        ({"name": "", "type": "NUMBER"}, "name"),
        ({"name": "x", "type": "NUMBER", "required": "yes"}, "required"),
        ({"name": "x", "type": "NUMBER", "description": 3}, "description"),
        ({"name": "x", "type": "NUMBER", "minimum": "1"}, "minimum"),
        ({"name": "x", "type": "NUMBER", "maximum": True}, "maximum"),
        ({"name": "x", "type": "NUMBER", "minimum": 2, "maximum": 1}, "minimum"),
        ({"name": "x", "type": "CATEGORY", "allowed_values": [1, 2]}, "allowed_values"),
        ({"name": "x", "type": "CATEGORY", "allowed_values": "ab"}, "allowed_values"),
        ({"name": "x", "type": "NUMBER", "unit": "cm"}, "unit"),
    ],
)
def test_from_json_rejects_bad_data_naming_the_key(
    data: dict[str, Any], offending_key: str
) -> None:
    with pytest.raises(ValueError, match=offending_key):
        FeatureSpec.from_json(data)


def test_from_json_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueError, match="object"):
        FeatureSpec.from_json(["name", "type"])  # type: ignore[arg-type]


def test_infer_signature_types_columns_and_records_the_observed_range() -> None:
    data = np.array([[1.0, 0.5], [3.0, 2.25], [2.0, -1.0]])
    count, ratio = infer_signature(["count", "ratio"], data, descriptions={"ratio": "A ratio"})

    assert count == FeatureSpec("count", FeatureType.INTEGER, minimum=1.0, maximum=3.0)
    assert ratio == FeatureSpec(
        "ratio", FeatureType.NUMBER, description="A ratio", minimum=-1.0, maximum=2.25
    )
    assert type(count.minimum) is float
    assert type(ratio.maximum) is float


def test_infer_signature_requires_one_name_per_column() -> None:
    with pytest.raises(ValueError, match="columns"):
        infer_signature(["only_one"], np.zeros((3, 2)))
