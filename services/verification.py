"""Verifying the prediction store: re-score stored predictions with the artifact of the version
recorded on each (its sha256 checked on load) and compare every output exactly.

Scikit-learn's numerical kernels can round the last bit differently for different batch
shapes, so predictions are re-scored as they were scored: the predictions one version stored
in one transaction (one group commit) form one estimator call, in the order of their ids."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import partitions
from modelql.persistence.database import driver_connection
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.prediction_repository import (
    begin_snapshot,
    count_predictions,
    predictions_after,
    sampled_transactions,
)
from modelql.persistence.tables import Prediction
from modelql.services.catalogue import Catalogue, Version
from modelql.services.comparison import served_output
from modelql.services.errors import ModelUnavailableError
from modelql.services.inference import ModelCache

PAGE_ROWS = 5_000


@dataclass
class VersionTally:
    """What was verified of one version."""

    model: str
    version: Version
    checked: int = 0
    mismatched: int = 0
    unverifiable: int = 0
    """Predictions not re-scored: the artifact failed its checksum or could not be read."""
    problem: str | None = None


@dataclass
class VerificationReport:
    tallies: dict[uuid.UUID, VersionTally] = field(default_factory=dict)
    mismatches: list[uuid.UUID] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches and not any(t.unverifiable for t in self.tallies.values())


class Verifier:
    """Reads in one read-only snapshot; scores in the model cache's worker threads."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        model_cache: ModelCache,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._model_cache = model_cache

    async def verify(
        self,
        query: PredictionQuery,
        *,
        sample: int | None = None,
        on_total: Callable[[int], None] = lambda total: None,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> VerificationReport:
        """Verify every prediction the query matches, or a random `sample` of them (with the
        other predictions stored in their transactions). The partitions of the query's window
        are held against `modelql store prune` until it is done."""
        report = VerificationReport()
        async with self._sessionmaker() as session:
            await begin_snapshot(session)
            await partitions.hold_for_reading(
                await driver_connection(session),
                since=query.created_after,
                until=query.created_before,
            )
            if sample is not None:
                rows = await sampled_transactions(session, query, sample=sample)
                on_total(len(rows))
                await self.verify_rows(session, rows, report, on_progress)
                return report
            on_total(await count_predictions(session, query))
            after = None
            while rows := await predictions_after(session, query, after=after, limit=PAGE_ROWS):
                await self.verify_rows(session, rows, report, on_progress)
                after = rows[-1].created_at
        return report

    async def verify_rows(
        self,
        session: AsyncSession,
        rows: Sequence[Prediction],
        report: VerificationReport,
        on_progress: Callable[[int], None],
    ) -> None:
        """Re-score rows ordered by (created_at, id), whole transactions, whose versions are
        in the catalogue (archived predictions are verified through this too)."""
        versions = await self._catalogue.versions(
            session, list({row.model_version_id for row in rows})
        )
        routes = await self._catalogue.routes_by_id(session, list({row.model_id for row in rows}))
        transactions = itertools.groupby(
            rows, key=lambda row: (row.model_version_id, row.created_at)
        )
        for (version_id, _), grouped in transactions:
            group = list(grouped)
            version = versions[version_id]
            if version_id not in report.tallies:
                report.tallies[version_id] = VersionTally(routes[version.model_id].name, version)
            tally = report.tallies[version_id]
            await self._verify_group(tally, group, report)
            on_progress(len(group))

    async def _verify_group(
        self, tally: VersionTally, group: list[Prediction], report: VerificationReport
    ) -> None:
        tally.checked += len(group)
        try:
            batch = await self._model_cache.score(tally.version, [row.inputs for row in group])
        except (ModelUnavailableError, ValueError) as error:
            tally.unverifiable += len(group)
            tally.problem = str(error)
            return
        for row, output in zip(group, batch.scores.outputs(), strict=True):
            if served_output(row) != output:
                tally.mismatched += 1
                report.mismatches.append(row.id)
