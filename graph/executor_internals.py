"""The Strawberry and graphql-core internals the service relies on, in one place: the direct
executors (`graph/direct.py`, `graph/read_executor.py`, `graph/input_conversion.py`) above all,
and the few other modules that reach past the public API (below).

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

- `strawberry_info` (`Info(_raw_info=..., _field=...)`): the `strawberry.Info` a resolver gets,
  built by the read executor over graphql-core's resolve info.
- `validate_document` (`strawberry.schema.schema.validate_document`): validation with the
  schema's rules, as Strawberry validates (`graph/documents.py` caches its outcome).
- `alias_limit_rule`, `depth_limit_rule` (the `create_validator` of Strawberry's
  `MaxAliasesLimiter` and `QueryDepthLimiter`): the limits as validation rules, built once.
- `ASGIWebSocketAdapter` (`iter_json`, `close`): the socket Strawberry's WebSocket handler reads
  frames from, which `graph/websocket_frames.py` checks first.
- `SelectedField`, `Selection`: what `info.selected_fields` holds.
- `UnsetType`: the type of `UNSET`.

Every graph module other than this one imports only Strawberry's and graphql-core's public
modules (`tests/test_architecture.py` lists them). One more reliance cannot live here:
`graph/endpoint.py` overrides methods of Strawberry's HTTP view beyond its documented hooks
(`run`, `execute_operation`, `execute_single`, `parse_http_body`, `get_sub_response`,
`create_response`); the same pins hold them, and the parity tests run every request through
them.

What the executor mirrors of graphql-core's execution (field collection, `complete_value`'s null
propagation and error messages) is imported from nowhere: the parity tests hold it to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLResolveInfo, GraphQLSchema
from graphql.pyutils import Path
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.extensions.max_aliases import create_validator as alias_limit_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit_rule
from strawberry.permission import PermissionExtension
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
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
from strawberry.types.nodes import SelectedField, Selection
from strawberry.types.unset import UNSET, UnsetType

__all__ = [
    "UNSET",
    "ASGIWebSocketAdapter",
    "GlobalID",
    "Path",
    "PermissionExtension",
    "SelectedField",
    "Selection",
    "StrawberryArgument",
    "StrawberryConfig",
    "StrawberryEnumDefinition",
    "StrawberryField",
    "StrawberryList",
    "StrawberryMaybe",
    "StrawberryOptional",
    "UnsetType",
    "alias_limit_rule",
    "core_schema",
    "depth_limit_rule",
    "has_enum_definition",
    "has_object_definition",
    "interface_definition",
    "is_cast",
    "is_scalar",
    "object_type_name",
    "scalar_registry",
    "strawberry_field",
    "strawberry_info",
    "validate_document",
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


def strawberry_info(
    info_class: type[Any], raw: GraphQLResolveInfo[Any], field: StrawberryField
) -> Any:
    """The `strawberry.Info` (of the schema's `info_class`) over graphql-core's resolve info."""
    return info_class(_raw_info=raw, _field=field)
