"""The read benchmark's data: stored predictions loaded with COPY into ModelQL's own tables,
their hourly and daily roll-ups, and recorded outcomes, all consistent with one another.

Predictions are spread evenly over the `DAYS` days before the load, in time order with
UUIDv7-shaped ids (as the service stores them), round-robin over every registered version;
inputs are drawn inside each version's signature ranges, labels and confidences as a
classifier's (probabilities included), values as a regressor's, latencies log-uniform.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from modelql.persistence.prediction_writer import PERIODS, _add_to_latency_rollups, _add_to_rollups

DAYS = 30
CHUNK_ROWS = 50_000
CALLERS = 5
LABELLED_SHARE = 0.1
"""Share of the loaded predictions given an outcome (85% of them agree with the prediction)."""

COPY_COLUMNS = (
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
    "batch_index",
    "routed_by",
    "created_at",
)
NULL = r"\N"
VACUUMED = (
    "predictions",
    "prediction_outcomes",
    "latest_outcomes",
    "outcome_rollups",
    "prediction_rollups",
    "prediction_daily_rollups",
    "prediction_latency_rollups",
    "prediction_latency_daily_rollups",
)

PICK_OUTCOMES = """
CREATE TEMP TABLE picked AS
SELECT p.id, p.model_version_id, p.label, p.value, p.created_at, gen_random_uuid() AS outcome_id,
       CASE WHEN p.label IS NULL THEN NULL
            WHEN random() < 0.85 THEN p.label
            ELSE v.labels[1 + floor(random() * array_length(v.labels, 1))::int] END AS truth,
       CASE WHEN p.value IS NOT NULL THEN p.value + random() * 40 - 20 END AS observed
FROM predictions p JOIN model_versions v ON v.id = p.model_version_id
WHERE random() < $1
"""
"""A random share of the stored predictions, each with a truth (85% agree) to record."""

STORE_OUTCOMES = (
    "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, value, "
    "observed_at) "
    "SELECT outcome_id, id, created_at, truth, observed, created_at + interval '1 day' "
    "FROM picked",
    "INSERT INTO latest_outcomes (prediction_id, outcome_id, model_version_id, predicted_at, "
    "predicted_label, predicted_value, label, value) "
    "SELECT id, outcome_id, model_version_id, created_at, label, value, truth, observed "
    "FROM picked",
    """INSERT INTO outcome_rollups (model_version_id, hour, predicted, observed, count,
                                    squared_error, absolute_error, observed_sum,
                                    observed_square_sum)
    SELECT model_version_id, date_trunc('hour', created_at, 'UTC'), coalesce(label, ''),
           coalesce(truth, ''), count(*), coalesce(sum((value - observed) ^ 2), 0),
           coalesce(sum(abs(value - observed)), 0), coalesce(sum(observed), 0),
           coalesce(sum(observed ^ 2), 0)
    FROM picked GROUP BY 1, 2, 3, 4""",
    """UPDATE prediction_rollups r SET labelled = d.labelled, correct = d.correct
    FROM (SELECT p.model_version_id, coalesce(p.caller, '') AS caller,
                 coalesce(p.label, '') AS label, date_trunc('hour', p.created_at, 'UTC') AS hour,
                 count(*) AS labelled, count(*) FILTER (WHERE lo.correct) AS correct
          FROM latest_outcomes lo JOIN predictions p ON p.id = lo.prediction_id
          GROUP BY 1, 2, 3, 4) AS d
    WHERE r.model_version_id = d.model_version_id AND r.caller = d.caller
      AND r.label = d.label AND r.hour = d.hour""",
    """UPDATE prediction_daily_rollups r SET labelled = d.labelled, correct = d.correct
    FROM (SELECT model_version_id, caller, label, date_trunc('day', hour, 'UTC') AS day,
                 sum(labelled) AS labelled, sum(correct) AS correct
          FROM prediction_rollups GROUP BY 1, 2, 3, 4) AS d
    WHERE r.model_version_id = d.model_version_id AND r.caller = d.caller
      AND r.label = d.label AND r.day = d.day""",
)
"""Outcomes of the picked predictions, the latest per prediction, the outcome roll-ups, and the
prediction roll-ups' labelled and correct counts (set from every latest outcome: run once,
on a store whose outcomes are all recorded here)."""

SUM_LOADED = """
CREATE TEMP TABLE summed ON COMMIT DROP AS
SELECT model_version_id, model_id, coalesce(caller, '') AS caller, coalesce(label, '') AS label,
       date_trunc('hour', created_at, 'UTC') AS hour, modelql_latency_bucket(latency_ms) AS bucket,
       count(*) AS count, sum(latency_ms) AS latency_sum,
       coalesce(sum(confidence), 0) AS confidence_sum, count(confidence) AS confidence_count,
       coalesce(sum(value), 0) AS value_sum, count(value) AS value_count,
       min(created_at) AS first_at, max(created_at) AS last_at
