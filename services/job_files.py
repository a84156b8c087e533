"""A prediction job's file (CSV or Parquet, read with pyarrow): its format, its columns, and
its rows as the feature mappings validation and scoring take, chunk by chunk. Row numbers
count data rows from 1 (a CSV's header is not a row)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType, SourceFormat

PARQUET_MAGIC = b"PAR1"
_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_NUMBERS = (FeatureType.NUMBER, FeatureType.INTEGER)


class UnreadableFileError(Exception):
    """The file is neither CSV nor Parquet, or pyarrow cannot read it."""


Source = bytes | Path
"""An uploaded file's content, or a server-side file."""


def detect_format(name: str, head: bytes) -> SourceFormat:
    """Parquet by its magic bytes; CSV by its name and text content; else unreadable."""
    if head.startswith(PARQUET_MAGIC):
        return SourceFormat.PARQUET
    if name.lower().endswith(_CSV_SUFFIXES) and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 4:  # not a character cut by the sample's end
                raise UnreadableFileError("the file is not UTF-8 text") from None
        return SourceFormat.CSV
    raise UnreadableFileError(
        "the file is neither Parquet (no PAR1 magic) nor CSV (a .csv name and UTF-8 text)"
    )


def column_names(source: Source, file_format: SourceFormat) -> list[str]:
    """The file's columns (a CSV's header, a Parquet file's schema)."""
    try:
        if file_format is SourceFormat.PARQUET:
            return list(pq.read_schema(_readable(source)).names)
        with pa_csv.open_csv(_readable(source)) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise UnreadableFileError(f"cannot read the file's columns: {error}") from None


def missing_columns(columns: Sequence[str], signature: Sequence[FeatureSpec]) -> list[str]:
    present = set(columns)
    return [spec.name for spec in signature if spec.required and spec.name not in present]


@dataclass(frozen=True)
class RowTable:
    """The signature's columns of a whole file, as pyarrow read them."""

    table: pa.Table
    signature: tuple[FeatureSpec, ...]

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def rows(self, start: int, end: int) -> list[dict[str, Any]]:
        """Rows `start` to `end` (0-based, end excluded) as feature mappings in signature
        order; a missing cell is left out (validation names it)."""
        part = self.table.slice(start, end - start)
        names = [spec.name for spec in self.signature if spec.name in part.column_names]
        columns = [_cells(part.column(name).to_pylist(), self._spec(name)) for name in names]
        if not any(None in column for column in columns):
            return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        return [
            {name: value for name, value in zip(names, values, strict=True) if value is not None}
            for values in zip(*columns, strict=True)
        ]

    def number_matrix(self, start: int, end: int) -> np.ndarray | None:
        """Rows `start` to `end` as a float matrix in signature order, straight from the
        columns, when every feature is a number, its column numeric and without a missing
        cell; None otherwise (the rows are then checked one by one)."""
        if not self.signature or any(spec.type not in _NUMBERS for spec in self.signature):
            return None
        part = self.table.slice(start, end - start)
        columns = []
        for spec in self.signature:
            if spec.name not in part.column_names:
                return None
            column = part.column(spec.name)
            if column.null_count or not (
                pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            ):
                return None
            columns.append(column.to_numpy().astype(np.float64, copy=False))
        return np.column_stack(columns) if columns else None

    def _spec(self, name: str) -> FeatureSpec:
        return next(spec for spec in self.signature if spec.name == name)


def read(source: Source, file_format: SourceFormat, signature: Sequence[FeatureSpec]) -> RowTable:
    """The signature's columns of the whole file (other columns are not read)."""
    names = {spec.name for spec in signature}
    try:
        if file_format is SourceFormat.PARQUET:
            present = [name for name in pq.read_schema(_readable(source)).names if name in names]
            table = pq.read_table(_readable(source), columns=present)
        else:
            text_types = {
                spec.name: pa.string()
                for spec in signature
                if spec.type in (FeatureType.CATEGORY, FeatureType.TEXT)
            }
            table = pa_csv.read_csv(
                _readable(source),
                convert_options=pa_csv.ConvertOptions(
                    column_types=text_types,
                    include_columns=[
                        name for name in column_names(source, file_format) if name in names
                    ],
                ),
            )
    except (pa.ArrowException, OSError, ValueError) as error:
        raise UnreadableFileError(f"cannot read the file: {error}") from None
    return RowTable(table.combine_chunks(), tuple(signature))


def _cells(values: list[Any], spec: FeatureSpec) -> list[Any]:
    """A column's values as validation takes them: a numeric feature's column that pyarrow
    read as text (some cell is not a number) has its numbers converted, cell by cell."""
    if spec.type in _NUMBERS and any(type(value) is str for value in values):
        return [_number(value) if type(value) is str else value for value in values]
    if spec.type is FeatureType.BOOLEAN and any(type(value) is str for value in values):
        booleans = {"true": True, "false": False}
        return [
            booleans.get(value.lower(), value) if type(value) is str else value for value in values
        ]
    return values


def _number(text: str) -> int | float | str | None:
    """A cell of a numeric column read as text: its number, None when blank, else the text
    (which validation reports)."""
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _readable(source: Source) -> Any:
    return io.BytesIO(source) if isinstance(source, bytes) else str(source)


@dataclass(frozen=True)
class JobResult:
    """One stored prediction of a job."""

    row: int
    label: str | None
    value: float | None
    confidence: float | None
    probabilities: list[dict[str, Any]] | None


def write_results(results: Sequence[JobResult], path: Path) -> None:
    """A job's predictions as Parquet (a `.parquet` or `.pq` name) or CSV: the row number,
    the label or value, the confidence and one `probability_<label>` column per class; the
    columns no row has are left out."""
    columns: dict[str, list[Any]] = {
        "row": [result.row for result in results],
        "label": [result.label for result in results],
        "value": [result.value for result in results],
        "confidence": [result.confidence for result in results],
    }
    classes = [item["label"] for item in next((r.probabilities for r in results), None) or []]
    for index, name in enumerate(classes):
        columns[f"probability_{name}"] = [
            None if r.probabilities is None else r.probabilities[index]["probability"]
            for r in results
        ]
    kept = {name: values for name, values in columns.items() if any(v is not None for v in values)}
    table = pa.table(kept or {"row": []})
    if path.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(table, str(path))
    else:
        pa_csv.write_csv(table, str(path))
