"""Predictions are partitioned by time: partitions are created ahead without gaps, a row no
partition covers is refused (no default partition swallows it), queries bounded in time read
only the partitions of their window, and pruning drops whole old partitions while statistics
over the pruned window still answer from the roll-ups. Runs in a database of its own, since
pruning drops tables, whose partitions start in 2100 (the real clock never reaches them)."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import create_database, drop_database, libpq_url
from uuid_utils.compat import uuid7

from modelql import schema_migrations
from modelql.persistence import outcome_repository, partitions
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.live_repository import pair_counts
from modelql.persistence.partitions import PartitionInterval, PartitionInUseError
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.prediction_repository import list_predictions
from modelql.persistence.stats_repository import totals
from modelql.services import outcomes
from modelql.services.catalogue import Catalogue
from modelql.services.freshness import Freshness

QUALITY = importlib.import_module("modelql.migrations.versions.2026_11_23_model_quality")
DAILY = importlib.import_module("modelql.migrations.versions.2026_11_23_daily_rollups")
MONDAY = datetime(2100, 1, 4, tzinfo=UTC)
WEEKS = [MONDAY + timedelta(weeks=n) for n in range(4)]
MODEL, VERSION = uuid.uuid4(), uuid.uuid4()
LEGACY = "prediction_partitions.predictions_legacy"
DROP_LEGACY = f"ALTER TABLE predictions DETACH PARTITION {LEGACY}; DROP TABLE {LEGACY}"


class Store:
    """A migrated database of its own, with one classifier version."""

    def __init__(self, url: str, engine: AsyncEngine, connection: asyncpg.Connection) -> None:
        self.url = url
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self.connection = connection

    async def names(self) -> list[str]:
        return [p.name.split(".")[1] for p in await partitions.partitions(self.connection)]

    async def predict(self, moments: list[datetime]) -> list[uuid.UUID]:
        """Predictions stored at these moments, then the roll-ups rebuilt from the store."""
        ids = [uuid.UUID(str(uuid7())) for _ in moments]
        await self.connection.executemany(
            "INSERT INTO predictions (id, model_id, model_version_id, inputs, label, confidence, "
            "latency_ms, request_id, batch_index, created_at, routed_by) "
            "VALUES ($1, $2, $3, '{}', 'yes', 0.9, 2.5, $4, 0, $5, 'DEFAULT')",
            [(i, MODEL, VERSION, f"r-{i}", at) for i, at in zip(ids, moments, strict=True)],
        )
        async with self.connection.transaction():
            for table in ("prediction_latency_daily_rollups", "prediction_daily_rollups"):
                await self.connection.execute(f"DELETE FROM {table}")
            for table in ("prediction_latency_rollups", "prediction_rollups"):
                await self.connection.execute(f"DELETE FROM {table}")
            for statement in (
                QUALITY.BACKFILL_ROLLUPS,
                QUALITY.BACKFILL_LATENCY_ROLLUPS,
                DAILY.BACKFILL_DAILY_ROLLUPS,
                DAILY.BACKFILL_DAILY_LATENCY_ROLLUPS,
            ):
                await self.connection.execute(statement)
        return ids

    async def record_outcomes(self, ids: list[uuid.UUID], label: str) -> None:
        requests = [outcomes.OutcomeRequest(prediction_id=i, label=label) for i in ids]
        async with self.sessionmaker.begin() as session:
            await outcomes.record(
                session, Catalogue(Freshness.never()), requests, caller=None, max_batch_size=100
            )

    async def count(self, table: str) -> int:
        return await self.connection.fetchval(f"SELECT count(*) FROM {table}")


@pytest.fixture
async def store(server_url: str) -> AsyncIterator[Store]:
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        engine = create_engine(url)
        connection = await asyncpg.connect(libpq_url(url))
        await connection.execute(
            "INSERT INTO models (id, name, task) VALUES ($1, 'far', 'CLASSIFICATION')", MODEL
        )
        await connection.execute(
            "INSERT INTO model_versions (id, model_id, number, algorithm, framework, "
            "framework_version, artifact_path, artifact_sha256, input_schema, labels) "
            "VALUES ($1, $2, 1, 'rule', 'sklearn', '1', 'x.joblib', repeat('0', 64), '[]', "
            "ARRAY['yes', 'no'])",
            VERSION,
            MODEL,
        )
        await connection.execute(DROP_LEGACY)
        await partitions.ensure(connection, interval=PartitionInterval.WEEK, now=MONDAY)
        try:
            yield Store(url, engine, connection)
        finally:
            await connection.close()
            await engine.dispose()
    finally:
        await drop_database(server_url, url)


async def test_the_migration_made_the_old_table_the_partition_of_everything_before_it(
    engine: AsyncEngine,
):
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        first = (await partitions.partitions(raw))[0]

    assert (first.name, first.lower) == (LEGACY, None)
    assert first.upper > datetime.now(UTC)
    assert first.upper == PartitionInterval.WEEK.start(first.upper)


async def test_partitions_are_created_ahead_a_period_each_without_gaps(store: Store):
    made = await partitions.partitions(store.connection)

    assert [(p.lower, p.upper) for p in made] == list(
        itertools.pairwise([*WEEKS, WEEKS[-1] + timedelta(weeks=1)])
    )
    assert (
        await partitions.ensure(store.connection, interval=PartitionInterval.WEEK, now=MONDAY) == []
    )


async def test_days_follow_weeks_when_the_interval_changes(store: Store):
    last_sunday = WEEKS[-1] + timedelta(days=6)
    made = await partitions.ensure(
        store.connection, interval=PartitionInterval.DAY, now=last_sunday
    )

    first_day = WEEKS[-1] + timedelta(weeks=1)
    assert [(p.lower, p.upper) for p in made] == [
        (first_day + timedelta(days=n), first_day + timedelta(days=n + 1)) for n in range(3)
    ]


async def test_a_row_no_partition_covers_is_refused_not_swallowed(store: Store):
    with pytest.raises(asyncpg.CheckViolationError, match="no partition of relation"):
        await store.predict([datetime(2200, 1, 1, tzinfo=UTC)])


def _explained(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[str]]:
    """Runs a repository call, then EXPLAINs the last statement it sent, with its parameters."""

    async def explain(call: Callable[[AsyncSession], Awaitable[Any]]) -> str:
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            sent.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            async with sessionmaker() as session:
                await call(session)
                statement, parameters = sent[-1]
                connection = await session.connection()
                plan = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                return "\n".join(row[0] for row in plan)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)

    return explain


def _scanned(plan: str, names: list[str]) -> list[str]:
    return [name for name in names if f"{name} " in plan or f"{name}_" in plan]


async def test_an_audit_page_reads_only_the_partitions_of_its_window(store: Store):
    explain = _explained(store.engine, store.sessionmaker)
    names = await store.names()
    window = PredictionQuery(created_after=WEEKS[1], created_before=WEEKS[2])
    keyset = (WEEKS[1] + timedelta(days=3), uuid.uuid4())

    first_page = await explain(lambda s: list_predictions(s, window, limit=10, after=None))
    next_page = await explain(lambda s: list_predictions(s, window, limit=10, after=keyset))
    unbounded = PredictionQuery()
    deep_page = await explain(lambda s: list_predictions(s, unbounded, limit=10, after=keyset))

    assert _scanned(first_page, names) == ["predictions_p21000111"]
    assert _scanned(next_page, names) == ["predictions_p21000111"]
    assert _scanned(deep_page, names) == names[:2]  # not the newer ones


async def test_statistics_from_the_raw_table_read_only_the_partitions_of_their_window(
    store: Store,
):
    explain = _explained(store.engine, store.sessionmaker)
    names = await store.names()
    window = PredictionQuery(
        created_after=WEEKS[1] + timedelta(minutes=30), created_before=WEEKS[3]
    )

    plan = await explain(lambda s: totals(s, window, from_rollups=False))

    assert _scanned(plan, names) == ["predictions_p21000111", "predictions_p21000118"]


async def _statistics(store: Store, query: PredictionQuery) -> tuple[int, int, int]:
    async with store.sessionmaker() as session:
        answer = await totals(session, query, from_rollups=True)
    return answer.count, answer.labelled, answer.correct


async def _live_pairs(store: Store, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    async with store.sessionmaker() as session:
        pairs = await pair_counts(session, [VERSION], since=since, until=until, named_slices=False)
    return sorted((p.predicted, p.observed, p.count) for p in pairs[VERSION])


async def test_pruning_drops_old_partitions_whole_and_statistics_still_answer(store: Store):
    old = await store.predict([WEEKS[0] + timedelta(hours=h) for h in (1, 2, 30)])
    kept = await store.predict([WEEKS[2] + timedelta(hours=5)])
    await store.record_outcomes(old[:2], "no")
    await store.record_outcomes(kept, "yes")
    old_window = PredictionQuery(created_after=WEEKS[0], created_before=WEEKS[1])
    before = await _statistics(store, old_window), await _statistics(store, PredictionQuery())
    live_before = await _live_pairs(store, WEEKS[0], WEEKS[1])

    names = await store.names()
    dropped = await partitions.prune(store.connection, before=WEEKS[2] + timedelta(hours=1))

    assert [p.name for p in dropped] == [f"prediction_partitions.{n}" for n in names[:2]]
    assert await store.names() == ["predictions_p21000118", "predictions_p21000125"]
    assert await store.count("predictions") == 1
    after = await _statistics(store, old_window), await _statistics(store, PredictionQuery())
    assert after == before
    assert before[0] == (3, 2, 0)
    assert await _live_pairs(store, WEEKS[0], WEEKS[1]) == live_before == [("yes", "no", 2)]
    assert await store.count("prediction_outcomes") == await store.count("latest_outcomes") == 1


async def test_pruning_is_refused_while_verify_reads_the_partition(store: Store):
    await store.predict([WEEKS[0] + timedelta(hours=1)])
    reader = await asyncpg.connect(libpq_url(store.url))
    try:
        async with reader.transaction():
            await partitions.hold_for_reading(reader, since=WEEKS[0], until=WEEKS[1])
            with pytest.raises(PartitionInUseError, match="predictions_p21000104 is being read"):
                await partitions.prune(store.connection, before=WEEKS[2])
            assert len(await store.names()) == 4
        assert len(await partitions.prune(store.connection, before=WEEKS[2])) == 2
    finally:
        await reader.close()


PRUNED_FROM = ("latest_outcomes", "prediction_outcomes", "prediction_commits", "shadow_predictions")
"""Tables a prune deletes rows from (those of the dropped partitions' predictions)."""


async def test_what_references_the_rows_a_prune_deletes_is_found_by_index(store: Store):
    # For each row deleted, PostgreSQL looks up the rows referencing it (a foreign key's
    # check); without an index leading with the referencing column, each look-up reads the
    # whole referencing table: deleting the outcomes of 30 days took the deleted outcomes times
    # the latest outcomes kept (bench/scale.py).
    unindexed = await store.connection.fetch(
        "SELECT c.conrelid::regclass::text AS referencing, c.conname FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.confrelid = ANY($1::regclass[]) AND NOT EXISTS ("
        "SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])",
        list(PRUNED_FROM),
    )

    assert [tuple(row) for row in unindexed] == []


async def test_outcome_targets_are_found_without_reading_partitions_whole(store: Store):
    ids = await store.predict([WEEKS[n % 2] + timedelta(minutes=n) for n in range(60)])
    by_id, by_request = ids[0], ids[-1]
    rows_read = (
        "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) "
        "FROM pg_stat_xact_user_tables WHERE schemaname = 'prediction_partitions'"
    )
    async with store.connection.transaction():
        # Small partitions are cheapest to read whole; a real store's are not.
        await store.connection.execute("SET LOCAL enable_seqscan = off")
        before = await store.connection.fetchval(rows_read)
        targets = await outcome_repository.lock_targets(
            store.connection, [by_id], [(f"r-{by_request}", 0)]
        )
        read = await store.connection.fetchval(rows_read) - before

    assert sorted(target.id for target in targets) == sorted([by_id, by_request])
    assert read < 10  # of 60 stored


async def _prune_while_an_outcome_is_recorded(
    store: Store, prediction: uuid.UUID, **options: Any
) -> list[partitions.Partition]:
    """Prune the oldest two weeks while another transaction records an outcome of
    `prediction`, committed while the prune's detach waits for that transaction."""
    labelling = await asyncpg.connect(libpq_url(store.url))
    try:
        transaction = labelling.transaction()
        await transaction.start()
        await labelling.execute(
            "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, "
            "observed_at) SELECT gen_random_uuid(), id, created_at, 'no', now() "
            "FROM predictions WHERE id = $1",
            prediction,
        )
        pruning = asyncio.ensure_future(
            partitions.prune(store.connection, before=WEEKS[2], **options)
        )
        while not await _detach_waits(labelling):
            assert not pruning.done(), pruning.exception()
            await asyncio.sleep(0.02)
        await transaction.commit()
        return await pruning
    finally:
        await labelling.close()


async def _detach_waits(connection: asyncpg.Connection) -> bool:
    """Whether a DETACH waits for a lock (the statistics snapshot of the open transaction
    cleared first, or it would answer what it saw on its first look)."""
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    return bool(
        await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'ALTER TABLE public.predictions DETACH PARTITION %'"
        )
    )


