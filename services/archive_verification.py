"""Verifying an archive of partitions (`modelql audit verify --archive`): each manifest's files
are read whole, their rows counted and hashed as they were when archived
(`persistence/archive_format.py`) and compared with the manifest, each prediction must lie
within its partition's bounds, and the predictions are re-scored exactly as `audit verify`
re-scores stored ones (`services/verification.py`: the artifact of their version, one estimator
call per transaction, every output compared exactly). Tampering is reported per partition: a
manifest that cannot be read or names another partition, a file missing or unreadable, a row
count or hash other than the manifest's, a row that cannot be read, data files without their
manifest."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence.archive_format import (
    OUTCOME_COLUMNS,
    PREDICTION_COLUMNS,
    ArchivedFile,
    Column,
    Manifest,
    ManifestError,
    RowHash,
    Value,
    file_names,
    partition_of,
)
from modelql.persistence.parquet_archive import ArchiveLocation, ArchiveLocationError
from modelql.persistence.tables import Prediction
from modelql.services.catalogue import Catalogue
from modelql.services.inference import ModelCache
from modelql.services.verification import VerificationReport, Verifier

BATCH_ROWS = 20_000
_NAMES = [column.name for column in PREDICTION_COLUMNS]


@dataclass(frozen=True, slots=True)
class ArchiveProblem:
    partition: str
    problem: str


@dataclass
class ArchiveReport:
    verification: VerificationReport = field(default_factory=VerificationReport)
    problems: list[ArchiveProblem] = field(default_factory=list)
    partitions: int = 0
    predictions: int = 0
    """Archived predictions read."""
    outcomes: int = 0

    @property
    def passed(self) -> bool:
        return self.partitions > 0 and not self.problems and self.verification.passed


class ArchiveVerifier:
    """Reads the archive in worker threads; scores in the model cache's."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        model_cache: ModelCache,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.catalogue = catalogue
        self.verifier = Verifier(
            sessionmaker=sessionmaker, catalogue=catalogue, model_cache=model_cache
        )
        self.batch_rows = batch_rows

    async def verify(
        self,
        target: str,
        *,
        on_total: Callable[[int], None] = lambda total: None,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> ArchiveReport:
        """Verify every archived partition at `target` (a directory or an S3-compatible URL);
        ArchiveLocationError when it cannot be read at all."""
        location = await asyncio.to_thread(ArchiveLocation, target)
        report = ArchiveReport()
        manifests = await self._manifests(location, report)
        on_total(sum(manifest.predictions.rows for manifest in manifests))
        async with self._sessionmaker() as session:
            for manifest in manifests:
                check = _PartitionCheck(
                    self, session, location, manifest, report, on_progress=on_progress
                )
                await check.run()
        if not manifests and not report.problems:
            report.problems.append(
                ArchiveProblem("-", f"no archived partition at {location.shown}")
            )
        return report

    async def _manifests(self, location: ArchiveLocation, report: ArchiveReport) -> list[Manifest]:
        """The readable manifests, oldest partition first; the others reported, and the data
        files that no manifest covers."""
        names = await asyncio.to_thread(location.names)
        manifests = []
        for partition in sorted({p for name in names if (p := partition_of(name)) is not None}):
            manifest_name = file_names(partition)[2]
            text = await asyncio.to_thread(location.read_bytes, manifest_name)
            if text is None:
                report.problems.append(ArchiveProblem(partition, f"{manifest_name} is missing"))
                continue
            try:
                manifest = Manifest.from_json(text)
            except ManifestError as error:
                report.problems.append(ArchiveProblem(partition, f"{manifest_name}: {error}"))
                continue
            if manifest.partition != partition:
                report.problems.append(
                    ArchiveProblem(partition, f"{manifest_name} names {manifest.partition}")
                )
                continue
            manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: manifest.upper)


