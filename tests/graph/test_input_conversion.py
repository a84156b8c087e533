"""Planned argument conversion gives what Strawberry's own conversion gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from strawberry.types.arguments import convert_arguments

from modelql.graph.executor_internals import core_schema, scalar_registry, strawberry_field
from modelql.graph.input_conversion import UnsupportedInputError, plan_arguments
from modelql.graph.schema import build_schema

SCHEMA = build_schema()
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _arguments(root: str, field: str) -> Any:
    type_ = getattr(core_schema(SCHEMA), f"{root}_type")
    return strawberry_field(type_.fields[field]).arguments


CASES = [
    ("mutation", "createPrediction", {"input": {"model": "m", "features": SETOSA}}),
    (
        "mutation",
        "createPrediction",
        {
            "input": {
                "model": "m",
                "version": 2,
                "alias": None,
                "features": {"nested": [1, {"a": None}]},
                "idempotencyKey": "k",
                "routingKey": "r",
            }
        },
    ),
    ("mutation", "createPredictions", {"input": {"model": "m", "instances": [SETOSA, 5, None]}}),
    (
        "mutation",
        "setTrafficSplit",
        {"input": {"model": "m", "shares": [{"version": 1, "weight": 0.5}]}},
    ),
    (
        "mutation",
        "recordOutcomes",
        {
            "input": {
                "outcomes": [
                    {"predictionId": "UHJlZGljdGlvbjox", "label": "setosa"},
                    {
                        "requestId": "r",
                        "batchIndex": 2,
                        "value": 1.5,
                        "observedAt": datetime.now(UTC),
                    },
                ]
            }
        },
    ),
    ("mutation", "createPrediction", {}),
]


@pytest.mark.parametrize(("root", "field", "values"), CASES)
def test_planned_conversion_equals_strawberrys(root: str, field: str, values: dict[str, Any]):
    arguments = _arguments(root, field)
    registry = scalar_registry(SCHEMA)

    planned = plan_arguments(arguments, registry, SCHEMA.config)(values)

    assert planned == convert_arguments(values, arguments, registry, SCHEMA.config)


def test_a_list_argument_is_copied_not_shared():
    arguments = _arguments("mutation", "createPredictions")
    instances = [SETOSA]
    convert = plan_arguments(arguments, scalar_registry(SCHEMA), SCHEMA.config)

    converted = convert({"input": {"model": "m", "instances": instances}})

    assert converted["input"].instances == instances
    assert converted["input"].instances is not instances


def test_enum_arguments_are_left_to_strawberry():
    performance = core_schema(SCHEMA).type_map["ModelVersion"].fields["performance"]  # DataSplit
    arguments = strawberry_field(performance).arguments

    with pytest.raises(UnsupportedInputError):
        plan_arguments(arguments, scalar_registry(SCHEMA), SCHEMA.config)
