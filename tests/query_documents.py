"""Generated GraphQL queries over the whole query schema: random root fields, arguments drawn
from values that name the demo catalogue (and values that name nothing, or do not parse),
passed as literals or variables, aliases, inline and named fragments, __typename, nested
selections to a bounded depth, and the occasional document that does not validate."""

from __future__ import annotations

import json
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
)
from hypothesis import strategies as st

MAX_DEPTH = 4
STRINGS = [
    "iris-classifier",
    "wine-classifier",
    "diabetes-regressor",
    "breast-cancer-classifier",
    "no-such-model",
    "",
    "production",
    "accuracy",
    "f1_macro",
    "overall",
    "class:setosa",
    "setosa",
    "petal_length",
    "iris",
]
LEAVES: dict[str, list[Any]] = {
    "String": STRINGS,
    "Int": [0, 1, 2, 3, 20, -1, 101],
    "Float": [0.0, 0.5, 0.9, 1.5],
    "Boolean": [True, False],
    "DateTime": ["2020-01-01T00:00:00+00:00", "2099-01-01T00:00:00Z", "yesterday"],
    "JSON": [{}, {"sepal_length": 5.1}, [1, 2], "text"],
}


class Requests:
    """Draws (document, variables) pairs; `ids` are global ids that exist (or do not)."""

    def __init__(self, schema: GraphQLSchema, ids: list[str]) -> None:
        self.schema = schema
        self.leaves = {**LEAVES, "ID": [*ids, "bm9wZQ", "not an id"]}

    def strategy(self) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        @st.composite
        def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
            return self._draw(draw)

        return requests()

    def _draw(self, draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
        draft = _Draft(draw, self)
        query_type = self.schema.query_type
        assert query_type is not None
        selection = draft.selection(query_type, MAX_DEPTH)
        definitions = "".join(f" {fragment}" for fragment in draft.fragments)
        header = ""
        if draft.variable_types:
            declared = ", ".join(
                f"${name}: {type_}" for name, type_ in draft.variable_types.items()
            )
            header = f"query Generated({declared}) "
        return f"{header}{selection}{definitions}", draft.variables


class _Draft:
    """One document being drawn: its variables and named fragments."""

    def __init__(self, draw: st.DrawFn, requests: Requests) -> None:
        self._draw = draw
        self.requests = requests
        self.variables: dict[str, Any] = {}
        self.variable_types: dict[str, str] = {}
        self.fragments: list[str] = []

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self._draw(strategy)

    def selection(self, parent: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> str:
        names = sorted(name for name in parent.fields if not name.startswith("__"))
        picked = self.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
        parts = [self.field(parent, name, depth) for name in picked]
        if self.draw(st.booleans()):
            parts.insert(self.draw(st.integers(0, len(parts))), "__typename")
        body = " ".join(parts)
        shape = self.draw(st.sampled_from(["plain", "plain", "inline", "named"]))
        if shape == "inline":
            body = f"... on {parent.name} {{ {body} }}"
        elif shape == "named":
            name = f"F{len(self.fragments)}"
            self.fragments.append(f"fragment {name} on {parent.name} {{ {body} }}")
            body = f"...{name}"
        return f"{{ {body} }}"

    def field(self, parent: GraphQLObjectType | GraphQLInterfaceType, name: str, depth: int) -> str:
        definition = parent.fields[name]
        alias = self.draw(st.sampled_from(["", "", "", f"a{depth}_{name}: ", "x: "]))
        arguments = []
        for argument_name, argument in definition.args.items():
            required = isinstance(argument.type, GraphQLNonNull)
            if required or self.draw(st.integers(0, 3)) == 0:
                arguments.append(f"{argument_name}: {self.argument(argument.type)}")
        text = alias + name + (f"({', '.join(arguments)})" if arguments else "")
        return text + self.subselection(definition.type, depth)

    def subselection(self, type_: GraphQLOutputType, depth: int) -> str:
        named = get_named_type(type_)
        if isinstance(named, GraphQLObjectType):
            if depth <= 1:
                return " { __typename }"
            return " " + self.selection(named, depth - 1)
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            possible = sorted(t.name for t in self.requests.schema.get_possible_types(named))
            target = self.draw(st.sampled_from(possible))
            object_type = self.requests.schema.get_type(target)
            assert isinstance(object_type, GraphQLObjectType)
            inner = self.selection(object_type, depth - 1) if depth > 1 else "{ __typename }"
            return f" {{ __typename ... on {target} {inner} }}"
        return ""

    def argument(self, type_: GraphQLInputType) -> str:
        """A literal, or (one time in four) a variable holding the value."""
        if self.draw(st.integers(0, 3)) == 0:
            name = f"v{len(self.variable_types)}"
            self.variable_types[name] = str(type_)
            self.variables[name] = self.value(type_)
            return f"${name}"
        return _literal(self.value(type_), type_)

    def value(self, type_: GraphQLInputType) -> Any:
        nullable = not isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if nullable and self.draw(st.integers(0, 5)) == 0:
            return None
        if isinstance(inner, GraphQLList):
            return [self.value(inner.of_type) for _ in range(self.draw(st.integers(0, 2)))]
        if isinstance(inner, GraphQLEnumType):
            return _EnumName(self.draw(st.sampled_from(sorted(inner.values))))
        if isinstance(inner, GraphQLInputObjectType):
            value = {}
            for name, field in inner.fields.items():
                if isinstance(field.type, GraphQLNonNull) or self.draw(st.integers(0, 2)) == 0:
                    value[name] = self.value(field.type)
            return value
        assert isinstance(inner, GraphQLScalarType)
        pool = self.requests.leaves.get(inner.name, STRINGS)
        return self.draw(st.sampled_from(pool))


class _EnumName(str):
    """An enum value: bare in a literal, a string in variables."""


def _literal(value: Any, type_: GraphQLInputType) -> str:
    named = get_named_type(type_)
    if value is None:
        return "null"
    if isinstance(value, _EnumName):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item, type_) for item in value) + "]"
    if isinstance(named, GraphQLInputObjectType) and isinstance(value, dict):
        fields = ", ".join(
            f"{name}: {_literal(item, named.fields[name].type)}" for name, item in value.items()
        )
        return "{" + fields + "}"
    if isinstance(value, dict | list):
        return _json_literal(value)
    return json.dumps(value)


def _json_literal(value: Any) -> str:
    """A JSON scalar's value written as a GraphQL literal."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_json_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_literal(v) for v in value) + "]"
    return json.dumps(value)
