"""Strawberry's argument conversion (graphql-core values to input dataclasses), planned once per
argument type instead of inspected on every request. It covers inputs made of scalars, enums, lists,
optionals and input objects, exactly as `strawberry.types.arguments.convert_argument` converts
them; `plan_arguments` raises UnsupportedInputError for anything else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING
from typing import Any

from modelql.graph.executor_internals import (
    UNSET,
    GlobalID,
    StrawberryArgument,
    StrawberryConfig,
    StrawberryEnumDefinition,
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_enum_definition,
    has_object_definition,
    is_scalar,
)

Convert = Callable[[Any], Any]


class UnsupportedInputError(Exception):
    """An argument type this planner leaves to Strawberry (Maybe, custom inputs...)."""


def plan_arguments(
    arguments: Sequence[StrawberryArgument],
    scalar_registry: Mapping[object, Any],
    config: StrawberryConfig,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Coerced argument values by GraphQL name -> resolver keyword arguments."""
    planner = _Planner(scalar_registry, config)
    plans = [
        (
            config.name_converter.from_argument(argument),
            argument.python_name,
            planner(argument.type),
        )
        for argument in arguments
    ]

    def convert(values: dict[str, Any]) -> dict[str, Any]:
        return {
            python_name: convert_value(values[name])
            for name, python_name, convert_value in plans
            if name in values
        }

    return convert


def copy_json(value: Any) -> Any:
    """A copy of the lists and dicts in a value, so that a value kept for many requests is
    never shared by two of them."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


class _Planner:
    def __init__(self, scalar_registry: Mapping[object, Any], config: StrawberryConfig) -> None:
        self._scalars = scalar_registry
        self._config = config

    def __call__(self, type_: Any) -> Convert:
        if isinstance(type_, StrawberryMaybe):
            raise UnsupportedInputError(type_)
        if isinstance(type_, StrawberryOptional):
            return self(type_.of_type)
        if isinstance(type_, StrawberryList):
            return self._list(type_.of_type)
        if self._is_leaf(type_):
            return _leaf
        if has_object_definition(type_):
            return self._input_object(type_)
        raise UnsupportedInputError(type_)

    def _is_leaf(self, type_: Any) -> bool:
        """Scalars (but a GlobalID, which is decoded) and enums: converted as they come."""
        if type_ is GlobalID:
            return False
        return (
            is_scalar(type_, self._scalars)
            or has_enum_definition(type_)
            or isinstance(type_, StrawberryEnumDefinition)
        )

    def _list(self, item_type: Any) -> Convert:
        item_type = item_type.of_type if isinstance(item_type, StrawberryOptional) else item_type
        if self._is_leaf(item_type):
            return _leaf_list
        convert_item = self(item_type)

        def convert_list(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            return [convert_item(item) for item in value]

        return convert_list

    def _input_object(self, cls: type) -> Convert:
        # has_object_definition(cls) held: Strawberry set the attribute its stubs do not declare.
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        if not definition.is_input or definition.from_input is not None:
            raise UnsupportedInputError(cls)
        implicit_none = [
            field.python_name
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        ]
        fields = [
            (
                self._config.name_converter.from_field(field),
                field.python_name,
                self(field.resolve_type(type_definition=definition)),
            )
            for field in definition.fields
        ]

        def convert_input(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            kwargs = dict.fromkeys(implicit_none)
            for name, python_name, convert_field in fields:
                if name in value:
                    kwargs[python_name] = convert_field(value[name])
            return cls(**kwargs)

        return convert_input


def _leaf(value: Any) -> Any:
    return value


def _leaf_list(value: Any) -> Any:
    """Copied: graphql-core hands every request omitting the value the same default list."""
    if value is None or value is UNSET:
        return value
    return list(value)