FROM predictions WHERE request_id LIKE $1
GROUP BY 1, 2, 3, 4, 5, 6
"""
"""The loaded predictions summed once per roll-up key and latency bucket, under the name the
writer's roll-up statements read (`summed`), in one pass over the table."""

ROLLUPS = tuple(
    statement
    for rollup, latency, period in PERIODS
    for statement in (
        _add_to_rollups(rollup.__tablename__, period),
        _add_to_latency_rollups(latency.__tablename__, period),
    )
)
"""The writer's own statements adding `summed` to the hourly and daily roll-ups."""


@dataclass(frozen=True)
class VersionShape:
    """What generated predictions of one version look like."""

    id: uuid.UUID
    model_id: uuid.UUID
    labels: list[str] | None
    features: list[tuple[str, float, float]]
    """(name, minimum, maximum) of each feature, in signature order (the demo catalogue's are
    all numbers; a feature without a range gets 0 to 1)."""


@dataclass
class LoadReport:
    predictions: int
    labelled: int
    first_at: datetime
    last_at: datetime
    seconds: dict[str, float] = field(default_factory=dict)
    """Step -> wall time."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Times the block as step `name`."""
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started

    def summary(self) -> str:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.seconds.items())
        total = sum(self.seconds.values())
        return (
            f"Loaded {self.predictions:,} predictions ({self.first_at:%Y-%m-%d %H:%M} to "
            f"{self.last_at:%Y-%m-%d %H:%M} UTC), {self.labelled:,} with an outcome, in "
            f"{total:.1f} s: {steps}"
        )


async def version_shapes(connection: asyncpg.Connection) -> list[VersionShape]:
    """Every registered version, as the generator needs it."""
    rows = await connection.fetch(
        "SELECT id, model_id, labels, input_schema::text AS schema FROM model_versions ORDER BY id"
    )
    return [
        VersionShape(
            row["id"],
            row["model_id"],
            row["labels"],
            [
                (spec["name"], float(spec.get("minimum") or 0), float(spec.get("maximum") or 1))
                for spec in json.loads(row["schema"])
            ],
        )
        for row in rows
    ]


