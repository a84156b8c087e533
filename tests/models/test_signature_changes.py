"""Signature diffs: each feature added, removed, or changed in type, range, categories or
required flag, one change per way it differs."""

from __future__ import annotations

from modelql.models.signature import FeatureSpec
from modelql.models.signature_changes import SignatureChangeKind as Kind
from modelql.models.signature_changes import signature_changes
from modelql.models.vocabulary import FeatureType

AGE = FeatureSpec("age", FeatureType.INTEGER, minimum=18, maximum=90)
PLAN = FeatureSpec("plan", FeatureType.CATEGORY, allowed_values=("basic", "pro"))
NOTE = FeatureSpec("note", FeatureType.TEXT, required=False)


def kinds(before, after) -> list[tuple[str, Kind]]:
    return [(change.feature, change.kind) for change in signature_changes(before, after)]


def test_identical_signatures_have_no_changes_whatever_the_order_or_descriptions():
    described = FeatureSpec("age", FeatureType.INTEGER, minimum=18, maximum=90, description="y")
    reordered = FeatureSpec("plan", FeatureType.CATEGORY, allowed_values=("pro", "basic"))
    assert kinds([AGE, PLAN], [reordered, described]) == []


def test_added_then_removed_features():
    changes = signature_changes([AGE, NOTE], [AGE, PLAN])
    assert [(c.feature, c.kind, c.before, c.after) for c in changes] == [
        ("plan", Kind.ADDED, None, PLAN),
        ("note", Kind.REMOVED, NOTE, None),
    ]


def test_each_way_a_feature_differs_is_one_change():
    after = [
        FeatureSpec("age", FeatureType.NUMBER, required=False, minimum=16, maximum=90),
        FeatureSpec("plan", FeatureType.CATEGORY, allowed_values=("basic", "pro", "team")),
        FeatureSpec("note", FeatureType.TEXT, required=True),
    ]
    assert kinds([AGE, PLAN, NOTE], after) == [
        ("age", Kind.RETYPED),
        ("age", Kind.RANGE_CHANGED),
        ("age", Kind.REQUIRED_CHANGED),
        ("plan", Kind.CATEGORIES_CHANGED),
        ("note", Kind.REQUIRED_CHANGED),
    ]
