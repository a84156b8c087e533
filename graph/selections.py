"""What the executors that plan a document once share: the operation a request runs, and field
collection as graphql-core does it (through fragments, by response key, in order, a fragment
whose type condition does not apply to the parent skipped); anything they do not reproduce
(directives, fragment arguments) is refused with UnplannableError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from modelql.graph.documents import Prepared

Fragments = dict[str, FragmentDefinitionNode]


class UnplannableError(Exception):
    """The document needs the general executor."""


def plannable_request(
    query: object, operation_name: object, variables: object
) -> tuple[str, dict[str, Any]] | None:
    """The query and variables (none: empty) when the request's parts have the types a plan
    needs; None when not (the general path says what is wrong with them)."""
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return None
    if variables is None:
        return query, {}
    return (query, variables) if isinstance(variables, dict) else None


def chosen_operation(
    prepare: Callable[[str, GraphQLSchema], Prepared],
    schema: GraphQLSchema,
    query: str,
    operation_name: str | None,
    kind: OperationType,
) -> tuple[OperationDefinitionNode, Fragments] | None:
    """The valid document's one operation of `kind` the request names (or its only one), with
    the document's fragments; None when the document does not parse or validate, names no
    operation or several, names one of another kind, or carries directives on it."""
    try:
        document, errors = prepare(query, schema)
    except GraphQLError:
        return None
    if errors:
        return None
    chosen = [
        node
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
        and (operation_name is None or (node.name and node.name.value == operation_name))
    ]
    if len(chosen) != 1 or chosen[0].operation is not kind or chosen[0].directives:
        return None
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    return chosen[0], fragments


def collect_fields(
    core: GraphQLSchema,
    parent: GraphQLObjectType,
    selection_sets: tuple[SelectionSetNode, ...],
    fragments: dict[str, FragmentDefinitionNode],
) -> dict[str, tuple[FieldNode, ...]]:
    """Field nodes by response key, in order, through fragments."""
    fields: dict[str, tuple[FieldNode, ...]] = {}
    for selection_set in selection_sets:
        _collect_into(core, parent, selection_set, fragments, fields, set())
    return fields


def _collect_into(
    core: GraphQLSchema,
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    fields: dict[str, tuple[FieldNode, ...]],
    visited: set[str],
) -> None:
    for selection in selection_set.selections:
        if selection.directives:
            raise UnplannableError
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            fields[key] = (*fields.get(key, ()), selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is None or _applies(core, parent, condition.name.value):
                _collect_into(core, parent, selection.selection_set, fragments, fields, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visited:
                continue
            visited.add(name)
            fragment = fragments[name]
            if fragment.variable_definitions or selection.arguments:
                raise UnplannableError
            if _applies(core, parent, fragment.type_condition.name.value):
                _collect_into(core, parent, fragment.selection_set, fragments, fields, visited)


def _applies(core: GraphQLSchema, parent: GraphQLObjectType, condition: str) -> bool:
    """graphql-core's rule: the condition names the parent, or an interface or union the
    parent is a possible type of (such a fragment under an abstract field is skipped for the
    parent types it does not name)."""
    if condition == parent.name:
        return True
    named = core.get_type(condition)
    if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
        return core.is_sub_type(named, parent)
    return False
