"""Hypothesis strategies for createPrediction(s) requests as clients might send them: documents
with aliases, fragments, inline fragments, __typename and @skip/@include, inputs written inline
or passed as variables, and the request's variables and operation name. About a third of the
requests have mistakes (invalid inputs or variables, unknown fields, conflicting aliases, wrong
operation names); the others store predictions."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

KEY_MARK = "idem-"
"""Valid idempotency keys start with it; a test makes them unique per run by replacing it."""
VARYING_FIELDS = {"id": "pid", "createdAt": "at", "latencyMs": "ms"}
"""Prediction fields whose values differ between two executions, each with the only alias the
generator gives it: these response keys are all that a comparison needs to mask."""
ALIASES = ("x", "y")
"""Aliases any field may have in a request with mistakes (so that fields may conflict);
otherwise a field's alias is its own."""

FEATURES = {
    "iris-classifier": ("sepal_length", "sepal_width", "petal_length", "petal_width"),
    "diabetes-regressor": ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"),
}
LEAVES = {
    "Prediction": (
        "id",
        "inputs",
        "label",
        "value",
        "confidence",
        "latencyMs",
        "createdAt",
        "requestId",
        "caller",
        "idempotencyKey",
        "routedBy",
    ),
    "ClassProbability": ("label", "probability"),
    "UserError": ("field", "code", "message"),
    "ModelVersion": ("number", "algorithm"),
    "Node": ("id",),
    "CreatePredictionPayload": (),
    "CreatePredictionsPayload": (),
}
OBJECTS = {
    "CreatePredictionPayload": {"prediction": "Prediction", "userErrors": "UserError"},
    "CreatePredictionsPayload": {"predictions": "Prediction", "userErrors": "UserError"},
    "Prediction": {"probabilities": "ClassProbability", "modelVersion": "ModelVersion"},
}
INPUT_FIELDS = {
    "model": "String!",
    "version": "Int",
    "alias": "String",
    "features": "JSON!",
    "instances": "[JSON!]!",
    "idempotencyKey": "String",
    "routingKey": "String",
}
_ABSENT = object()

wrong_values = st.one_of(
    st.integers(-3, 12),
    st.sampled_from(["x", "", True, None, [1.0], {"a": 1}, float("nan"), 10**20]),
)


def _percent(draw: st.DrawFn, share: int) -> bool:
    """True in about `share` percent of the draws (False when shrunk)."""
    return draw(st.integers(0, 99)) >= 100 - share


def _pick(draw: st.DrawFn, good: Sequence[Any], bad: Sequence[Any], mistakes: bool) -> Any:
    """One of `good`; with `mistakes`, one of `bad` about a fifth of the time."""
    if mistakes and _percent(draw, 20):
        return draw(st.sampled_from(bad))
    return draw(st.sampled_from(good))


@st.composite
def features(draw: st.DrawFn, model: str, mistakes: bool) -> Any:
    """An instance for `model`; with `mistakes`, maybe with a feature missing, one too many, a
    value of the wrong type, or not an object at all."""
    names = FEATURES.get(model, FEATURES["iris-classifier"])
    instance: dict[str, Any] = {
        name: draw(st.floats(0, 8, allow_nan=False) | st.integers(0, 8)) for name in names
    }
    change = _pick(draw, ["none"], ["missing", "extra", "wrong", "not an object"], mistakes)
    if change == "missing":
        del instance[draw(st.sampled_from(names))]
    elif change == "extra":
        instance["colour"] = draw(wrong_values)
    elif change == "wrong":
        instance[draw(st.sampled_from(names))] = draw(wrong_values)
    elif change == "not an object":
        return draw(wrong_values)
    return instance


