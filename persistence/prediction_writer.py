"""The prediction store's write side: idempotency claims and many predictions per statement,
straight over the asyncpg connection (no ORM objects on the hot path)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from modelql.persistence.notifications import PREDICTIONS_CHANNEL
from modelql.persistence.tables import LatencyRollup, Prediction, PredictionCommit, PredictionRollup

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
_ADD_TO_ROLLUPS = f"""
INSERT INTO {PredictionRollup.__tablename__} AS r (
    model_version_id, caller, label, hour, model_id, count, latency_sum,
    confidence_sum, confidence_count, value_sum, value_count, first_at, last_at
)
SELECT model_version_id, coalesce(caller, ''), coalesce(label, ''),
       date_trunc('hour', created_at, 'UTC'), model_id, count(*), sum(latency_ms),
       coalesce(sum(confidence), 0), count(confidence), coalesce(sum(value), 0), count(value),
       min(created_at), max(created_at)
FROM inserted
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4
ON CONFLICT (model_version_id, caller, label, hour) DO UPDATE SET
    count = r.count + excluded.count,
    latency_sum = r.latency_sum + excluded.latency_sum,
    confidence_sum = r.confidence_sum + excluded.confidence_sum,
    confidence_count = r.confidence_count + excluded.confidence_count,
    value_sum = r.value_sum + excluded.value_sum,
    value_count = r.value_count + excluded.value_count,
    first_at = least(r.first_at, excluded.first_at),
    last_at = greatest(r.last_at, excluded.last_at)
"""
"""Adds the rows of the `inserted` CTE to their hourly roll-ups, in key order (so that
concurrent writers lock roll-up rows in the same order)."""

_ADD_TO_LATENCY_ROLLUPS = f"""
INSERT INTO {LatencyRollup.__tablename__} AS l (model_version_id, hour, bucket, model_id, count)
SELECT model_version_id, date_trunc('hour', created_at, 'UTC'),
       modelql_latency_bucket(latency_ms), model_id, count(*)
FROM inserted
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3
ON CONFLICT (model_version_id, hour, bucket) DO UPDATE SET count = l.count + excluded.count
"""

# Per-row columns travel as arrays, the JSON ones as one JSON array each (one text, not one
# array element per row), and what a request's rows share as one array element per request.
_NEW_ROWS = """
SELECT r.id, q.model_id, q.model_version_id, i.value, r.label, r.value,
       NULLIF(p.value, 'null'::jsonb), r.confidence, q.latency_ms, q.request_id, q.caller,
       q.idempotency_key, q.idempotency_record_id, r.batch_index, q.routed_by
FROM unnest($1::uuid[], $2::int8[], $3::int4[], $4::text[], $5::float8[], $6::float8[])
     WITH ORDINALITY AS r(id, request, batch_index, label, value, confidence, n)
JOIN jsonb_array_elements($7::jsonb) WITH ORDINALITY AS i(value, n) USING (n)
JOIN jsonb_array_elements($8::jsonb) WITH ORDINALITY AS p(value, n) USING (n)
JOIN unnest($9::uuid[], $10::uuid[], $11::float8[], $12::text[], $13::text[], $14::text[],
            $15::uuid[], $16::text[])
     WITH ORDINALITY AS q(model_id, model_version_id, latency_ms, request_id, caller,
                          idempotency_key, idempotency_record_id, routed_by, request)
     USING (request)
"""
_INSERT_ROWS_AND_ROLLUPS = (
    f"WITH inserted AS (INSERT INTO {Prediction.__tablename__} ({', '.join(COLUMNS)}) "
    f"{_NEW_ROWS} RETURNING id, {_ROLLED_UP}), rolled_up AS ({_ADD_TO_ROLLUPS}), "
    f"latency_rolled_up AS ({_ADD_TO_LATENCY_ROLLUPS})"
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
    """Insert every request's rows and add them to their hourly roll-ups, in one statement;
    returns the transaction time they were stamped with. With `feed`, the same statement
    records the group in `prediction_commits` (one row per version) and queues one NOTIFY with
    those commit ids for the live feed."""
    record = await connection.fetchrow(
        _INSERT_AND_FEED if feed else _INSERT, *_parameters(requests)
    )
    assert record is not None, "an INSERT ... SELECT always answers"
    return record[0]


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
    def column(values: Sequence[Any] | None, count: int) -> Sequence[Any]:
        return values if values is not None else [None] * count

    ids: list[uuid.UUID] = []
    numbers: list[int] = []
    positions: list[int] = []
    labels: list[str | None] = []
    values: list[float | None] = []
    confidences: list[float | None] = []
    inputs: list[Mapping[str, Any]] = []
    probabilities: list[Any] = []
    for number, request in enumerate(requests, 1):
        count = len(request.ids)
        ids.extend(request.ids)
        numbers.extend([number] * count)
        positions.extend(range(count))
        labels.extend(column(request.labels, count))
        values.extend(column(request.values, count))
        confidences.extend(column(request.confidences, count))
        inputs.extend(request.inputs)
        probabilities.extend(column(request.probabilities, count))
    return [
        ids,
        numbers,
        positions,
        labels,
        values,
        confidences,
        orjson.dumps(inputs).decode(),
        orjson.dumps(probabilities).decode(),
        *([getattr(request, name) for request in requests] for name in _SHARED),
    ]


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
