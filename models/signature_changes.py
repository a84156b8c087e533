"""What changed in an input signature between two versions of a model, feature by feature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from modelql.models.signature import FeatureSpec


class SignatureChangeKind(StrEnum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    RETYPED = "RETYPED"
    RANGE_CHANGED = "RANGE_CHANGED"
    CATEGORIES_CHANGED = "CATEGORIES_CHANGED"
    REQUIRED_CHANGED = "REQUIRED_CHANGED"


@dataclass(frozen=True)
class SignatureChange:
    """One change of one feature; `before`/`after` are None where the feature is absent."""

    feature: str
    kind: SignatureChangeKind
    before: FeatureSpec | None
    after: FeatureSpec | None


def signature_changes(
    before: Sequence[FeatureSpec], after: Sequence[FeatureSpec]
) -> list[SignatureChange]:
    """Every change from `before` to `after`: features of `after` in its order (added, or each
    way they differ), then the removed ones in the order of `before`. A feature that differs
    in several ways has one change per way; descriptions, feature order and the order of
    categories do not count."""
    old = {spec.name: spec for spec in before}
    new = {spec.name: spec for spec in after}
    changes: list[SignatureChange] = []
    for spec in after:
        previous = old.get(spec.name)
        if previous is None:
            changes.append(SignatureChange(spec.name, SignatureChangeKind.ADDED, None, spec))
            continue
        changes += [
            SignatureChange(spec.name, kind, previous, spec) for kind in _kinds(previous, spec)
        ]
    changes += [
        SignatureChange(spec.name, SignatureChangeKind.REMOVED, spec, None)
        for spec in before
        if spec.name not in new
    ]
    return changes


def _kinds(before: FeatureSpec, after: FeatureSpec) -> list[SignatureChangeKind]:
    differences = {
        SignatureChangeKind.RETYPED: before.type != after.type,
        SignatureChangeKind.RANGE_CHANGED: (before.minimum, before.maximum)
        != (after.minimum, after.maximum),
        SignatureChangeKind.CATEGORIES_CHANGED: _categories(before) != _categories(after),
        SignatureChangeKind.REQUIRED_CHANGED: before.required != after.required,
    }
    return [kind for kind, differs in differences.items() if differs]


def _categories(spec: FeatureSpec) -> frozenset[str] | None:
    return None if spec.allowed_values is None else frozenset(spec.allowed_values)
