"""Direct execution of queries, the read path's executor.

A query whose selections it can plan (object types, fields read as attributes or by Strawberry
resolvers, sync or async, with arguments converted as Strawberry converts them and permission
classes checked as Strawberry checks them) gets a plan, made once per document. Executing it
calls the same resolvers with the same arguments and completes values as graphql-core does,
without its per-field machinery; an async resolver is started at once and only awaited when it
suspends, so DataLoaders batch as they do under graphql-core (every sibling starts before any
is awaited). Any error, refused permission or null where none may be makes it answer None, and
Strawberry then executes the query itself and reports it: a read has no effects to repeat. So
this executor only ever answers without errors, and answers exactly what Strawberry would.

Abstract types, directives and introspection are left to Strawberry. Strawberry's internals come
from `graph/executor_internals.py`; a schema running extensions the direct executors do not
reproduce is never planned (`graph/direct.py`).
"""

from __future__ import annotations

import asyncio
import inspect
import operator
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from functools import lru_cache, partial
from types import CoroutineType
from typing import Any, cast

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableValues,
    get_argument_values,
    get_variable_values,
    is_leaf_type,
)
from strawberry.types import ExecutionResult

from modelql.graph.direct import unreproduced_extensions, uses_variables
from modelql.graph.documents import Prepared
from modelql.graph.errors import record_operation
from modelql.graph.executor_internals import (
    Path,
    PermissionExtension,
    StrawberryField,
    core_schema,
    interface_definition,
    is_cast,
    object_type_name,
    scalar_registry,
    strawberry_field,
    strawberry_info,
)
from modelql.graph.input_conversion import UnsupportedInputError, copy_json, plan_arguments
from modelql.graph.selections import (
    UnplannableError,
    chosen_operation,
    collect_fields,
    plannable_request,
)


class _AbortError(Exception):
    """The answer has an error: Strawberry must give it."""


class _Run:
    """One execution: the request's context and variables, and the resolvers that suspended."""

    __slots__ = ("context", "failed", "operation", "pending", "variables")

    def __init__(
        self, context: Any, variables: VariableValues, operation: OperationDefinitionNode
    ) -> None:
        self.context = context
        self.variables = variables
        self.operation = operation
        self.pending: list[asyncio.Future[None]] = []
        self.failed = False

    async def settle(self) -> None:
        """Finish every suspended resolver, and what finishing them started; a failure marks
        the run failed but the others still finish, so that no work outlives the run."""
        while self.pending:
            batch, self.pending = self.pending, []
            outcomes = await asyncio.gather(*batch, return_exceptions=True)
            if any(isinstance(outcome, BaseException) for outcome in outcomes):
                self.failed = True


Complete = Callable[[Any, Path, _Run], Any]
"""A non-null raw value at a path -> its response value (raises on any error)."""


class _Finishing(Coroutine[Any, Any, None]):
    """The rest of a resolver that was started and suspended, run by a task of its own, then
    `then` with its value. It forwards what the task sends or throws to the resolver's
    coroutine, even before its first step: a task cancelled before it ever ran still cancels
    the resolver (which may hold a session or a lock), instead of leaving it suspended."""

    __slots__ = ("_coroutine", "_then", "_yielded")

    def __init__(
        self,
        coroutine: CoroutineType[Any, Any, Any],
        yielded: Any,
        then: Callable[[Any], None],
    ) -> None:
        self._coroutine = coroutine
        self._yielded = yielded
        self._then = then

    def send(self, value: Any) -> Any:
        if self._yielded is not _TAKEN:
            yielded, self._yielded = self._yielded, _TAKEN
            if getattr(yielded, "_asyncio_future_blocking", None) is False:
                yielded._asyncio_future_blocking = True  # "await me", to the task
            return yielded
        try:
            return self._coroutine.send(value)
        except StopIteration as stop:
            self._then(stop.value)
            raise StopIteration from None

    def throw(self, error: Any, value: Any = None, traceback: Any = None) -> Any:
        self._yielded = _TAKEN
        try:
            return self._coroutine.throw(error if value is None else value)
        except StopIteration as stop:
            self._then(stop.value)
            raise StopIteration from None

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, Any, None]:
        """Awaited in place of being run by a task (as `yield from` would)."""
        sent: Any = None
        while True:
            try:
                sent = yield self.send(sent)
            except StopIteration:
                return
            except BaseException as thrown:
                try:
                    sent = yield self.throw(thrown)
                except StopIteration:
                    return


_TAKEN = object()
"""The first yield was handed to the task."""


