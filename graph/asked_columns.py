"""Which costly prediction columns a page's selection asks for: a page read without `inputs` and
`probabilities` decodes no JSON (most audit pages show labels, confidences and times)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import strawberry

COSTLY_PREDICTION_FIELDS = ("inputs", "probabilities")
"""Prediction fields each read from a JSON column of the same name."""


class _DirectiveError(Exception):
    """A selection under a directive (@include, @skip): what it asks for is not worked out."""


def unasked_prediction_columns(info: strawberry.Info) -> frozenset[str]:
    """The costly columns no prediction of this connection field (`nodes` or `edges { node }`)
    asks for; none when a directive makes the answer depend on variables."""
    try:
        asked = set(_prediction_fields(info.selected_fields))
    except _DirectiveError:
        return frozenset()
    return frozenset(COSTLY_PREDICTION_FIELDS).difference(asked)


def _prediction_fields(connection_fields: Iterable[Any]) -> Iterator[str]:
    for connection in _fields(connection_fields):
        for field in _fields(connection.selections):
            if field.name == "nodes":
                yield from (node_field.name for node_field in _fields(field.selections))
            elif field.name == "edges":
                for edge_field in _fields(field.selections):
                    if edge_field.name == "node":
                        yield from (node.name for node in _fields(edge_field.selections))


def _fields(selections: Iterable[Any]) -> Iterator[Any]:
    """The fields of a selection set (`Info.selected_fields`' items), through fragments, which
    have a type condition (whatever it is: reading a column too many is harmless)."""
    for selection in selections:
        if selection.directives:
            raise _DirectiveError
        if hasattr(selection, "type_condition"):
            yield from _fields(selection.selections)
        else:
            yield selection
