"""Field collection as graphql-core does it (through fragments, by response key, in order),
for the executors that plan a document once: anything they do not reproduce (directives,
fragment arguments, type conditions on abstract types) is refused with UnplannableError."""

from __future__ import annotations

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    SelectionSetNode,
)


class UnplannableError(Exception):
    """The document needs the general executor."""


def collect_fields(
    parent: GraphQLObjectType,
    selection_sets: tuple[SelectionSetNode, ...],
    fragments: dict[str, FragmentDefinitionNode],
) -> dict[str, tuple[FieldNode, ...]]:
    """Field nodes by response key, in order, through fragments."""
    fields: dict[str, tuple[FieldNode, ...]] = {}
    for selection_set in selection_sets:
        _collect_into(parent, selection_set, fragments, fields, set())
    return fields


def _collect_into(
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
            if selection.type_condition is not None:
                _check_condition(parent, selection.type_condition.name.value)
            _collect_into(parent, selection.selection_set, fragments, fields, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visited:
                continue
            visited.add(name)
            fragment = fragments[name]
            if fragment.variable_definitions or selection.arguments:
                raise UnplannableError
            _check_condition(parent, fragment.type_condition.name.value)
            _collect_into(parent, fragment.selection_set, fragments, fields, visited)


def _check_condition(parent: GraphQLObjectType, condition: str) -> None:
    """Object types only: a condition either always or never applies; never is rare."""
    if condition != parent.name and condition not in {i.name for i in parent.interfaces}:
        raise UnplannableError