@dataclass(frozen=True, slots=True)
class _Field:
    key: str
    resolve: Callable[[Any, Path, _Run], Any]
    """The raw value (a coroutine for an async resolver)."""
    complete: Complete
    non_null: bool
    typename: str

    def fill(self, source: Any, parent: Path | None, run: _Run, out: dict[str, Any]) -> None:
        """Sets `out[key]`: now, or (placeholder first, to keep the key's place) when its
        suspended resolver finishes."""
        path = Path(parent, self.key, self.typename)
        value = self.resolve(source, path, run)
        if type(value) is CoroutineType:
            try:
                yielded = value.send(None)
            except StopIteration as stop:
                value = stop.value
            else:
                if getattr(yielded, "_asyncio_future_blocking", None):
                    # As a task does on taking the future: else the next coroutine awaiting
                    # it (another field's, before any task runs) is refused.
                    yielded._asyncio_future_blocking = False
                out[self.key] = None
                # A task at once, not at the end of the pass: what it holds (a lock, say) may
                # be what a sibling's batch waits for.
                then = partial(self._finish_into, path=path, run=run, out=out)
                run.pending.append(asyncio.ensure_future(_Finishing(value, yielded, then)))
                return
        out[self.key] = self.finish(value, path, run)

    def _finish_into(self, value: Any, *, path: Path, run: _Run, out: dict[str, Any]) -> None:
        if not run.failed:
            out[self.key] = self.finish(value, path, run)

    def finish(self, value: Any, path: Path, run: _Run) -> Any:
        if value is None:
            if self.non_null:
                raise _AbortError
            return None
        return self.complete(value, path, run)


@dataclass(frozen=True, slots=True)
class _LeafAttribute:
    """A leaf field read as an attribute (most fields of an answer): read and serialized in
    one step, with no path, resolver call or completion of its own."""

    key: str
    read: Callable[[Any], Any]
    serialize: Callable[[Any], Any]
    non_null: bool

    def fill(self, source: Any, parent: Path | None, run: _Run, out: dict[str, Any]) -> None:
        value = self.read(source)
        if value is None:
            if self.non_null:
                raise _AbortError
            out[self.key] = None
            return
        if type(value) is CoroutineType:
            value.close()
            raise _AbortError  # graphql-core awaits it: Strawberry's to answer
        serialized = self.serialize(value)
        if serialized is Undefined or serialized is None:
            raise _AbortError
        out[self.key] = serialized


_Filler = _Field | _LeafAttribute


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    operation: OperationDefinitionNode
    roots: tuple[_Filler, ...]


