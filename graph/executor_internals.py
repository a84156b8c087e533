"""The Strawberry internals the direct executor relies on, in one place: `graph/direct.py` and
`graph/input_conversion.py` reach Strawberry only through this module (besides
`strawberry.Schema`, `ExecutionResult` and `SchemaExtension`), and graphql-core only through
its public top-level API (and `Path`, below).

None of these is a documented API, so pyproject.toml pins strawberry-graphql and graphql-core to
the minor versions the parity tests ran on (tests/graph/test_executor_contract.py fails outside
them); moving a pin means running tests/graph/test_direct_parity.py again. What each is for:

- `core_schema` (`Schema._schema`): the graphql-core schema that documents are planned against.
- `strawberry_field` (`GraphQLCoreConverter.DEFINITION_BACKREF`): the Strawberry field a
  graphql-core field was made from, found in the field's `extensions`.
- `StrawberryField`: whether a field is plain and how to read it: `base_resolver` (`is_async`,
  `info_parameter`, `self_parameter`, `root_parameter`, `signature`, `wrapped_func`),
  `python_name`, `arguments`, `extensions`, `permission_classes`.
- `StrawberryArgument`, `StrawberryConfig` (`name_converter`): arguments' GraphQL and Python
  names, as `convert_arguments` maps them.
- `scalar_registry` (`Schema.schema_converter.scalar_registry`), `is_scalar`, `GlobalID`: which
  argument types convert as leaves, as `convert_argument` decides.
- `StrawberryList`, `StrawberryOptional`, `StrawberryMaybe`, `has_object_definition` (and an
  input's definition: `is_input`, `from_input`, `fields` with `default_value`,
  `default_factory`, `resolve_type`): the argument types walked as `convert_argument` walks them.
- `UNSET`: an omitted value, passed through as `convert_argument` passes it.
- `has_enum_definition`, `StrawberryEnumDefinition`: enum arguments, which convert as leaves.
- `Path` (graphql-core's `graphql.pyutils.Path`): a response path, as resolvers' info holds it.
- `PermissionExtension` (`permissions`, `fail_silently`): a field's permission classes, which
  the read executor checks itself (`graph/read_executor.py`).
- `interface_definition` (`Schema.schema_converter.type_map`), `object_type_name`
  (`get_object_definition`, `is_graphql_generic`) and `is_cast` (`get_strawberry_type_cast`):
  the object type of an interface's value, as Strawberry's default `resolve_type` names it.

What the executor mirrors of graphql-core's execution (field collection, `complete_value`'s null
propagation and error messages) is imported from nowhere: the parity tests hold it to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLSchema
from graphql.pyutils import Path
from strawberry.permission import PermissionExtension
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    get_object_definition,
    has_object_definition,
)
from strawberry.types.cast import get_strawberry_type_cast
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

__all__ = [
    "UNSET",
    "GlobalID",
    "Path",
    "PermissionExtension",
    "StrawberryArgument",
    "StrawberryConfig",
    "StrawberryEnumDefinition",
    "StrawberryField",
    "StrawberryList",
    "StrawberryMaybe",
    "StrawberryOptional",
    "core_schema",
    "has_enum_definition",
    "has_object_definition",
    "interface_definition",
    "is_cast",
    "is_scalar",
    "object_type_name",
    "scalar_registry",
    "strawberry_field",
]


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built and executes against."""
    return schema._schema


def scalar_registry(schema: strawberry.Schema) -> Mapping[object, Any]:
    """The scalars Strawberry converts arguments with, by Python type."""
    return schema.schema_converter.scalar_registry


def strawberry_field(definition: GraphQLField) -> Any:
    """The Strawberry field a graphql-core field was made from; None when it has none."""
    return (definition.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)


def interface_definition(schema: strawberry.Schema, name: str) -> StrawberryObjectDefinition | None:
    """The Strawberry definition of the interface named `name`; None for any other type."""
    found = schema.schema_converter.type_map.get(name)
    definition = found.definition if found is not None else None
    if isinstance(definition, StrawberryObjectDefinition) and definition.is_interface:
        return definition
    return None


def object_type_name(value: Any) -> str | None:
    """The GraphQL name of the value's Strawberry object type; None for a value of none or of a
    generic one (Strawberry searches the schema for those)."""
    definition = get_object_definition(value)
    if definition is None or definition.is_graphql_generic:
        return None
    return definition.name


def is_cast(value: Any) -> bool:
    """Whether `strawberry.cast` gave the value a type of its own."""
    return get_strawberry_type_cast(value) is not None