class _PartitionCheck:
    """One archived partition: both files read, counted and hashed; predictions re-scored."""

    def __init__(
        self,
        verifier: ArchiveVerifier,
        session: AsyncSession,
        location: ArchiveLocation,
        manifest: Manifest,
        report: ArchiveReport,
        *,
        on_progress: Callable[[int], None],
    ) -> None:
        self._catalogue = verifier.catalogue
        self._verifier = verifier.verifier
        self._batch_rows = verifier.batch_rows
        self._session = session
        self._location = location
        self._manifest = manifest
        self._report = report
        self._on_progress = on_progress
        self._pending: list[Prediction] = []
        """The last transaction read: the next batch may hold the rest of it."""
        self._unreadable = 0
        self._outside = 0
        self._unknown: Counter[uuid.UUID] = Counter()

    def _problem(self, text: str) -> None:
        self._report.problems.append(ArchiveProblem(self._manifest.partition, text))

    async def run(self) -> None:
        self._report.partitions += 1
        manifest = self._manifest
        predictions_name, outcomes_name, _ = file_names(manifest.partition)
        if (manifest.predictions.name, manifest.outcomes.name) != (predictions_name, outcomes_name):
            self._problem(
                f"the manifest names files other than {predictions_name} and {outcomes_name}"
            )
            return
        self._report.predictions += await self._read(
            manifest.predictions, PREDICTION_COLUMNS, rescore=True
        )
        await self._verify(self._pending)
        self._report.outcomes += await self._read(manifest.outcomes, OUTCOME_COLUMNS, rescore=False)
        if self._unreadable:
            self._problem(f"{self._unreadable} predictions cannot be read (not re-scored)")
        if self._outside:
            self._problem(f"{self._outside} predictions lie outside the partition's bounds")
        for version_id, count in self._unknown.items():
            self._problem(
                f"{count} predictions of version {version_id}, which the catalogue does not "
                "hold (not re-scored)"
            )

    async def _read(self, file: ArchivedFile, columns: Sequence[Column], *, rescore: bool) -> int:
        """Read a file whole, hashing its rows (and re-scoring them, for predictions); the rows
        read."""
        if await asyncio.to_thread(self._location.size, file.name) is None:
            self._problem(f"{file.name} is missing")
            return 0
        hashed = RowHash()
        batches = self._location.batches(file.name, columns, batch_rows=self._batch_rows)
        try:
            while (rows := await asyncio.to_thread(next, batches, None)) is not None:
                hashed.update(rows)
                if rescore:
                    await self._rescore(rows)
        except ArchiveLocationError as error:
            self._problem(f"{file.name} cannot be read: {error}")
            return hashed.rows
        if hashed.rows != file.rows:
            self._problem(f"{file.name} holds {hashed.rows} rows, its manifest says {file.rows}")
        elif hashed.hexdigest() != file.sha256:
            self._problem(f"the rows of {file.name} do not match its manifest's SHA-256")
        return hashed.rows

    async def _rescore(self, rows: list[tuple[Value, ...]]) -> None:
        """Re-score the whole transactions read so far; keep the last one for the next batch."""
        read = self._pending + [p for row in rows if (p := self._prediction(row)) is not None]
        cut = len(read)
        if cut:
            last = (read[-1].model_version_id, read[-1].created_at)
            while cut and (read[cut - 1].model_version_id, read[cut - 1].created_at) == last:
                cut -= 1
        self._pending = read[cut:]
        await self._verify(read[:cut])

    async def _verify(self, predictions: list[Prediction]) -> None:
        if not predictions:
            return
        ids = list({prediction.model_version_id for prediction in predictions})
        known = await self._catalogue.versions(self._session, ids)
        verifiable = [p for p in predictions if p.model_version_id in known]
        self._unknown.update(
            p.model_version_id for p in predictions if p.model_version_id not in known
        )
        report = self._report.verification
        await self._verifier.verify_rows(self._session, verifiable, report, self._on_progress)
        self._on_progress(len(predictions) - len(verifiable))

    def _prediction(self, row: tuple[Value, ...]) -> Prediction | None:
        """The archived row as a prediction (not in any session); None when it cannot be read
        (counted)."""
        try:
            prediction = _prediction(dict(zip(_NAMES, row, strict=True)))
        except (TypeError, ValueError):
            self._unreadable += 1
            return None
        lower, upper = self._manifest.lower, self._manifest.upper
        if prediction.created_at >= upper or (lower is not None and prediction.created_at < lower):
            self._outside += 1
        return prediction


def _prediction(values: dict[str, Value]) -> Prediction:
    """TypeError or ValueError for a value of the wrong type or form."""
    probabilities = values["probabilities"]
    record_id = values["idempotency_record_id"]
    return Prediction(
        id=uuid.UUID(_text(values["id"])),
        model_id=uuid.UUID(_text(values["model_id"])),
        model_version_id=uuid.UUID(_text(values["model_version_id"])),
        inputs=orjson.loads(_text(values["inputs"])),
        label=_optional(values["label"], str),
        value=_optional(values["value"], float),
        probabilities=None if probabilities is None else orjson.loads(_text(probabilities)),
        confidence=_optional(values["confidence"], float),
        latency_ms=_required(values["latency_ms"], float),
        request_id=_text(values["request_id"]),
        caller=_optional(values["caller"], str),
        idempotency_key=_optional(values["idempotency_key"], str),
        idempotency_record_id=None if record_id is None else uuid.UUID(_text(record_id)),
        batch_index=_required(values["batch_index"], int),
        routed_by=_text(values["routed_by"]),
        created_at=_required(values["created_at"], datetime),
    )


T = TypeVar("T")


def _text(value: Value) -> str:
    return _required(value, str)


def _required(value: Value, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise TypeError(f"not a {kind.__name__}: {value!r}")
    return value


def _optional(value: Value, kind: type[T]) -> T | None:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"not a {kind.__name__}: {value!r}")
    return value
