"""The prediction store's write side: idempotency claims and many predictions per statement,
straight over the asyncpg connection (no ORM objects on the hot path)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson
from uuid_utils.compat import uuid7

from modelql.persistence.notifications import PREDICTIONS_CHANNEL
from modelql.persistence.tables import (
    DailyLatencyRollup,
    DailyPredictionRollup,
    LatencyRollup,
    Prediction,
    PredictionCommit,
    PredictionRollup,
)

COLUMNS = (
    "id",
    "model_id",
    "model_version_id",
    "inputs",
    "label",
    "value",
    "probabilities",
    "confidence",
    "latency_ms",
    "request_id",
    "caller",
    "idempotency_key",
    "idempotency_record_id",
    "batch_index",
    "routed_by",
)
_ROLLED_UP = "model_id, model_version_id, caller, label, latency_ms, confidence, value, created_at"
PERIODS = (
    (PredictionRollup, LatencyRollup, "hour"),
    (DailyPredictionRollup, DailyLatencyRollup, "day"),
)
"""The roll-up tables per period; a period's key column is named after its date_trunc unit."""

_SUMMED = """
SELECT model_version_id, model_id, coalesce(caller, '') AS caller, coalesce(label, '') AS label,
       date_trunc('hour', created_at, 'UTC') AS hour, modelql_latency_bucket(latency_ms) AS bucket,
       count(*) AS count, sum(latency_ms) AS latency_sum,
       coalesce(sum(confidence), 0) AS confidence_sum, count(confidence) AS confidence_count,
       coalesce(sum(value), 0) AS value_sum, count(value) AS value_count,
       min(created_at) AS first_at, max(created_at) AS last_at
FROM inserted
GROUP BY 1, 2, 3, 4, 5, 6
"""
"""The inserted rows summed once per roll-up key and latency bucket (a request's rows share
its version, caller, latency and hour: a handful of rows), which every roll-up then adds up."""


def _add_to_rollups(table: str, period: str) -> str:
    """Adds the `summed` rows to their roll-ups of one period, in key order (so that
    concurrent writers lock roll-up rows in the same order)."""
    return f"""
INSERT INTO {table} AS r (
    model_version_id, caller, label, {period}, model_id, count, latency_sum,
    confidence_sum, confidence_count, value_sum, value_count, first_at, last_at
)
SELECT model_version_id, caller, label, date_trunc('{period}', hour, 'UTC'), model_id,
       sum(count), sum(latency_sum), sum(confidence_sum), sum(confidence_count), sum(value_sum),
       sum(value_count), min(first_at), max(last_at)
FROM summed
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4
ON CONFLICT (model_version_id, caller, label, {period}) DO UPDATE SET
    count = r.count + excluded.count,
    latency_sum = r.latency_sum + excluded.latency_sum,
    confidence_sum = r.confidence_sum + excluded.confidence_sum,
    confidence_count = r.confidence_count + excluded.confidence_count,
    value_sum = r.value_sum + excluded.value_sum,
    value_count = r.value_count + excluded.value_count,
    first_at = least(r.first_at, excluded.first_at),
    last_at = greatest(r.last_at, excluded.last_at)
"""


def _add_to_latency_rollups(table: str, period: str) -> str:
    return f"""
INSERT INTO {table} AS l (model_version_id, {period}, bucket, model_id, count)
SELECT model_version_id, date_trunc('{period}', hour, 'UTC'), bucket, model_id, sum(count)
FROM summed
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3
ON CONFLICT (model_version_id, {period}, bucket) DO UPDATE SET count = l.count + excluded.count
"""


_ROLLUPS = f"summed AS ({_SUMMED}), " + ", ".join(
    f"{period}_rolled_up AS ({_add_to_rollups(rollup.__tablename__, period)}), "
    f"{period}_latency_rolled_up AS ({_add_to_latency_rollups(latency.__tablename__, period)})"
    for rollup, latency, period in PERIODS
)

