"""The GraphQL `PredictionFilter` is the declared prediction filter: the same fields, of the
same types, each handed to its namesake in the audit query."""

from __future__ import annotations

import typing
import uuid
from datetime import UTC, datetime

from modelql.graph.types.predictions import PredictionFilter
from modelql.persistence.prediction_filters import FILTER_FIELDS, PredictionQuery

SAMPLE_VALUES = {
    str | None: "x",
    int | None: 2,
    float | None: 0.5,
    bool | None: False,
    datetime | None: datetime(2026, 11, 23, 10, tzinfo=UTC),
}


def test_the_graphql_filter_has_the_declared_fields_and_types():
    declared = typing.get_type_hints(PredictionQuery)
    public = {name: declared[name] for name, field in FILTER_FIELDS.items() if field.public}
    assert typing.get_type_hints(PredictionFilter) == public


def test_each_graphql_field_reaches_its_namesake_in_the_audit_query():
    hints = typing.get_type_hints(PredictionFilter)
    given = {name: SAMPLE_VALUES[hint] for name, hint in hints.items()}
    scope = uuid.uuid4()
    query = PredictionFilter.query(PredictionFilter(**given), version_id=scope)
    assert query == PredictionQuery(**given, version_id=scope)
    assert PredictionFilter.query(None, model_id=scope) == PredictionQuery(model_id=scope)
