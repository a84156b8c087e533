"""Direct execution of the prediction mutations, the service's hot path.

A mutation whose root fields are all listed in `DIRECT_MUTATIONS` and whose selections read
plain fields (no arguments, directives, permissions or async resolvers) gets a plan, made once
per document: the root field's use case is called with Strawberry's own argument conversion,
and its payload is rendered field by field from the plan, with graphql-core's null propagation
and error paths but without its per-field machinery. Everything else (and a plan's request
whose variables, arguments or scopes need the general path's errors) goes to Strawberry.

Its contract: Strawberry's internals come from `graph/executor_internals.py` (pinned versions),
and a schema running any extension but the ones it reproduces is never planned, so that an
extension added later (tracing, say) is never skipped on this path.
"""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    VariableValues,
    get_argument_values,
    get_variable_values,
    is_leaf_type,
    located_error,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from modelql.graph.documents import CachedDocuments, Prepared
from modelql.graph.errors import (
    MaskUnexpectedErrors,
    mark_request_errors,
    mask_errors,
    record_operation,
)
from modelql.graph.executor_internals import (
    StrawberryField,
    core_schema,
    scalar_registry,
    strawberry_field,
)
from modelql.graph.input_conversion import UnsupportedInputError, copy_json, plan_arguments
from modelql.graph.selections import (
    UnplannableError,
    chosen_operation,
    collect_fields,
    plannable_request,
)

logger = logging.getLogger("modelql.graph")

REPRODUCED_EXTENSIONS: tuple[type[SchemaExtension], ...] = (MaskUnexpectedErrors, CachedDocuments)
"""The schema extensions whose work the direct executor does itself: masking and naming the
operation (`mask_errors`, `record_operation`), and the shared document cache (`prepare`)."""

RootHandler = Callable[..., Awaitable[Any]]
"""A root field's use case: called with the context and the field's converted arguments."""

_Path = tuple[Any, ...] | None
"""A response path as nested pairs `(parent, key)`: free to extend, listed only on error."""


class _NullError(Exception):
    """A non-null position got null (its error is recorded): the parent becomes null too."""


def _listed(path: _Path) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    return keys[::-1]


