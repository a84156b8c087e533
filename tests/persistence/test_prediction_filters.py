"""Every field of the prediction filter is declared once, with a roll-up decision."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest

from modelql.persistence.prediction_filters import (
    FILTER_FIELDS,
    PredictionQuery,
    RollupDecision,
    declarations,
    narrowing,
)


def test_every_filter_field_is_declared_with_a_rollup_decision():
    assert list(FILTER_FIELDS) == [each.name for each in fields(PredictionQuery)]
    for name, declared in FILTER_FIELDS.items():
        assert isinstance(declared.rollups, RollupDecision), name


def test_a_field_without_a_declaration_or_rollup_decision_is_refused():
    @dataclass(frozen=True)
    class Undeclared:
        label: str | None = None

    @dataclass(frozen=True)
    class Undecided:
        label: str | None = field(
            default=None,
            metadata=narrowing(
                sql=lambda p, label: p.label == label,
                live=lambda item, label: item.row.label == label,
                rollups=None,  # type: ignore[arg-type]
            ),
        )

    for query_type in (Undeclared, Undecided):
        with pytest.raises(TypeError, match="label"):
            declarations(query_type)