def _uuid7_texts(moments_us: np.ndarray, rng: np.random.Generator) -> list[str]:
    """UUIDv7 texts for microsecond timestamps: 48 bits of milliseconds, then random bits."""
    count = len(moments_us)
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    milliseconds = (moments_us // 1000).astype(">u8").view(np.uint8).reshape(count, 8)
    raw[:, :6] = milliseconds[:, 2:]
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    texts = np.full((count, 36), ord("-"), dtype=np.uint8)
    columns = [column for column in range(36) if column not in (8, 13, 18, 23)]
    hexes = np.empty((count, 32), dtype=np.uint8)
    hexes[:, 0::2] = digits[raw >> 4]
    hexes[:, 1::2] = digits[raw & 15]
    texts[:, columns] = hexes
    joined = texts.tobytes().decode()
    return [joined[start : start + 36] for start in range(0, len(joined), 36)]


def _inputs(version: VersionShape, count: int, rng: np.random.Generator) -> list[str]:
    """Feature objects as JSON, values uniform within the signature's range (4 digits)."""
    template = "{" + ", ".join(f'"{name}": %.4g' for name, _, _ in version.features) + "}"
    low = np.array([minimum for _, minimum, _ in version.features])
    high = np.array([maximum for _, _, maximum in version.features])
    values = low + rng.random((count, len(low))) * (high - low)
    return [template % tuple(row) for row in values.tolist()]


def _classified(
    labels: list[str], count: int, rng: np.random.Generator
) -> tuple[list[str], list[str], list[str]]:
    """Labels, confidences and probabilities (the label gets the confidence, the others share
    the rest evenly), as COPY text."""
    width = len(labels)
    chosen = rng.integers(0, width, size=count)
    confidence = 1 / width + 0.01 + rng.random(count) * (1 - 1 / width - 0.01)
    rest = (1 - confidence) / (width - 1)
    probabilities = []
    for index, top, other in zip(chosen.tolist(), confidence.tolist(), rest.tolist(), strict=True):
        parts = [
            f'{{"label": "{label}", "probability": {top if position == index else other!r}}}'
            for position, label in enumerate(labels)
        ]
        probabilities.append("[" + ", ".join(parts) + "]")
    return (
        [labels[index] for index in chosen.tolist()],
        list(map(repr, confidence.tolist())),
        probabilities,
    )


def _fill_outputs(
    columns: dict[str, np.ndarray],
    versions: list[VersionShape],
    slots: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Each version's rows (those of its slot): its ids, inputs and outputs."""
    for slot, version in enumerate(versions):
        rows = np.flatnonzero(slots == slot)
        size = len(rows)
        columns["model_id"][rows] = str(version.model_id)
        columns["model_version_id"][rows] = str(version.id)
        columns["inputs"][rows] = _inputs(version, size, rng)
        if version.labels:
            labels, confidences, probabilities = _classified(version.labels, size, rng)
            columns["label"][rows] = labels
            columns["confidence"][rows] = confidences
            columns["probabilities"][rows] = probabilities
        else:
            columns["value"][rows] = list(map(repr, (50 + rng.random(size) * 250).tolist()))


def chunk(
    versions: list[VersionShape],
    first: int,
    last: int,
    total: int,
    start_us: int,
    span_us: int,
    prefix: str,
    seed: int,
) -> bytes:
    """COPY text of predictions first..last-1 of `total` (time order over the span)."""
    rng = np.random.default_rng([seed, first])
    numbers = np.arange(first, last, dtype=np.int64)
    count = len(numbers)
    # In floating point: numbers * span_us overflows int64 beyond about 3,500,000 rows a month.
    moments = start_us + (numbers * (span_us / total)).astype(np.int64)
    created = np.datetime_as_string(moments.astype("datetime64[us]"), unit="us")
    columns = {name: np.full(count, NULL, dtype=object) for name in COPY_COLUMNS}
    _fill_outputs(columns, versions, numbers % len(versions), rng)
    latencies = np.exp(np.log(0.05) + rng.random(count) * np.log(4000))
    columns["id"][:] = _uuid7_texts(moments, rng)
    columns["latency_ms"][:] = list(map(repr, latencies.tolist()))
    columns["request_id"][:] = [f"{prefix}{number // 10}" for number in numbers.tolist()]
    columns["caller"][:] = [f"caller-{(number // 7) % CALLERS}" for number in numbers.tolist()]
    columns["batch_index"][:] = list(map(str, (numbers % 10).tolist()))
    columns["routed_by"][:] = "DEFAULT"
    columns["created_at"][:] = [f"{moment}+00" for moment in created.tolist()]
    lines = map("\t".join, zip(*(columns[name].tolist() for name in COPY_COLUMNS), strict=True))
    return ("\n".join(lines) + "\n").encode()


async def _chunks(
    versions: list[VersionShape], total: int, start_us: int, span_us: int, prefix: str, seed: int
) -> AsyncIterator[bytes]:
    """The COPY text in chunks, the next one generated (in a thread) while one is sent."""

    def make(first: int) -> asyncio.Future[bytes]:
        last = min(first + CHUNK_ROWS, total)
        work = asyncio.to_thread(
            chunk, versions, first, last, total, start_us, span_us, prefix, seed
        )
        return asyncio.ensure_future(work)

    pending = make(0)
    for first in range(CHUNK_ROWS, total + CHUNK_ROWS, CHUNK_ROWS):
        ready = await pending
        if first < total:
            pending = make(first)
        yield ready


async def _copy_and_roll_up(
    connection: asyncpg.Connection, report: LoadReport, versions: list[VersionShape], seed: int
) -> None:
    """COPY the predictions and add them to the roll-ups, in one transaction. The rows are
    made from the stored versions, so the statement trigger that checks each names its version
    and that version's model is skipped (session_replication_role = replica)."""
    prefix = f"load-{uuid.uuid4().hex[:8]}-"
    start_us = int(report.first_at.timestamp() * 1_000_000)
    span_us = int((report.last_at - report.first_at).total_seconds() * 1_000_000)
    rows = _chunks(versions, report.predictions, start_us, span_us, prefix, seed)
    async with connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        with report.step("COPY"):
            await connection.copy_to_table(
                "predictions", source=rows, columns=COPY_COLUMNS, format="text"
            )
        with report.step("roll-ups"):
            await connection.execute(SUM_LOADED, prefix + "%")
            for statement in ROLLUPS:
                await connection.execute(statement)


async def _record_outcomes(connection: asyncpg.Connection, share: float) -> int:
    """Outcomes for a random share of the stored predictions; how many."""
    async with connection.transaction():
        await connection.execute(PICK_OUTCOMES, share)
        for statement in STORE_OUTCOMES:
            await connection.execute(statement)
        labelled = await connection.fetchval("SELECT count(*) FROM picked")
        await connection.execute("DROP TABLE picked")
    return labelled


async def load(
    url: str, predictions: int, *, labelled_share: float = LABELLED_SHARE, seed: int = 7
) -> LoadReport:
    """COPY `predictions` predictions into the store, add them to the roll-ups, record
    outcomes for a share of them, and VACUUM ANALYZE; the steps are timed."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    report = LoadReport(predictions, 0, end - timedelta(days=DAYS), end)
    connection = await asyncpg.connect(url)
    try:
        versions = await version_shapes(connection)
        await _copy_and_roll_up(connection, report, versions, seed)
        with report.step("outcomes"):
            report.labelled = await _record_outcomes(connection, labelled_share)
        with report.step("VACUUM ANALYZE"):
            for table in VACUUMED:
                await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()
    return report
