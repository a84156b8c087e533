"""Reference profiles: a version's training inputs and outputs summarised as bins and shares,
and the population stability index that compares a live sample with them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType

QUANTILES = 10
MISSING = "(missing)"
OTHER = "(other)"
OUTPUT = "(prediction)"
"""The name the output's distribution goes by."""

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Distribution:
    """One feature (or the output) in the reference data. Numeric: inner bin edges (bin i holds
    edges[i-1] <= x < edges[i], as PostgreSQL's width_bucket) and a share per bin; categorical:
    a share per category. `missing` is the share of absent values."""

    name: str
    kind: str
    edges: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    missing: float = 0.0

    def bin_labels(self) -> list[str]:
        """Chart labels of the bins, in order."""
        if self.kind == CATEGORICAL:
            return list(self.categories)
        if not self.edges:
            return ["all"]
        edges = [f"{edge:.4g}" for edge in self.edges]
        inner = [f"{low} to {high}" for low, high in pairwise(edges)]
        return [f"< {edges[0]}", *inner, f">= {edges[-1]}"]

    def reference_shares(self) -> list[float]:
        """Shares in bin_labels order."""
        return list(self.categories.values()) if self.kind == CATEGORICAL else list(self.shares)


@dataclass(frozen=True)
class ReferenceProfile:
    """Per feature in signature order (TEXT features are not profiled), plus the output."""

    sample_size: int
    features: list[Distribution]
    output: Distribution | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        output = data.get("output")
        return cls(
            sample_size=int(data["sample_size"]),
            features=[Distribution(**item) for item in data["features"]],
            output=Distribution(**output) if output else None,
        )

    def feature(self, name: str) -> Distribution | None:
        return next((item for item in self.features if item.name == name), None)


def _category(value: Any) -> str | None:
    """How a value reads as a category: JSON spelling for booleans, None when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def numeric(name: str, values: Sequence[Any]) -> Distribution:
    """Decile edges (repeated edges merged) and the share of the values in each bin."""
    column = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    present = column[np.isfinite(column)]
    if present.size == 0:
        return Distribution(name, NUMERIC, missing=1.0 if column.size else 0.0)
    cuts = np.quantile(present, np.linspace(0, 1, QUANTILES + 1)[1:-1])
    edges = sorted({float(cut) for cut in cuts if present.min() < cut <= present.max()})
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return Distribution(
        name,
        NUMERIC,
        edges=edges,
        shares=[float(count) / column.size for count in counts],
        missing=float(column.size - present.size) / column.size,
    )


def categorical(name: str, values: Sequence[Any]) -> Distribution:
    """The share of each category, most frequent first."""
    categories = [_category(value) for value in values]
    counts = Counter(category for category in categories if category is not None)
    total = len(categories) or 1
    return Distribution(
        name,
        CATEGORICAL,
        categories={category: count / total for category, count in counts.most_common()},
        missing=(len(categories) - sum(counts.values())) / total,
    )


def build_profile(
    signature: Sequence[FeatureSpec],
    rows: Sequence[Mapping[str, Any]],
    outputs: Sequence[Any],
    *,
    classification: bool,
) -> ReferenceProfile:
    """The profile of reference rows (feature name -> value) and the model's outputs on them."""
    features = []
    for spec in signature:
        values = [row.get(spec.name) for row in rows]
        if spec.type in (FeatureType.NUMBER, FeatureType.INTEGER):
            features.append(numeric(spec.name, values))
        elif spec.type in (FeatureType.CATEGORY, FeatureType.BOOLEAN):
            features.append(categorical(spec.name, values))
    output = (categorical if classification else numeric)(OUTPUT, list(outputs))
    return ReferenceProfile(sample_size=len(rows), features=features, output=output)


def stability_index(reference: Sequence[float], live: Sequence[int], reference_size: int) -> float:
    """Population stability index, sum of (live - reference) * ln(live / reference) over bins,
    both sides smoothed by half a count per bin so that empty bins stay finite."""
    bins = len(live)
    total = sum(live)
    index = 0.0
    for share, count in zip(reference, live, strict=True):
        expected = (share * reference_size + 0.5) / (reference_size + 0.5 * bins)
        observed = (count + 0.5) / (total + 0.5 * bins)
        index += (observed - expected) * math.log(observed / expected)
    return index