# Per-row columns travel as arrays, the JSON ones as one JSON array each (one text, not one
# array element per row), zipped by ROWS FROM (no join); what a request's rows share travels
# as one array element per request.
_NEW_ROWS = """
SELECT r.id, q.model_id, q.model_version_id, r.inputs, r.label, r.value,
       NULLIF(r.probabilities, 'null'::jsonb), r.confidence, q.latency_ms, q.request_id,
       q.caller, q.idempotency_key, q.idempotency_record_id, r.batch_index, q.routed_by
FROM ROWS FROM (
         unnest($1::uuid[]), unnest($2::int8[]), unnest($3::int4[]), unnest($4::text[]),
         unnest($5::float8[]), unnest($6::float8[]), jsonb_array_elements($7::jsonb),
         jsonb_array_elements($8::jsonb)
     ) AS r(id, request, batch_index, label, value, confidence, inputs, probabilities)
JOIN unnest($9::uuid[], $10::uuid[], $11::float8[], $12::text[], $13::text[], $14::text[],
            $15::uuid[], $16::text[])
     WITH ORDINALITY AS q(model_id, model_version_id, latency_ms, request_id, caller,
                          idempotency_key, idempotency_record_id, routed_by, request)
     USING (request)
"""
_INSERT_ROWS_AND_ROLLUPS = (
    f"WITH inserted AS (INSERT INTO {Prediction.__tablename__} ({', '.join(COLUMNS)}) "
    f"{_NEW_ROWS} RETURNING id, {_ROLLED_UP}), {_ROLLUPS}"
)
_INSERT = f"{_INSERT_ROWS_AND_ROLLUPS} SELECT now(), count(*) FROM inserted"
_INSERT_AND_FEED = (
    f"{_INSERT_ROWS_AND_ROLLUPS}, "
    f"commits AS (INSERT INTO {PredictionCommit.__tablename__} (model_version_id, prediction_ids) "
    "SELECT model_version_id, array_agg(id) FROM inserted GROUP BY model_version_id "
    "RETURNING id) "
    "SELECT now(), (SELECT count(*) FROM inserted), "
    f"(SELECT pg_notify('{PREDICTIONS_CHANNEL}', string_agg(id::text, ',')) FROM commits)"
)


class ScoredColumns(Protocol):
    """A batch's outputs column by column (the models layer's Scores): item i is row i's."""

    @property
    def labels(self) -> Sequence[str] | None: ...
    @property
    def values(self) -> Sequence[float] | None: ...
    @property
    def probabilities(self) -> Sequence[Sequence[float]] | None: ...
    @property
    def confidences(self) -> Sequence[float] | None: ...
    @property
    def classes(self) -> Sequence[str] | None: ...


@dataclass(frozen=True, slots=True)
class RequestRows:
    """One request's new predictions: a list per column of its rows (None: all null), and
    what its rows share."""

    ids: Sequence[uuid.UUID]
    inputs: Sequence[Mapping[str, Any]]
    labels: Sequence[str | None] | None
    values: Sequence[float | None] | None
    probabilities: Sequence[Sequence[Mapping[str, Any]]] | None
    confidences: Sequence[float | None] | None
    model_id: uuid.UUID
    model_version_id: uuid.UUID
    latency_ms: float
    request_id: str
    caller: str | None
    idempotency_key: str | None
    idempotency_record_id: uuid.UUID | None
    routed_by: str
    batch_indexes: Sequence[int] | None = None
    """Each row's `batch_index`; None: its position in the request (a job's rows: their row
    numbers in its file)."""

    @classmethod
    def scored(
        cls,
        inputs: Sequence[Mapping[str, Any]],
        scores: ScoredColumns,
        *,
        model_id: uuid.UUID,
        model_version_id: uuid.UUID,
        latency_ms: float,
        request_id: str,
        caller: str | None,
        routed_by: str,
        idempotency_key: str | None = None,
        idempotency_record_id: uuid.UUID | None = None,
        batch_indexes: Sequence[int] | None = None,
    ) -> RequestRows:
        """Scored inputs as new rows: new ids, the probabilities in the stored JSON shape."""
        return cls(
            ids=[uuid7() for _ in inputs],
            inputs=inputs,
            labels=scores.labels,
            values=scores.values,
            probabilities=_probability_rows(scores),
            confidences=scores.confidences,
            model_id=model_id,
            model_version_id=model_version_id,
            latency_ms=latency_ms,
            request_id=request_id,
            caller=caller,
            idempotency_key=idempotency_key,
            idempotency_record_id=idempotency_record_id,
            routed_by=routed_by,
            batch_indexes=batch_indexes,
        )


