"""Reading one partition of predictions whole, with the outcomes recorded for its
predictions, in the archive's canonical order and columns (`archive_format`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg

from modelql.persistence.archive_format import (
    OUTCOME_COLUMNS,
    OUTCOME_ORDER,
    PREDICTION_COLUMNS,
    PREDICTION_ORDER,
    Column,
    Value,
)
from modelql.persistence.partitions import Partition

_OUTCOMES_OF = "prediction_outcomes WHERE predicted_at < $2 AND ($1::timestamptz IS NULL OR predicted_at >= $1)"  # noqa: E501


async def counts(connection: asyncpg.Connection, partition: Partition) -> tuple[int, int]:
    """How many predictions the partition holds, and outcomes were recorded for them."""
    predictions = await connection.fetchval(f"SELECT count(*) FROM {partition.name}")
    outcomes = await connection.fetchval(
        f"SELECT count(*) FROM {_OUTCOMES_OF}", partition.lower, partition.upper
    )
    return int(predictions), int(outcomes)


def _select(columns: Sequence[Column], source: str, order: str) -> str:
    return f"SELECT {', '.join(column.select for column in columns)} FROM {source} ORDER BY {order}"


async def prediction_rows(
    connection: asyncpg.Connection, partition: Partition, *, batch_rows: int
) -> AsyncIterator[list[tuple[Value, ...]]]:
    """The partition's predictions, batch by batch (inside a transaction)."""
    query = _select(PREDICTION_COLUMNS, partition.name, PREDICTION_ORDER)
    async for batch in _batches(connection, query, (), batch_rows):
        yield batch


async def outcome_rows(
    connection: asyncpg.Connection, partition: Partition, *, batch_rows: int
) -> AsyncIterator[list[tuple[Value, ...]]]:
    """Every outcome recorded for the partition's predictions, batch by batch (inside a
    transaction)."""
    query = _select(OUTCOME_COLUMNS, _OUTCOMES_OF, OUTCOME_ORDER)
    async for batch in _batches(connection, query, (partition.lower, partition.upper), batch_rows):
        yield batch


async def _batches(
    connection: asyncpg.Connection, query: str, arguments: Sequence[object], batch_rows: int
) -> AsyncIterator[list[tuple[Value, ...]]]:
    cursor = await connection.cursor(query, *arguments)
    while records := await cursor.fetch(batch_rows):
        yield [tuple(record) for record in records]
