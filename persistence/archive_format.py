"""What an archived partition of predictions holds: the columns of its two Parquet files (its
predictions, and the outcomes recorded for them), the manifest beside them, and the canonical
encoding of rows that the manifest's SHA-256 is taken over.

The canonical encoding (version 1), so that anyone can recompute a hash, from the Parquet files
or from the database before the drop: the rows in the order given below (`ORDER`), each encoded
as one JSON array of its values in the order of the columns below, then a line feed, all
concatenated; the SHA-256 of those bytes, in lowercase hex. In the array: ids (uuid) and texts
as JSON strings (ids in their 36-character lowercase form), the JSON columns (`inputs`,
`probabilities`) as a JSON string holding the text PostgreSQL prints for the jsonb value
(`inputs::text`), numbers as orjson writes them (the shortest text that reads back to the same
double: `0.1`, `5.0`, `1e-7`, `1e+16`; integers without a point), timestamps as RFC 3339 in UTC
with a `Z`, with six fractional digits unless the microseconds are zero, then none
(`2026-11-02T08:15:00.123450Z`, `2026-11-02T08:15:00Z`), missing values as `null`. This is
`orjson.dumps(list(row), option=orjson.OPT_UTC_Z) + b"\\n"` for each row."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

FORMAT = "modelql-archive/1"

Value = str | float | int | datetime | None
"""What one column of one row holds, read from the store or from a Parquet file."""


class Kind(StrEnum):
    """How a column is stored in Parquet (and read back as Python values)."""

    TEXT = "text"
    FLOAT = "float"
    INTEGER = "integer"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    select: str
    """The SQL expression that reads it from its table."""


def _text(name: str) -> Column:
    return Column(name, Kind.TEXT, f"{name}::text")


PREDICTION_COLUMNS = (
    _text("id"),
    _text("model_id"),
    _text("model_version_id"),
    _text("inputs"),
    _text("label"),
    Column("value", Kind.FLOAT, "value"),
    _text("probabilities"),
    Column("confidence", Kind.FLOAT, "confidence"),
    Column("latency_ms", Kind.FLOAT, "latency_ms"),
    _text("request_id"),
    _text("caller"),
    _text("idempotency_key"),
    _text("idempotency_record_id"),
    Column("batch_index", Kind.INTEGER, "batch_index"),
    _text("routed_by"),
    Column("created_at", Kind.TIMESTAMP, "created_at"),
)
PREDICTION_ORDER = "created_at, id"

OUTCOME_COLUMNS = (
    _text("id"),
    _text("prediction_id"),
    Column("predicted_at", Kind.TIMESTAMP, "predicted_at"),
    _text("label"),
    Column("value", Kind.FLOAT, "value"),
    Column("observed_at", Kind.TIMESTAMP, "observed_at"),
    Column("recorded_at", Kind.TIMESTAMP, "recorded_at"),
    _text("caller"),
)
OUTCOME_ORDER = "predicted_at, prediction_id, recorded_at, id"


class RowHash:
    """The running SHA-256 and count of rows in the canonical encoding."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.rows = 0

    def update(self, rows: Iterable[Sequence[Value]]) -> None:
        dumps, option = orjson.dumps, orjson.OPT_UTC_Z
        lines = [dumps(list(row), option=option) for row in rows]
        if lines:
            self._digest.update(b"\n".join(lines) + b"\n")
            self.rows += len(lines)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class ManifestError(ValueError):
    """A manifest that is not one ModelQL wrote (unreadable, or a field missing or wrong)."""


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """One Parquet file of an archived partition, as the manifest records it."""

    name: str
    rows: int
    sha256: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: Any) -> ArchivedFile:
        if not isinstance(data, dict):
            raise ManifestError("a file entry is not an object")
        name, rows, sha256, size = (data.get(k) for k in ("name", "rows", "sha256", "bytes"))
        if not (
            isinstance(name, str)
            and isinstance(rows, int)
            and isinstance(sha256, str)
            and isinstance(size, int)
        ):
            raise ManifestError(f"a file entry lacks name, rows, sha256 or bytes: {data!r}")
        return cls(name, rows, sha256, size)


@dataclass(frozen=True, slots=True)
class Manifest:
    """Written last, beside the two files: what makes a partition's archive complete."""

    partition: str
    lower: datetime | None
    """None: the partition had no lower bound (MINVALUE)."""
    upper: datetime
    predictions: ArchivedFile
    outcomes: ArchivedFile
    archived_at: datetime

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "partition": self.partition,
                "lower": self.lower,
                "upper": self.upper,
                "archived_at": self.archived_at,
                "order": {"predictions": PREDICTION_ORDER, "outcomes": OUTCOME_ORDER},
                "hash": "sha256 over the rows, one orjson array per line (OPT_UTC_Z)",
                "predictions": self.predictions.as_json(),
                "outcomes": self.outcomes.as_json(),
            },
            option=orjson.OPT_UTC_Z | orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, text: bytes) -> Manifest:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise ManifestError(f"not JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"not a {FORMAT} manifest")
        partition, lower, upper = data.get("partition"), data.get("lower"), data.get("upper")
        if not isinstance(partition, str):
            raise ManifestError("no partition name")
        return cls(
            partition=partition,
            lower=None if lower is None else _moment(lower),
            upper=_moment(upper),
            predictions=ArchivedFile.from_json(data.get("predictions")),
            outcomes=ArchivedFile.from_json(data.get("outcomes")),
            archived_at=_moment(data.get("archived_at")),
        )


def _moment(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ManifestError(f"not a time: {value!r}") from None
    if moment.tzinfo is None:
        raise ManifestError(f"a time without its zone: {value!r}")
    return moment


def file_names(partition: str) -> tuple[str, str, str]:
    """The predictions, outcomes and manifest file names of a partition's archive."""
    return (
        f"{partition}.predictions.parquet",
        f"{partition}.outcomes.parquet",
        f"{partition}.manifest.json",
    )


MANIFEST_SUFFIX = ".manifest.json"
DATA_SUFFIXES = (".predictions.parquet", ".outcomes.parquet")


def partition_of(file_name: str) -> str | None:
    """The partition an archive file belongs to, by its name; None for another file."""
    for suffix in (MANIFEST_SUFFIX, *DATA_SUFFIXES):
        if file_name.endswith(suffix):
            return file_name.removesuffix(suffix)
    return None
