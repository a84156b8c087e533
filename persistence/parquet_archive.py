"""Where archived partitions are kept: a directory or an S3-compatible bucket, through
pyarrow's file systems, holding Parquet files and manifests. The only module that touches
pyarrow (which ships no type information): what crosses its boundary is plain Python.

A local file is written under a temporary name and renamed into place once complete (and
flushed to disk); on an object store the upload is atomic by itself (an object is visible only
once its upload completed), so there it is written under its own name: a rename there is a copy
(and S3 copies a single object of at most 5 GB)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from modelql.persistence.archive_format import Column, Kind, Value

_TYPES: dict[Kind, Any] = {
    Kind.TEXT: pa.string(),
    Kind.FLOAT: pa.float64(),
    Kind.INTEGER: pa.int32(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
_TEMPORARY = ".tmp-"
T = TypeVar("T")


class ArchiveLocationError(RuntimeError):
    """The archive's location cannot be reached, read or written."""


def _schema(columns: Sequence[Column]) -> Any:
    return pa.schema([pa.field(column.name, _TYPES[column.kind]) for column in columns])


class ParquetFileWriter:
    """One Parquet file being written, batch by batch; `finish` puts it in place."""

    def __init__(self, location: ArchiveLocation, name: str, columns: Sequence[Column]) -> None:
        self._location = location
        self._name = name
        self._path = location.path(
            f"{name}{_TEMPORARY}{uuid.uuid4().hex}" if location.is_local else name
        )
        self._schema = _schema(columns)
        self._stream = location.filesystem.open_output_stream(self._path)
        self._writer = pq.ParquetWriter(self._stream, self._schema, compression="zstd")

    def write(self, rows: Sequence[Sequence[Value]]) -> None:
        """Append rows (values in the order of the columns) as one row group."""
        if not rows:
            return
        arrays = [
            pa.array(values, type=field.type)
            for values, field in zip(zip(*rows, strict=True), self._schema, strict=True)
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def finish(self) -> int:
        """Close the file and put it under its name; its size in bytes."""
        self._writer.close()
        self._stream.close()
        if self._location.is_local:
            _flush_to_disk(self._path)
            self._location.filesystem.move(self._path, self._location.path(self._name))
        return self._location.size(self._name) or 0

    def abandon(self) -> None:
        """Stop and remove what was written (never the file a previous run completed)."""
        try:
            self._writer.close()
            self._stream.close()
        finally:
            if self._location.is_local:
                self._location.filesystem.delete_file(self._path)


def _flush_to_disk(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ArchiveLocation:
    """A directory (a path, or a file:// URL) or an S3-compatible prefix
    (`s3://bucket/prefix?endpoint_override=host:port&scheme=http&region=...`; credentials from
    the environment as for any AWS SDK)."""

    def __init__(self, target: str) -> None:
        self.target = target
        try:
            if "://" in target:
                self.filesystem, self.root = pafs.FileSystem.from_uri(target)
            else:
                self.filesystem = pafs.LocalFileSystem()
                self.root = str(Path(target).resolve())
        except (pa.ArrowException, OSError, ValueError) as error:
            raise ArchiveLocationError(f"{self.shown}: {error}") from None
        self.is_local: bool = isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def shown(self) -> str:
        """The location without what may hold credentials (user information, query)."""
        parts = urlsplit(self.target)
        if not parts.scheme:
            return self.target
        return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="").geturl()

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def prepare(self) -> None:
        """Create the directory when it is missing (a bucket must exist)."""
        self._guarded(lambda: self.filesystem.create_dir(self.root, recursive=True))

    def writer(self, name: str, columns: Sequence[Column]) -> ParquetFileWriter:
        return self._guarded(lambda: ParquetFileWriter(self, name, columns))

    def batches(
        self, name: str, columns: Sequence[Column], *, batch_rows: int
    ) -> Iterator[list[tuple[Value, ...]]]:
        """The rows of a Parquet file, batch by batch, values in the order of `columns`;
        ArchiveLocationError when it cannot be read or lacks a column of the right type."""
        try:
            parquet = pq.ParquetFile(self.filesystem.open_input_file(self.path(name)))
            expected = _schema(columns)
            found = parquet.schema_arrow
            for field in expected:
                index = found.get_field_index(field.name)
                if index < 0 or not found.field(index).type.equals(field.type):
                    raise ArchiveLocationError(
                        f"{name} has no column {field.name} of type {field.type}"
                    )
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=expected.names):
                values = [batch.column(column.name).to_pylist() for column in columns]
                yield list(zip(*values, strict=True))
        except (pa.ArrowException, OSError) as error:
            raise ArchiveLocationError(f"{name}: {error}") from None

    def size(self, name: str) -> int | None:
        """The file's size in bytes; None when there is no such file."""
        info = self._guarded(lambda: self.filesystem.get_file_info(self.path(name)))
        if info.type != pafs.FileType.File:
            return None
        size: int = info.size
        return size

    def names(self) -> list[str]:
        """The names of the files directly in the location (none when it does not exist)."""
        selector = pafs.FileSelector(self.root, allow_not_found=True, recursive=False)
        infos = self._guarded(lambda: self.filesystem.get_file_info(selector))
        return sorted(str(info.base_name) for info in infos if info.type == pafs.FileType.File)

    def read_bytes(self, name: str) -> bytes | None:
        if self.size(name) is None:
            return None

        def read() -> bytes:
            with self.filesystem.open_input_stream(self.path(name)) as stream:
                return bytes(stream.readall())

        return self._guarded(read)

    def write_bytes(self, name: str, content: bytes) -> None:
        """Write a whole small file, atomically as the Parquet files are."""

        def write() -> None:
            temporary = self.path(f"{name}{_TEMPORARY}{uuid.uuid4().hex}")
            target = temporary if self.is_local else self.path(name)
            with self.filesystem.open_output_stream(target) as stream:
                stream.write(content)
            if self.is_local:
                _flush_to_disk(temporary)
                self.filesystem.move(temporary, self.path(name))

        self._guarded(write)

    def delete(self, name: str) -> None:
        """Remove a file if it is there."""
        if self.size(name) is not None:
            self._guarded(lambda: self.filesystem.delete_file(self.path(name)))

    def leftovers(self, prefix: str) -> list[str]:
        """Temporary files an interrupted run left for names starting with `prefix`."""
        return [n for n in self.names() if n.startswith(prefix) and _TEMPORARY in n]

    def _guarded(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except (pa.ArrowException, OSError) as error:
            raise ArchiveLocationError(f"{self.shown}: {error}") from None