def _probability_rows(scores: ScoredColumns) -> list[list[dict[str, Any]]] | None:
    """Each row's probabilities in the stored JSON shape (label, probability), or None."""
    if scores.probabilities is None:
        return None
    classes = scores.classes or ()
    return [
        [{"label": label, "probability": p} for label, p in zip(classes, row, strict=True)]
        for row in scores.probabilities
    ]


@dataclass(frozen=True, slots=True)
class KeyClaim:
    id: uuid.UUID
    caller: str
    key: str
    fingerprint: str


async def claim_keys(connection: asyncpg.Connection, claims: Sequence[KeyClaim]) -> set[uuid.UUID]:
    """Claim idempotency keys in one statement; the ids of the claims that won. A key held by a
    concurrent transaction waits for it, then loses if that one committed."""
    if not claims:
        return set()
    rows = await connection.fetch(
        "INSERT INTO idempotency_records (id, caller, key, fingerprint) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) "
        "ON CONFLICT (caller, key) DO NOTHING RETURNING id",
        [claim.id for claim in claims],
        [claim.caller for claim in claims],
        [claim.key for claim in claims],
        [claim.fingerprint for claim in claims],
    )
    return {row["id"] for row in rows}


async def claimed_keys(
    connection: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[uuid.UUID, str]]:
    """(caller, key) -> (record id, fingerprint) of keys claimed earlier."""
    rows = await connection.fetch(
        "SELECT caller, key, id, fingerprint FROM idempotency_records "
        "WHERE (caller, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [caller for caller, _ in keys],
        [key for _, key in keys],
    )
    return {(row["caller"], row["key"]): (row["id"], row["fingerprint"]) for row in rows}


async def insert(
    connection: asyncpg.Connection, requests: Sequence[RequestRows], *, feed: bool = False
) -> datetime:
    """Insert every request's rows and add them to their hourly and daily roll-ups, in one
    statement; returns the transaction time they were stamped with. With `feed`, the same
    statement records the group in `prediction_commits` (one row per version) and queues one
    NOTIFY with those commit ids for the live feed."""
    record = await connection.fetchrow(
        _INSERT_AND_FEED if feed else _INSERT, *_parameters(requests)
    )
    assert record is not None, "an INSERT ... SELECT always answers"
    stamped_at: datetime = record[0]
    return stamped_at


_SHARED = (
    "model_id",
    "model_version_id",
    "latency_ms",
    "request_id",
    "caller",
    "idempotency_key",
    "idempotency_record_id",
    "routed_by",
)
"""What a request's rows share, in the order of the statement's per-request arrays."""


def _parameters(requests: Sequence[RequestRows]) -> list[Any]:
    ids: list[uuid.UUID] = []
    numbers: list[int] = []
    positions: list[int] = []
    inputs: list[Mapping[str, Any]] = []
    for number, request in enumerate(requests, 1):
        count = len(request.ids)
        ids.extend(request.ids)
        numbers.extend([number] * count)
        positions.extend(range(count) if request.batch_indexes is None else request.batch_indexes)
        inputs.extend(request.inputs)
    probabilities = _joined(requests, "probabilities")
    return [
        ids,
        numbers,
        positions,
        _joined(requests, "labels"),
        _joined(requests, "values"),
        _joined(requests, "confidences"),
        orjson.dumps(inputs).decode(),
        None if probabilities is None else orjson.dumps(probabilities).decode(),
        *([getattr(request, name) for request in requests] for name in _SHARED),
    ]


def _joined(requests: Sequence[RequestRows], name: str) -> list[Any] | None:
    """One per-row column over every request; None when no request has it (sent as NULL:
    ROWS FROM pads the rows with nulls, and no element is encoded)."""
    columns = [getattr(request, name) for request in requests]
    if all(column is None for column in columns):
        return None
    joined: list[Any] = []
    for column, request in zip(columns, requests, strict=True):
        joined.extend(column if column is not None else [None] * len(request.ids))
    return joined


async def stored_for_records(
    connection: asyncpg.Connection, record_ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """The predictions stored under idempotency records, by record and batch index (JSON
    columns decoded: the engine's connections carry a JSONB codec)."""
    return await connection.fetch(
        f"SELECT {', '.join(COLUMNS)}, created_at FROM {Prediction.__tablename__} "
        "WHERE idempotency_record_id = ANY($1::uuid[]) "
        "ORDER BY idempotency_record_id, batch_index",
        list(record_ids),
    )