@st.composite
def prediction_inputs(draw: st.DrawFn, batch: bool, mistakes: bool) -> dict[str, Any]:
    """A CreatePrediction(s)Input as JSON; with `mistakes`, fields may be missing, unknown, null,
    invalid or of the wrong type."""
    model = _pick(draw, ["iris-classifier"] * 3 + ["diabetes-regressor"], ["nope", 5], mistakes)
    iris = model == "iris-classifier"
    values: dict[str, Any] = {
        "model": model,
        "version": _pick(draw, [1, 1, _ABSENT] if iris else [_ABSENT], [None, 99, "1"], mistakes),
        "alias": _pick(draw, [_ABSENT], [None, "production", "nope"], mistakes),
    }
    if batch:
        instances = draw(st.lists(features(str(model), mistakes), min_size=1, max_size=3))
        values["instances"] = _pick(
            draw, [instances], [_ABSENT, [], [*instances, None], instances[0]], mistakes
        )
    else:
        values["features"] = _pick(
            draw, [draw(features(str(model), mistakes))], [_ABSENT], mistakes
        )
    values["idempotencyKey"] = _pick(
        draw,
        [_ABSENT, _ABSENT, None, f"{KEY_MARK}0", f"{KEY_MARK}1"],
        ["", "k" * 201, "a\x00b"],
        mistakes,
    )
    values["routingKey"] = _pick(draw, [_ABSENT, _ABSENT, None, "user-1"], [""], mistakes)
    values["unknownField"] = _pick(draw, [_ABSENT], [1], mistakes)
    return {name: value for name, value in values.items() if value is not _ABSENT}


def literal(value: Any) -> str | None:
    """`value` written as a GraphQL literal; None when it has no literal form (NaN, say)."""
    if isinstance(value, dict):
        fields = [(name, literal(item)) for name, item in value.items()]
        if any(text is None or not name.isidentifier() for name, text in fields):
            return None
        return "{" + ", ".join(f"{name}: {text}" for name, text in fields) + "}"
    if isinstance(value, list):
        items = [literal(item) for item in value]
        return None if None in items else "[" + ", ".join(map(str, items)) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return json.dumps(value)