async def test_an_outcome_recorded_during_the_detach_goes_with_its_partition(store: Store):
    old = await store.predict([WEEKS[0] + timedelta(hours=1)])
    await store.record_outcomes(old, "yes")

    dropped = await _prune_while_an_outcome_is_recorded(store, old[0])

    assert len(dropped) == 2
    assert await store.count("prediction_outcomes") == await store.count("latest_outcomes") == 0


async def test_an_outcome_recorded_during_the_detach_of_an_archived_partition_keeps_it(
    store: Store,
):
    old = await store.predict([WEEKS[0] + timedelta(hours=1)])
    await store.record_outcomes(old, "yes")
    names = await store.names()

    async def archived(connection: asyncpg.Connection, partition: partitions.Partition) -> int:
        return 1 if partition.lower == WEEKS[0] else 0  # the outcome recorded before

    with pytest.raises(partitions.PruneInterruptedError, match=r"2 outcomes of .* holds 1"):
        await _prune_while_an_outcome_is_recorded(store, old[0], before_drop=archived)

    assert await store.names() == names  # attached again
    assert [p.detaching for p in await partitions.partitions(store.connection)] == [False] * 4
    assert await store.count("predictions") == 1
    assert await store.count("prediction_outcomes") == 2  # nothing deleted


async def test_outcomes_and_idempotency_records_go_in_batches_whatever_their_number(
    store: Store, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(partitions, "DELETE_BATCH", 2)
    old = await store.predict([WEEKS[0] + timedelta(hours=h) for h in range(5)])
    kept = await store.predict([WEEKS[2] + timedelta(hours=1)])
    await store.record_outcomes(old + kept, "yes")
    await store.connection.execute(
        "INSERT INTO idempotency_records (id, caller, key, fingerprint, created_at) "
        "SELECT gen_random_uuid(), '', 'k' || n, repeat('0', 64), $1::timestamptz + n * interval '1 hour' "
        "FROM generate_series(0, 4) AS n",
        WEEKS[0],
    )

    await partitions.prune(store.connection, before=WEEKS[1])

    assert await store.count("prediction_outcomes") == await store.count("latest_outcomes") == 1
    assert await store.count("idempotency_records") == 0
    assert await store.count("predictions") == 1


async def test_a_partition_left_detached_by_an_interrupted_prune_is_finished_by_the_next(
    store: Store,
):
    old = await store.predict([WEEKS[0] + timedelta(hours=1)])
    await store.record_outcomes(old, "yes")
    oldest = (await partitions.partitions(store.connection))[0]
    await store.connection.execute(
        f"COMMENT ON TABLE {oldest.name} IS 'modelql: pruned below {oldest.upper.isoformat()}'"
    )
    await store.connection.execute(f"ALTER TABLE predictions DETACH PARTITION {oldest.name}")

    assert await partitions.prune(store.connection, before=WEEKS[0]) == []

    assert await store.connection.fetchval("SELECT to_regclass($1)", oldest.name) is None
    assert await store.count("prediction_outcomes") == await store.count("latest_outcomes") == 0


async def test_a_partition_left_detached_before_its_outcomes_were_counted_is_attached_again(
    store: Store,
):
    old = await store.predict([WEEKS[0] + timedelta(hours=1)])
    oldest = (await partitions.partitions(store.connection))[0]
    await store.connection.execute(
        f"COMMENT ON TABLE {oldest.name} IS "
        f"'modelql: detaching {oldest.lower.isoformat()} {oldest.upper.isoformat()}'"
    )
    await store.connection.execute(f"ALTER TABLE predictions DETACH PARTITION {oldest.name}")

    assert await partitions.prune(store.connection, before=WEEKS[0]) == []

    assert (await partitions.partitions(store.connection))[0] == oldest
    assert await store.connection.fetchval("SELECT id FROM predictions") == old[0]
    assert (
        await store.connection.fetchval("SELECT obj_description($1::regclass)", oldest.name) is None
    )


async def test_a_table_detached_by_hand_is_left_alone(store: Store):
    oldest = (await partitions.partitions(store.connection))[0]
    await store.connection.execute(f"ALTER TABLE predictions DETACH PARTITION {oldest.name}")

    await partitions.prune(store.connection, before=WEEKS[0])

    assert await store.connection.fetchval("SELECT to_regclass($1)", oldest.name) is not None


async def test_a_partition_with_outcomes_cannot_be_truncated_on_its_own(store: Store):
    labelled = await store.predict([WEEKS[0] + timedelta(hours=1)])
    await store.predict([WEEKS[1] + timedelta(hours=1)])
    await store.record_outcomes(labelled, "yes")
    first, second = (await partitions.partitions(store.connection))[:2]

    with pytest.raises(asyncpg.ForeignKeyViolationError, match="violates outcomes_reference"):
        await store.connection.execute(f"TRUNCATE {first.name}")
    await store.connection.execute(f"TRUNCATE {second.name}")

    assert await store.count("predictions") == 1
    await store.connection.execute(f"TRUNCATE latest_outcomes, prediction_outcomes, {first.name}")
    assert await store.count("predictions") == 0


async def test_a_prune_outlives_the_outcome_writers_under_way_at_its_detach(store: Store):
    """A writer that read the partition attached commits before the outcomes are counted."""
    await store.predict([WEEKS[0] + timedelta(hours=1)])
    oldest = (await partitions.partitions(store.connection))[0]
    writer = await asyncpg.connect(libpq_url(store.url))
    watcher = await asyncpg.connect(libpq_url(store.url))
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("LOCK TABLE prediction_outcomes IN ROW EXCLUSIVE MODE")
        pruning = asyncio.ensure_future(partitions.prune(store.connection, before=WEEKS[1]))
        while oldest in await partitions.partitions(watcher):  # until detached
            assert not pruning.done(), pruning.exception()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert not pruning.done()
        assert await watcher.fetchval("SELECT to_regclass($1)", oldest.name) is not None

        await transaction.commit()

        assert await pruning == [oldest]
        assert await watcher.fetchval("SELECT to_regclass($1)", oldest.name) is None
    finally:
        await writer.close()
        await watcher.close()
