"""Archiving partitions of predictions before they are dropped: each partition's predictions,
and the outcomes recorded for them, to two Parquet files, then a manifest (bounds, row counts
and each file's SHA-256 over its rows, see `persistence/archive_format.py`) written last.

A partition is read in one REPEATABLE READ snapshot while it is held against `prune` (a shared
advisory lock, as `audit verify` holds it). Archiving again finds a complete archive (manifest
present, its row counts those of the store, its files there with their sizes) and writes
nothing; otherwise the manifest is removed first and everything is written anew, each file
under a temporary name then renamed (`persistence/parquet_archive.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from modelql.persistence import partition_rows, partitions
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
)
from modelql.persistence.parquet_archive import ArchiveLocation, ParquetFileWriter
from modelql.persistence.partitions import Partition, PartitionInUseError

BATCH_ROWS = 50_000
"""Rows read per fetch, and so per Parquet row group."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ArchivedPartition:
    partition: Partition
    manifest: Manifest
    written: bool
    """False: a complete archive of it was already there; nothing was written."""


class PartitionArchiver:
    """Archives partitions to one location (a directory or an S3-compatible URL)."""

    def __init__(
        self,
        target: str,
        *,
        batch_rows: int = BATCH_ROWS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.target = target
        self._batch_rows = batch_rows
        self._clock = clock

    async def archive(
        self, connection: asyncpg.Connection, partition: Partition
    ) -> ArchivedPartition:
        """Archive a partition the caller holds against readers and prune (prune's step
        before a drop); `connection` is outside any transaction."""
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            return await self._archive(connection, partition)

    async def archive_expiring(
        self,
        connection: asyncpg.Connection,
        *,
        before: datetime,
        on_archived: Callable[[ArchivedPartition], None] = lambda archived: None,
    ) -> list[ArchivedPartition]:
        """Archive every partition entirely older than `before`, oldest first, each held
        against prune while it is read; PartitionInUseError when a prune holds one (the
        partitions before it stay archived)."""
        archived: list[ArchivedPartition] = []
        for partition in await partitions.partitions(connection):
            if partition.upper > before:
                continue
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                if not await partitions.hold_for_archiving(connection, partition):
                    raise PartitionInUseError(
                        f"{partition.name} is being pruned; archived {len(archived)} "
                        "partitions before it. Archive again once the prune has finished."
                    )
                archived.append(await self._archive(connection, partition))
            on_archived(archived[-1])
        return archived

    async def _archive(
        self, connection: asyncpg.Connection, partition: Partition
    ) -> ArchivedPartition:
        location = await asyncio.to_thread(ArchiveLocation, self.target)
        name = partition.name.rsplit(".", 1)[-1]
        predictions_name, outcomes_name, manifest_name = file_names(name)
        complete = await self._complete(location, connection, partition, manifest_name)
        if complete is not None:
            return ArchivedPartition(partition, complete, written=False)
        await asyncio.to_thread(_clear, location, manifest_name, name)
        predictions = await self._write(
            location,
            predictions_name,
            PREDICTION_COLUMNS,
            partition_rows.prediction_rows(connection, partition, batch_rows=self._batch_rows),
        )
        outcomes = await self._write(
            location,
            outcomes_name,
            OUTCOME_COLUMNS,
            partition_rows.outcome_rows(connection, partition, batch_rows=self._batch_rows),
        )
        manifest = Manifest(
            name, partition.lower, partition.upper, predictions, outcomes, self._clock()
        )
        await asyncio.to_thread(location.write_bytes, manifest_name, manifest.to_json())
        return ArchivedPartition(partition, manifest, written=True)

    async def _complete(
        self,
        location: ArchiveLocation,
        connection: asyncpg.Connection,
        partition: Partition,
        manifest_name: str,
    ) -> Manifest | None:
        """The manifest of a complete archive of the partition as the store holds it now."""
        text = await asyncio.to_thread(location.read_bytes, manifest_name)
        if text is None:
            return None
        try:
            manifest = Manifest.from_json(text)
        except ManifestError:
            return None
        files = (manifest.predictions, manifest.outcomes)
        sizes = [await asyncio.to_thread(location.size, file.name) for file in files]
        counts = await partition_rows.counts(connection, partition)
        if (
            (manifest.lower, manifest.upper) == (partition.lower, partition.upper)
            and tuple(file.rows for file in files) == counts
            and sizes == [file.bytes for file in files]
        ):
            return manifest
        return None

    async def _write(
        self,
        location: ArchiveLocation,
        name: str,
        columns: Sequence[Column],
        batches: AsyncIterator[list[tuple[Value, ...]]],
    ) -> ArchivedFile:
        """Write one file; the next batch is fetched (PostgreSQL at work) while one is hashed
        and written (in a thread)."""
        writer = await asyncio.to_thread(location.writer, name, columns)
        hashed = RowHash()
        fetching = asyncio.ensure_future(anext(batches, None))
        try:
            while (rows := await fetching) is not None:
                fetching = asyncio.ensure_future(anext(batches, None))
                await asyncio.to_thread(_write_batch, writer, hashed, rows)
            size = await asyncio.to_thread(writer.finish)
        except BaseException:
            fetching.cancel()
            with contextlib.suppress(BaseException):
                await fetching
            with contextlib.suppress(Exception):
                await asyncio.to_thread(writer.abandon)
            raise
        return ArchivedFile(name, hashed.rows, hashed.hexdigest(), size)


def _write_batch(writer: ParquetFileWriter, hashed: RowHash, rows: list[tuple[Value, ...]]) -> None:
    hashed.update(rows)
    writer.write(rows)


def _clear(location: ArchiveLocation, manifest_name: str, partition: str) -> None:
    """Make the location ready for a partition's archive: there, its manifest removed (an
    archive being rewritten is never taken for complete), and the temporary files an
    interrupted run left."""
    location.prepare()
    location.delete(manifest_name)
    for leftover in location.leftovers(f"{partition}."):
        location.delete(leftover)