class _Document:
    """One document under construction: its variables, their values and its fragments."""

    def __init__(self, draw: st.DrawFn, mistakes: bool) -> None:
        self.draw = draw
        self.mistakes = mistakes
        self.directive_share = draw(st.sampled_from([0, 0, 0, 0, 15]))
        self.definitions: list[str] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[str] = []

    def pick(self, good: Sequence[Any], bad: Sequence[Any]) -> Any:
        return _pick(self.draw, good, bad, self.mistakes)

    def variable(self, type_: str, value: Any) -> str:
        """A new variable of `type_` holding `value` (none at all when it is _ABSENT)."""
        name = f"v{len(self.definitions)}"
        self.definitions.append(f"${name}: {type_}")
        if value is not _ABSENT:
            self.variables[name] = value
        return f"${name}"

    def directives(self) -> str:
        """Usually none; else @skip or @include, on a literal or a variable."""
        if not _percent(self.draw, self.directive_share):
            return ""
        condition = self.draw(st.sampled_from(["true", "false", "variable"]))
        if condition == "variable":
            condition = self.variable("Boolean!", self.pick([True, False], [_ABSENT, "yes"]))
        return f" @{self.draw(st.sampled_from(['skip', 'include']))}(if: {condition})"

    def selection_set(self, type_: str, depth: int) -> str:
        count = self.draw(st.integers(1, 3))
        return "{ " + " ".join(self.selection(type_, depth + 1) for _ in range(count)) + " }"

    def selection(self, type_: str, depth: int) -> str:
        kinds = ["field"] * 6 + ["__typename", *(["inline", "spread"] if depth < 4 else [])]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "__typename":
            return f"{self.alias('__typename')}__typename{self.directives()}"
        if kind == "inline":
            conditions = ["", f" on {type_}", *([" on Node"] if type_ == "Prediction" else [])]
            condition = self.draw(st.sampled_from(conditions))
            inner = "Node" if condition == " on Node" else type_
            return f"...{condition}{self.directives()} {self.selection_set(inner, depth)}"
        if kind == "spread":
            index = len(self.fragments)
            self.fragments.append("")  # reserves the name while the fragment's body is drawn
            body = self.selection_set(type_, depth)
            self.fragments[index] = f"fragment F{index} on {type_} {body}"
            return f"...F{index}{self.directives()}"
        return self.field(type_, depth)

    def field(self, type_: str, depth: int) -> str:
        objects = OBJECTS.get(type_, {})
        names = [*LEAVES[type_], *(name for name in objects if name != "modelVersion")]
        name = self.draw(st.sampled_from(names))
        if type_ == "Prediction" and _percent(self.draw, 2):
            name = "modelVersion"  # read through a loader: the general path's
        elif self.mistakes and _percent(self.draw, 3):
            name = "nope"
        selections = f" {self.selection_set(objects[name], depth)}" if name in objects else ""
        return f"{self.alias(name)}{name}{self.directives()}{selections}"

    def alias(self, name: str) -> str:
        """Usually none; a varying field's own alias; else the field's own, or (with mistakes)
        one that other fields may have too."""
        if not _percent(self.draw, 10):
            return ""
        if name in VARYING_FIELDS:
            return f"{VARYING_FIELDS[name]}: "
        return self.pick([f"my{name.lstrip('_')}: "], [f"{alias}: " for alias in ALIASES])

    def input(self, batch: bool) -> str:
        """The `input` argument: one variable, a literal object, or a literal whose fields are
        variables; with mistakes, a variable may have the wrong type, or no value."""
        type_ = "CreatePredictionsInput" if batch else "CreatePredictionInput"
        value = self.draw(prediction_inputs(batch, self.mistakes))
        how = self.draw(st.sampled_from(["variable", "literal", "fields"]))
        if how == "literal" and literal(value) is not None:
            return str(literal(value))
        if how == "fields":
            fields = [
                f"{name}: {self.variable(INPUT_FIELDS.get(name, 'Int'), item)}"
                if self.draw(st.booleans()) or literal(item) is None
                else f"{name}: {literal(item)}"
                for name, item in value.items()
            ]
            return "{" + ", ".join(fields) + "}"
        declared = self.pick([f"{type_}!"], [type_, "JSON!"])
        return self.variable(declared, self.pick([value], [_ABSENT, None, "x"]))

    def root(self, index: int) -> str:
        batch = self.draw(st.booleans())
        name = "createPredictions" if batch else "createPrediction"
        alias = self.pick([f"r{index}: "] * 3 + ([""] if index == 0 else []), ["r0: ", ""])
        if self.mistakes and _percent(self.draw, 5):
            return f"{alias}__typename"
        payload = self.selection_set(f"{name[0].upper()}{name[1:]}Payload", 0)
        return f"{alias}{name}(input: {self.input(batch)}){self.directives()} {payload}"


@st.composite
def prediction_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A POST body running one to three prediction mutations, with its variables and operation
    name; with mistakes, another operation, extra variables or variables that are not an object,
    an operation name that is wrong or not a string."""
    mistakes = draw(st.sampled_from([False, False, True]))
    document = _Document(draw, mistakes)
    roots = [document.root(index) for index in range(draw(st.integers(1, 3)))]
    name = draw(st.sampled_from(["", "Score"]))
    definitions = f"({', '.join(document.definitions)})" if document.definitions else ""
    text = f"mutation {name}{definitions} {{ {' '.join(roots)} }}"
    others = document.pick([[]], [["query Other { __typename }"]])
    query = "\n".join([text, *document.fragments, *others])
    variables = document.pick(
        [document.variables], [{**document.variables, "unused": 1}, None, [], "x"]
    )
    operation = document.pick([None, name or None], ["Other", "Nope", ["Score"], {"a": 1}])
    return {"query": query, "variables": variables, "operationName": operation}
