"""Drift reports: live inputs and outputs of a version, binned like its reference profile in
SQL, compared with the profile by the population stability index (PSI)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelql.models.profile import (
    CATEGORICAL,
    MISSING,
    OTHER,
    Distribution,
    ReferenceProfile,
    stability_index,
)
from modelql.persistence.drift_repository import (
    CATEGORY_INPUT,
    NUMERIC_INPUT,
    OUTPUT_LABEL,
    OUTPUT_VALUE,
    BinCount,
    BinQuery,
    count_bins,
    profiles_for_versions,
)
from modelql.services.catalogue import Catalogue, Version

METHOD = "psi"
UNPROFILED = "none"
OUTPUT_POSITION = -1


@dataclass(frozen=True)
class DriftPolicy:
    """When a score says "drifted", and how many live predictions a report looks at."""

    psi_threshold: float = 0.2
    min_sample: int = 30
    max_sample: int = 10_000


@dataclass(frozen=True)
class Bin:
    label: str
    reference: float
    live: float


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    score: float | None
    drifted: bool | None
    out_of_range_rate: float | None
    bins: list[Bin]


@dataclass(frozen=True)
class DriftReport:
    reference_available: bool
    sample_size: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None


async def drift_reports(
    session: AsyncSession,
    catalogue: Catalogue,
    version_ids: Sequence[uuid.UUID],
    *,
    since: datetime | None,
    until: datetime | None,
    policy: DriftPolicy,
) -> dict[uuid.UUID, DriftReport]:
    """A report per version, in two statements (profiles, then live bins) for any number."""
    profiles = {
        version_id: ReferenceProfile.from_json(profile)
        for version_id, profile in (await profiles_for_versions(session, version_ids)).items()
    }
    versions = await catalogue.versions(session, list(profiles))
    queries = [
        query
        for version_id, profile in profiles.items()
        for query in _queries(versions[version_id], profile)
    ]
    counts: dict[tuple[uuid.UUID, int], list[BinCount]] = defaultdict(list)
    for row in await count_bins(
        session, queries, since=since, until=until, max_sample=policy.max_sample
    ):
        counts[(row.version_id, row.position)].append(row)
    return {
        version_id: (
            _report(versions[version_id], profiles[version_id], counts, policy)
            if version_id in profiles
            else DriftReport(False, 0, [], None)
        )
        for version_id in version_ids
    }


def _queries(version: Version, profile: ReferenceProfile) -> list[BinQuery]:
    queries = []
    for position, spec in enumerate(version.signature):
        reference = profile.feature(spec.name)
        if reference is None:
            continue
        kind = CATEGORY_INPUT if reference.kind == CATEGORICAL else NUMERIC_INPUT
        queries.append(
            BinQuery(
                version.id, position, spec.name, kind, reference.edges, spec.minimum, spec.maximum
            )
        )
    if profile.output is not None:
        kind = OUTPUT_LABEL if profile.output.kind == CATEGORICAL else OUTPUT_VALUE
        queries.append(
            BinQuery(version.id, OUTPUT_POSITION, profile.output.name, kind, profile.output.edges)
        )
    return queries


def _report(
    version: Version,
    profile: ReferenceProfile,
    counts: dict[tuple[uuid.UUID, int], list[BinCount]],
    policy: DriftPolicy,
) -> DriftReport:
    sample_size = sum(row.count for row in counts.get((version.id, OUTPUT_POSITION), []))
    features = []
    for position, spec in enumerate(version.signature):
        reference = profile.feature(spec.name)
        if reference is None:
            features.append(FeatureDrift(spec.name, UNPROFILED, None, None, None, []))
            continue
        rows = counts.get((version.id, position), [])
        features.append(_compare(reference, rows, profile.sample_size, policy))
    prediction = None
    if profile.output is not None:
        rows = counts.get((version.id, OUTPUT_POSITION), [])
        prediction = _compare(profile.output, rows, profile.sample_size, policy)
    return DriftReport(True, sample_size, features, prediction)


def _compare(
    reference: Distribution, rows: list[BinCount], reference_size: int, policy: DriftPolicy
) -> FeatureDrift:
    """Reference and live shares per bin (plus "(other)" and "(missing)" when either side has
    any), the PSI over them, and the share of live values outside the training range."""
    labels = reference.bin_labels()
    shares = reference.reference_shares()
    live = [0] * len(labels)
    other = missing = outside = checked = 0
    for row in rows:
        if row.bin is None:
            missing += row.count
        elif reference.kind == CATEGORICAL:
            if row.bin in reference.categories:
                live[labels.index(row.bin)] += row.count
            else:
                other += row.count
        else:
            live[int(row.bin)] += row.count
        if row.out_of_range is not None:
            checked += row.count
            outside += row.count if row.out_of_range else 0
    for label, count, share in ((OTHER, other, 0.0), (MISSING, missing, reference.missing)):
        if count or share:
            labels.append(label)
            live.append(count)
            shares.append(share)
    total = sum(live)
    score = stability_index(shares, live, reference_size) if total >= policy.min_sample else None
    return FeatureDrift(
        feature=reference.name,
        method=METHOD,
        score=score,
        drifted=None if score is None else score > policy.psi_threshold,
        out_of_range_rate=outside / checked if checked else None,
        bins=[
            Bin(label, share, count / total if total else 0.0)
            for label, share, count in zip(labels, shares, live, strict=True)
        ],
    )
