"""Planned argument conversion gives what Strawberry's own conversion gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from strawberry.types.arguments import convert_arguments

from modelql.graph.executor_internals import core_schema, scalar_registry, strawberry_field
from modelql.graph.input_conversion import plan_arguments
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


ENUM_CASES = [
    ("ModelVersion", "performance", {"split": "LIVE_MEMBER", "slice": "overall"}),
    ("ModelVersion", "performance", {"split": None}),
    ("PredictionStats", "groups", {"by": ["FIRST_MEMBER", "LAST_MEMBER"]}),
]


@pytest.mark.parametrize(("type_name", "field", "values"), ENUM_CASES)
def test_enum_arguments_convert_as_strawberry_converts_them(
    type_name: str, field: str, values: dict[str, Any]
):
    """graphql-core coerces an enum literal to the Python member; conversion keeps it (and
    copies a list of them)."""
    definition = core_schema(SCHEMA).type_map[type_name].fields[field]
    arguments = strawberry_field(definition).arguments
    values = {name: _members(definition, name, value) for name, value in values.items()}
    registry = scalar_registry(SCHEMA)

    planned = plan_arguments(arguments, registry, SCHEMA.config)(values)

    assert planned == convert_arguments(values, arguments, registry, SCHEMA.config)
    for name, value in values.items():
        if isinstance(value, list):
            assert planned[name] is not value


def _members(definition: Any, name: str, value: Any) -> Any:
    """The enum members graphql-core would hand over for the placeholders."""
    enum = definition.args[name].type
    while hasattr(enum, "of_type"):
        enum = enum.of_type
    if not hasattr(enum, "values"):
        return value
    members = list(enum.values.values())
    pick = {"LIVE_MEMBER": members[-1], "FIRST_MEMBER": members[0], "LAST_MEMBER": members[-1]}
    if isinstance(value, list):
        return [pick[item].value for item in value]
    return None if value is None else pick[value].value
