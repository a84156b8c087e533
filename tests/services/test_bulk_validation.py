"""Checking a batch in bulk accepts exactly what checking each instance accepts, and gives the
same rows; whatever it cannot vouch for is left to the per-instance check."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services.features import rows_checked_in_bulk, validate_instance

SIGNATURE = (
    FeatureSpec("length", FeatureType.NUMBER),
    FeatureSpec("count", FeatureType.INTEGER),
    FeatureSpec("width", FeatureType.NUMBER),
)
NAMES = [spec.name for spec in SIGNATURE]

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**1100), max_value=2**1100),
    st.integers(min_value=-10, max_value=10),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
instances = st.one_of(
    st.fixed_dictionaries({name: values for name in NAMES}),
    st.dictionaries(st.sampled_from([*NAMES, "colour"]), values),
    st.lists(values, max_size=3),
    values,
)


def _one_by_one(batch: list[Any]) -> tuple[list[dict[str, Any]], bool]:
    checked = [
        validate_instance(item, SIGNATURE, ("instances", str(i))) for i, item in enumerate(batch)
    ]
    return [item.features for item in checked], any(item.problems for item in checked)


@given(st.lists(instances, min_size=1, max_size=5))
def test_bulk_rows_are_the_rows_of_checking_one_by_one(batch: list[Any]):
    bulk = rows_checked_in_bulk(batch, SIGNATURE)
    rows, problems = _one_by_one(batch)

    if bulk is not None:
        assert not problems
        assert bulk.rows == rows
        assert [list(row) for row in bulk.rows] == [NAMES] * len(batch)
        assert bulk.matrix.tolist() == [[float(row[name]) for name in NAMES] for row in rows]


def test_a_clean_numeric_batch_is_checked_in_bulk():
    batch = [{"width": 1, "length": 2.5, "count": 3.0}] * 3

    checked = rows_checked_in_bulk(batch, SIGNATURE)

    assert checked is not None
    assert checked.rows == [{"length": 2.5, "count": 3.0, "width": 1}] * 3
    assert checked.matrix.tolist() == [[2.5, 3.0, 1.0]] * 3


def test_anything_doubtful_is_left_to_the_one_by_one_check():
    doubtful = [
        [{"length": 1.0, "count": 1.5, "width": 1.0}],
        [{"length": True, "count": 1, "width": 1.0}],
        [{"length": float("inf"), "count": 1, "width": 1.0}],
        [{"length": 10**400, "count": 1, "width": 1.0}],
        [{"length": 1.0, "count": 1}],
        [{"length": 1.0, "count": 1, "width": 1.0, "colour": 1}],
        [[1.0, 1, 1.0]],
    ]
    for batch in doubtful:
        assert rows_checked_in_bulk(batch, SIGNATURE) is None, batch


def test_signatures_with_text_or_categories_are_checked_one_by_one():
    signature = (FeatureSpec("city", FeatureType.CATEGORY, allowed_values=("a",)),)

    assert rows_checked_in_bulk([{"city": "a"}], signature) is None