class ReadExecutor:
    """Runs the queries it can plan without error; `execute` answers None for the others (and
    for a run that met an error), which Strawberry then executes."""

    def __init__(
        self,
        *,
        schema: strawberry.Schema,
        prepare: Callable[[str, GraphQLSchema], Prepared],
        cache_size: int,
    ) -> None:
        self._schema = schema
        self._core = core_schema(schema)
        self._prepare = prepare
        self._refused = (
            unreproduced_extensions(schema) is not None
            or schema.config.default_resolver is not getattr  # attributes are read as getattr
        )
        no_variables = get_variable_values(self._core, [], {})
        assert isinstance(no_variables, VariableValues), "no definitions, no errors"
        self._no_variables = no_variables
        self.plan = lru_cache(maxsize=cache_size)(self._plan)

    async def execute(
        self,
        query: str | None,
        operation_name: str | None,
        variables: object,
        context: Any,
    ) -> ExecutionResult | None:
        """The result of a planned query that met no error, or None."""
        request = plannable_request(query, operation_name, variables)
        if request is None:
            return None
        query, variables = request
        plan = self.plan(query, operation_name)
        if plan is None:
            return None
        coerced = self._variables(plan.operation, variables)
        if coerced is None:
            return None
        run = _Run(context, coerced, plan.operation)
        data: dict[str, Any] = {}
        try:
            for root in plan.roots:
                root.fill(None, None, run, data)
        except Exception:
            run.failed = True
        await run.settle()
        if run.failed:
            return None
        name = plan.operation.name
        record_operation(context, name.value if name else None, "query")
        return ExecutionResult(data=data, errors=None)

    def _variables(
        self, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> VariableValues | None:
        if not operation.variable_definitions:
            return self._no_variables
        outcome = get_variable_values(
            self._core, operation.variable_definitions, variables, max_errors=1
        )
        return None if isinstance(outcome, list) else outcome

    def _plan(self, query: str, operation_name: str | None) -> _ReadPlan | None:
        if self._refused:
            return None
        chosen = chosen_operation(
            self._prepare, self._core, query, operation_name, OperationType.QUERY
        )
        query_type = self._core.query_type
        if chosen is None or query_type is None:
            return None
        operation, fragments = chosen
        planner = _Planner(self._schema, self._core, operation, fragments)
        try:
            roots = planner.fields(query_type, (operation,))
        except UnplannableError:
            return None
        return _ReadPlan(operation, roots)


class _Planner:
    """Turns selections into field plans; raises UnplannableError at anything it does not do."""

    def __init__(
        self,
        schema: strawberry.Schema,
        core: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
    ) -> None:
        self._schema = schema
        self._core = core
        self._operation = operation
        self._fragments = fragments

    def fields(
        self, parent: GraphQLObjectType, nodes: tuple[FieldNode | OperationDefinitionNode, ...]
    ) -> tuple[_Filler, ...]:
        selections = tuple(node.selection_set for node in nodes if node.selection_set)
        collected = collect_fields(self._core, parent, selections, self._fragments)
        return tuple(
            self._field(parent, key, field_nodes) for key, field_nodes in collected.items()
        )

    def _field(self, parent: GraphQLObjectType, key: str, nodes: tuple[FieldNode, ...]) -> _Filler:
        name = nodes[0].name.value
        if name == "__typename":
            typename = parent.name
            return _Field(key, lambda *_: typename, _same, True, typename)
        if name.startswith("__"):
            raise UnplannableError  # introspection
        definition = parent.fields[name]
        leaf = _leaf_attribute(key, definition)
        if leaf is not None:
            return leaf
        return _Field(
            key=key,
            resolve=self._resolver(parent, definition, nodes),
            complete=self._completer(definition.type, nodes),
            non_null=isinstance(definition.type, GraphQLNonNull),
            typename=parent.name,
        )

    def _resolver(
        self, parent: GraphQLObjectType, definition: GraphQLField, nodes: tuple[FieldNode, ...]
    ) -> Callable[[Any, Path, _Run], Any]:
        """How the field's raw value is had, as Strawberry's resolver wrapper has it: arguments
        converted, permissions checked, the source, info and arguments passed."""
        field = strawberry_field(definition)
        if not isinstance(field, StrawberryField):
            raise UnplannableError
        permissions = _permissions(field)
        if field.base_resolver is None and not permissions:
            return _attribute(field.python_name)
        arguments = self._arguments(definition, field, nodes)
        call = _Call(field)
        make_info = _InfoFactory(
            self._schema, self._core, self._operation, self._fragments, parent, field, nodes
        )
        needs_info = bool(permissions) or call.info_name is not None

        def resolve(source: Any, path: Path, run: _Run) -> Any:
            kwargs = arguments(run)
            info = make_info(path, run) if needs_info else None
            for permission in permissions:
                if permission.has_permission(source, info, **kwargs) is not True:
                    raise _AbortError
            return call(source, info, kwargs)

        return resolve

    def _arguments(
        self, definition: GraphQLField, field: StrawberryField, nodes: tuple[FieldNode, ...]
    ) -> Callable[[_Run], dict[str, Any]]:
        """The field's converted arguments for a run (literal ones coerced once)."""
        try:
            convert = plan_arguments(
                field.arguments, scalar_registry(self._schema), self._schema.config
            )
        except UnsupportedInputError as error:
            raise UnplannableError from error
        node = nodes[0]  # validation leaves merged fields only with the same arguments
        if not any(uses_variables(argument.value) for argument in node.arguments or ()):
            literal = get_argument_values(definition, node)
            return lambda run: convert(copy_json(literal))
        return lambda run: convert(get_argument_values(definition, node, run.variables))

    def _completer(self, type_: GraphQLOutputType, nodes: tuple[FieldNode, ...]) -> Complete:
        if isinstance(type_, GraphQLNonNull):
            return self._completer(type_.of_type, nodes)
        if isinstance(type_, GraphQLList):
            return _list_completer(
                self._completer(type_.of_type, nodes), isinstance(type_.of_type, GraphQLNonNull)
            )
        if is_leaf_type(type_):
            return _leaf_completer(type_)
        if isinstance(type_, GraphQLInterfaceType):
            return self._interface_completer(type_, nodes)
        if not isinstance(type_, GraphQLObjectType):
            raise UnplannableError  # a union: resolving its type is Strawberry's
        fields = self.fields(type_, nodes)
        is_type_of = type_.is_type_of

        def complete_object(value: Any, path: Path, run: _Run) -> Any:
            # Strawberry's `is_type_of` reads no info (graphql-core passes the field's).
            if is_type_of is not None and is_type_of(value, cast(Any, None)) is not True:
                raise _AbortError
            out: dict[str, Any] = {}
            for field in fields:
                field.fill(value, path, run, out)
            return out

        return complete_object

    def _interface_completer(
        self, interface: GraphQLInterfaceType, nodes: tuple[FieldNode, ...]
    ) -> Complete:
        """A value of an interface completed as its object type, which Strawberry's default
        `resolve_type` names after the value's own Strawberry type (every possible type
        planned at once); a value cast with `strawberry.cast`, of a generic type or of none is
        given back, and so is an interface with a `resolve_type` of its own."""
        definition = interface_definition(self._schema, interface.name)
        if definition is None or definition.resolve_type is not None:
            raise UnplannableError
        origin = definition.origin
        by_name = {
            possible.name: self._completer(possible, nodes)
            for possible in self._core.get_possible_types(interface)
        }

        def complete_interface(value: Any, path: Path, run: _Run) -> Any:
            if is_cast(value) or not isinstance(value, origin):
                raise _AbortError
            complete = by_name.get(object_type_name(value) or "")
            if complete is None:
                raise _AbortError
            return complete(value, path, run)

        return complete_interface


def _permissions(field: StrawberryField) -> tuple[Any, ...]:
    """The field's permission classes; a field extension of any other kind is not planned."""
    permissions: list[Any] = []
    for extension in field.extensions:
        if type(extension) is not PermissionExtension or extension.fail_silently:
            raise UnplannableError
        permissions.extend(extension.permissions)
    return tuple(permissions)


def _leaf_attribute(key: str, definition: GraphQLField) -> _LeafAttribute | None:
    """The field as a `_LeafAttribute` when it is one: a leaf type, no resolver, no
    permission (any other extension is refused by `_permissions`)."""
    field = strawberry_field(definition)
    type_ = definition.type
    non_null = isinstance(type_, GraphQLNonNull)
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if (
        not isinstance(field, StrawberryField)
        or field.base_resolver is not None
        or field.extensions
        or not is_leaf_type(named)
    ):
        return None
    return _LeafAttribute(key, operator.attrgetter(field.python_name), named.serialize, non_null)


def _attribute(name: str) -> Callable[[Any, Path, _Run], Any]:
    read = operator.attrgetter(name)
    return lambda source, path, run: read(source)


class _Call:
    """A field's resolver called as Strawberry calls it: the source as `self`, `root` or
    `parent`, the info as its parameter, the converted arguments by name."""

    __slots__ = ("function", "info_name", "source_names", "takes_self")

    def __init__(self, field: StrawberryField) -> None:
        resolver = field.base_resolver
        if resolver is None:  # only permissions: the attribute, checked
            self.function: Callable[..., Any] = operator.attrgetter(field.python_name)
            self.takes_self = True
            self.source_names: tuple[str, ...] = ()
            self.info_name: str | None = None
            return
        function = resolver.wrapped_func
        if isinstance(function, staticmethod | classmethod):
            raise UnplannableError
        self.function = function
        self.takes_self = resolver.self_parameter is not None
        self.source_names = tuple(
            parameter.name
            for parameter in (resolver.parent_parameter, resolver.root_parameter)
            if parameter is not None
        )
        self.info_name = resolver.info_parameter.name if resolver.info_parameter else None

    def __call__(self, source: Any, info: Any, kwargs: dict[str, Any]) -> Any:
        for name in self.source_names:
            kwargs[name] = source
        if self.info_name is not None:
            kwargs[self.info_name] = info
        if self.takes_self:
            return self.function(source, **kwargs)
        return self.function(**kwargs)


class _InfoFactory:
    """The `strawberry.Info` a resolver gets, over graphql-core's resolve info for its path."""

    def __init__(
        self,
        schema: strawberry.Schema,
        core: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        parent: GraphQLObjectType,
        field: StrawberryField,
        nodes: tuple[FieldNode, ...],
    ) -> None:
        self._info_class = schema.config.info_class
        self._field = field
        definition = parent.fields[nodes[0].name.value]
        self._fixed = {
            "field_name": nodes[0].name.value,
            "field_nodes": list(nodes),
            "return_type": definition.type,
            "parent_type": parent,
            "schema": core,
            "fragments": fragments,
            "root_value": None,
            "operation": operation,
            "is_awaitable": inspect.isawaitable,
            "abort_signal": None,
            "async_helpers": None,
        }

    def __call__(self, path: Path, run: _Run) -> Any:
        raw = GraphQLResolveInfo(
            **self._fixed, path=path, variable_values=run.variables, context=run.context
        )
        return strawberry_info(self._info_class, raw, self._field)


def _same(value: Any, path: Path, run: _Run) -> Any:
    return value


def _leaf_completer(type_: Any) -> Complete:
    serialize = type_.serialize

    def complete_leaf(value: Any, path: Path, run: _Run) -> Any:
        serialized = serialize(value)
        if serialized is Undefined or serialized is None:
            raise _AbortError
        return serialized

    return complete_leaf


def _list_completer(item: Complete, items_non_null: bool) -> Complete:
    def complete_list(value: Any, path: Path, run: _Run) -> Any:
        if not isinstance(value, list | tuple):
            raise _AbortError  # graphql-core takes any iterable; Strawberry's errors say why
        completed: list[Any] = []
        for index, element in enumerate(value):
            if element is None:
                if items_non_null:
                    raise _AbortError
                completed.append(None)
            else:
                completed.append(item(element, Path(path, index, None), run))
        return completed

    return complete_list