Complete = Callable[[Any, _Path, list[GraphQLError]], Any]


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where a value lands in the response: its field nodes (for error locations), whether it
    may be null, and its schema coordinate (for the null error's message)."""

    nodes: tuple[FieldNode, ...]
    non_null: bool
    coordinate: str

    def settle(
        self,
        value: Any,
        complete: Complete,
        path: _Path,
        errors: list[GraphQLError],
        failure: Exception | None = None,
    ) -> Any:
        """`value` completed at `path` as graphql-core completes it: an error (`failure`, or
        one raised while completing) is recorded at `path` and the value becomes null; a null
        where none may be is an error too, and raises _NullError so the parent becomes null."""
        completed = None
        recorded = failure is not None
        if failure is not None:
            errors.append(located_error(failure, list(self.nodes), _listed(path)))
        else:
            try:
                completed = None if value is None else complete(value, path, errors)
            except _NullError:
                recorded = True
            except Exception as error:
                errors.append(located_error(error, list(self.nodes), _listed(path)))
                recorded = True
        if completed is None and self.non_null:
            if not recorded:
                message = f"Cannot return null for non-nullable field {self.coordinate}."
                errors.append(located_error(TypeError(message), list(self.nodes), _listed(path)))
            raise _NullError
        return completed


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    key: str
    read: Callable[[Any], Any]
    complete: Complete
    slot: _Slot

    def value(self, source: Any, parent: _Path, errors: list[GraphQLError]) -> Any:
        """The field's completed value; raises _NullError when it is null but must not be."""
        path = (parent, self.key)
        try:
            value = self.read(source)
        except Exception as error:
            return self.slot.settle(None, self.complete, path, errors, failure=error)
        return self.slot.settle(value, self.complete, path, errors)


@dataclass(frozen=True, slots=True)
class _RootPlan:
    key: str
    definition: GraphQLField
    strawberry_field: StrawberryField
    handler: RootHandler
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    literal_values: dict[str, Any] | None
    """The coerced arguments when they use no variable: coerced once, copied per request."""
    complete: Complete
    slot: _Slot

    @property
    def node(self) -> FieldNode:
        return self.slot.nodes[0]


@dataclass(frozen=True, slots=True)
class _Plan:
    operation: OperationDefinitionNode
    roots: tuple[_RootPlan, ...]


class DirectExecutor:
    """Runs the documents it can plan; `execute` answers None for the others."""

    def __init__(
        self,
        *,
        schema: strawberry.Schema,
        prepare: Callable[[str, GraphQLSchema], Prepared],
        handlers: Mapping[str, RootHandler],
        cache_size: int,
    ) -> None:
        self._schema = schema
        self._core = core_schema(schema)
        self._prepare = prepare
        self._handlers = dict(handlers)
        self._refusal = unreproduced_extensions(schema)
        self.plan = lru_cache(maxsize=cache_size)(self._plan)

    async def execute(
        self,
        query: str | None,
        operation_name: str | None,
        variables: object,
        context: Any,
    ) -> ExecutionResult | None:
        """The result of a planned mutation, or None: then nothing ran and nothing was stored."""
        request = plannable_request(query, operation_name, variables)
        if request is None:
            return None
        query, variables = request
        plan = self.plan(query, operation_name)
        if plan is None:
            return None
        arguments = self._arguments(plan, variables, context)
        if arguments is None:
            return None
        name = plan.operation.name
        record_operation(context, name.value if name else None, "mutation")
        errors: list[GraphQLError] = []
        fields: dict[str, Any] = {}
        data: dict[str, Any] | None = fields
        for root, kwargs in zip(plan.roots, arguments, strict=True):
            try:
                fields[root.key] = await self._run(root, kwargs, context, errors)
            except _NullError:
                data = None
                break
        if not errors:
            return ExecutionResult(data=data, errors=None)
        mark_request_errors(errors, context)
        return ExecutionResult(data=data, errors=mask_errors(errors, context))

    async def _run(
        self, root: _RootPlan, kwargs: dict[str, Any], context: Any, errors: list[GraphQLError]
    ) -> Any:
        path = (None, root.key)
        try:
            value = await root.handler(context, **kwargs)
        except Exception as error:
            return root.slot.settle(None, root.complete, path, errors, failure=error)
        return root.slot.settle(value, root.complete, path, errors)

    def _arguments(
        self, plan: _Plan, variables: dict[str, Any], context: Any
    ) -> list[dict[str, Any]] | None:
        """Each root field's converted arguments; None when a scope is missing or a value
        does not coerce, so that the general path reports it."""
        scopes = context.scopes
        for root in plan.roots:
            for permission in root.strawberry_field.permission_classes:
                if getattr(permission, "required_scope", None) not in scopes:
                    return None
        coerced: VariableValues | None = None
        if plan.operation.variable_definitions:
            outcome = get_variable_values(
                self._core, plan.operation.variable_definitions, variables, max_errors=1
            )
            if isinstance(outcome, list):
                return None
            coerced = outcome
        converted: list[dict[str, Any]] = []
        for root in plan.roots:
            try:
                if root.literal_values is not None:
                    values = copy_json(root.literal_values)
                else:
                    values = get_argument_values(root.definition, root.node, coerced)
                converted.append(root.convert(values))
            except Exception:
                return None
        return converted

    def _plan(self, query: str, operation_name: str | None) -> _Plan | None:
        if self._refusal is not None:
            return None
        chosen = chosen_operation(
            self._prepare, self._core, query, operation_name, OperationType.MUTATION
        )
        if chosen is None:
            return None
        operation, fragments = chosen
        planner = _Planner(self._core, fragments)
        mutation_type = self._core.mutation_type
        if mutation_type is None:
            return None
        try:
            fields = planner.collect(mutation_type, (operation.selection_set,))
            roots = tuple(
                self._root(planner, mutation_type, key, nodes) for key, nodes in fields.items()
            )
        except UnplannableError:
            return None
        return _Plan(operation, roots)

    def _root(
        self,
        planner: _Planner,
        parent: GraphQLObjectType,
        key: str,
        nodes: tuple[FieldNode, ...],
    ) -> _RootPlan:
        name = nodes[0].name.value
        handler = self._handlers.get(name)
        if handler is None or len(nodes) != 1:
            raise UnplannableError
        definition = parent.fields[name]
        field = strawberry_field(definition)
        if not isinstance(field, StrawberryField):
            raise UnplannableError
        coordinate = f"{parent.name}.{name}"
        try:
            convert = plan_arguments(
                field.arguments, scalar_registry(self._schema), self._schema.config
            )
        except UnsupportedInputError as error:
            raise UnplannableError from error
        literal_values = None
        if not any(uses_variables(argument.value) for argument in nodes[0].arguments or ()):
            literal_values = get_argument_values(definition, nodes[0])
        return _RootPlan(
            key=key,
            definition=definition,
            strawberry_field=field,
            handler=handler,
            convert=convert,
            literal_values=literal_values,
            complete=planner.completer(definition.type, nodes, coordinate),
            slot=_Slot(nodes, isinstance(definition.type, GraphQLNonNull), coordinate),
        )


class _Planner:
    """Turns selections into field plans; raises UnplannableError at anything it does not do."""

    def __init__(self, core: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._core = core
        self._fragments = fragments

    def collect(
        self, parent: GraphQLObjectType, selection_sets: tuple[SelectionSetNode, ...]
    ) -> dict[str, tuple[FieldNode, ...]]:
        return collect_fields(self._core, parent, selection_sets, self._fragments)

    def completer(
        self, type_: GraphQLOutputType, nodes: tuple[FieldNode, ...], coordinate: str
    ) -> Complete:
        """How a non-null raw value of `type_` becomes its response value."""
        if isinstance(type_, GraphQLNonNull):
            return self.completer(type_.of_type, nodes, coordinate)
        if isinstance(type_, GraphQLList):
            return _list_completer(
                self.completer(type_.of_type, nodes, coordinate),
                isinstance(type_.of_type, GraphQLNonNull),
                nodes,
                coordinate,
            )
        if is_leaf_type(type_):
            return _leaf_completer(type_)
        if not isinstance(type_, GraphQLObjectType):
            raise UnplannableError
        selections = tuple(node.selection_set for node in nodes if node.selection_set)
        plans = tuple(
            self._field(type_, key, field_nodes)
            for key, field_nodes in self.collect(type_, selections).items()
        )

        def complete_object(value: Any, path: _Path, errors: list[GraphQLError]) -> Any:
            return {plan.key: plan.value(value, path, errors) for plan in plans}

        return complete_object

    def _field(
        self, parent: GraphQLObjectType, key: str, nodes: tuple[FieldNode, ...]
    ) -> _FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            typename = parent.name
            return _FieldPlan(
                key, lambda _: typename, _same, _Slot(nodes, True, f"{typename}.{name}")
            )
        if any(node.arguments for node in nodes):
            raise UnplannableError
        definition = parent.fields[name]
        coordinate = f"{parent.name}.{name}"
        return _FieldPlan(
            key=key,
            read=_reader(strawberry_field(definition)),
            complete=self.completer(definition.type, nodes, coordinate),
            slot=_Slot(nodes, isinstance(definition.type, GraphQLNonNull), coordinate),
        )


def unreproduced_extensions(schema: strawberry.Schema) -> str | None:
    """Why the schema's extensions are not exactly the ones the direct executors reproduce;
    None when they are. Logged once (a warning) when they are not."""
    running = [type(extension) for extension in schema.get_extensions()]
    if Counter(running) == Counter(REPRODUCED_EXTENSIONS):
        return None
    names = ", ".join(sorted(extension.__name__ for extension in running)) or "none"
    known = ", ".join(sorted(extension.__name__ for extension in REPRODUCED_EXTENSIONS))
    reason = (
        f"direct execution is off: the schema runs the extensions {names}, not exactly the "
        f"ones it reproduces ({known}); every operation runs on Strawberry's execution"
    )
    _log_once(reason)
    return reason


@cache
def _log_once(reason: str) -> None:
    logger.warning(reason)


def uses_variables(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(uses_variables(item) for item in value.values)
    if isinstance(value, ObjectValueNode):
        return any(uses_variables(field.value) for field in value.fields)
    return False


def _reader(field: Any) -> Callable[[Any], Any]:
    """How a plain Strawberry field is read: its attribute, or a synchronous resolver taking
    nothing but the object."""
    if not isinstance(field, StrawberryField) or field.extensions or field.arguments:
        raise UnplannableError
    resolver = field.base_resolver
    if resolver is None:
        return operator.attrgetter(field.python_name)
    if resolver.is_async or resolver.info_parameter is not None:
        raise UnplannableError
    own = resolver.self_parameter or resolver.root_parameter
    function = resolver.wrapped_func
    if own is None or len(resolver.signature.parameters) != 1:
        raise UnplannableError
    if isinstance(function, staticmethod | classmethod):
        raise UnplannableError
    return function


def _same(value: Any, path: _Path, errors: list[GraphQLError]) -> Any:
    return value


def _leaf_completer(type_: Any) -> Complete:
    serialize = type_.serialize

    def complete_leaf(value: Any, path: _Path, errors: list[GraphQLError]) -> Any:
        serialized = serialize(value)
        if serialized is Undefined or serialized is None:
            raise TypeError(
                f"Expected `{type_.name}.serialize({value!r})` to return non-nullable value, "
                f"returned: {serialized!r}"
            )
        return serialized

    return complete_leaf


def _list_completer(
    item: Complete, items_non_null: bool, nodes: tuple[FieldNode, ...], coordinate: str
) -> Complete:
    slot = _Slot(nodes, items_non_null, coordinate)

    def complete_list(value: Any, path: _Path, errors: list[GraphQLError]) -> Any:
        return [
            slot.settle(element, item, (path, index), errors) for index, element in enumerate(value)
        ]

    return complete_list
