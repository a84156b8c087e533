"""Alembic migrations: upgrade and downgrade on an empty database, no drift from the models,
and the database itself refusing to change registered versions and stored predictions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from support import create_database, drop_database

from modelql import schema_migrations
from modelql.persistence.database import create_engine
from modelql.persistence.tables import QUEUE_TABLES, Base, declared

EXPECTED_TABLES = set(Base.metadata.tables) | QUEUE_TABLES


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    """A fresh database with no tables at all, dropped after the test."""
    url = await create_database(server_url)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


async def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await schema_migrations.current_revision(engine)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_and_upgrade_again_on_an_empty_database(empty_database: str):
    assert await _tables(empty_database) == set()
    assert await _revision(empty_database) is None

    await asyncio.to_thread(schema_migrations.upgrade_to_head, empty_database)
    assert await _tables(empty_database) == EXPECTED_TABLES | {"alembic_version"}
    assert await _revision(empty_database) == schema_migrations.head_revision()

    await asyncio.to_thread(schema_migrations.downgrade_to_base, empty_database)
    assert await _tables(empty_database) <= {"alembic_version"}
    assert await _revision(empty_database) is None

    await asyncio.to_thread(schema_migrations.upgrade_to_head, empty_database)
    assert await _tables(empty_database) == EXPECTED_TABLES | {"alembic_version"}
    assert await _revision(empty_database) == schema_migrations.head_revision()


async def test_downgrade_removes_the_immutability_function(empty_database: str):
    await asyncio.to_thread(schema_migrations.upgrade_to_head, empty_database)
    await asyncio.to_thread(schema_migrations.downgrade_to_base, empty_database)
    engine = create_engine(empty_database)
    try:
        async with engine.connect() as connection:
            functions = await connection.scalar(
                text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'modelql%'")
            )
    finally:
        await engine.dispose()
    assert functions == 0


async def test_the_models_match_the_migrations(engine: AsyncEngine):
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"compare_type": True, "include_object": declared}
                ),
                Base.metadata,
            )
        )
    assert differences == [], (
        f"persistence/tables.py and migrations/ disagree; write a migration for: {differences}"
    )


async def _update_refused(engine: AsyncEngine, statement: str) -> str:
    with pytest.raises(DBAPIError) as caught:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    return str(caught.value.orig)


async def test_registered_versions_are_immutable(engine: AsyncEngine, demo_catalogue: None):
    message = await _update_refused(
        engine, "UPDATE model_versions SET description = 'changed' WHERE number = 1"
    )
    assert "immutable" in message
    async with engine.connect() as connection:
        changed = await connection.scalar(
            text("SELECT count(*) FROM model_versions WHERE description = 'changed'")
        )
        versions = await connection.scalar(text("SELECT count(*) FROM model_versions"))
    assert changed == 0
    assert versions >= 5
    for table, column in (("training_arguments", "kind"), ("performance_metrics", "value")):
        value = "'DATA'" if column == "kind" else "0"
        assert "immutable" in await _update_refused(
            engine, f"UPDATE {table} SET {column} = {value}"
        )


async def test_stored_predictions_are_immutable(engine: AsyncEngine, demo_catalogue: None):
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """INSERT INTO predictions (id, model_id, model_version_id, inputs, label,
                     latency_ms, request_id, batch_index, routed_by)
                   SELECT gen_random_uuid(), v.model_id, v.id, '{"x": 1}', 'a', 1.5, 'req-1', 0, 'DEFAULT'
                   FROM model_versions v ORDER BY v.created_at LIMIT 1"""
            )
        )
    message = await _update_refused(engine, "UPDATE predictions SET label = 'b'")
    assert "immutable" in message
    async with engine.connect() as connection:
        labels = (await connection.scalars(text("SELECT label FROM predictions"))).all()
    assert labels == ["a"]


async def _insert_refused(engine: AsyncEngine, select_columns: str) -> str:
    """The database's refusal of one prediction row built by `select_columns` over a version."""
    with pytest.raises(DBAPIError) as refused:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO predictions (id, model_id, model_version_id, inputs, value, "
                    "confidence, latency_ms, request_id, batch_index, routed_by) "
                    f"SELECT gen_random_uuid(), {select_columns}, 'req', 0, 'DEFAULT' "
                    "FROM model_versions v ORDER BY v.created_at LIMIT 1"
                )
            )
    return str(refused.value)


@pytest.mark.parametrize(
    "numbers",
    [
        "'NaN'::float8, NULL, 1.0",
        "NULL, 'Infinity'::float8, 1.0",
        "1.0, 0.5, '-Infinity'::float8",
    ],
    ids=["value", "confidence", "latency"],
)
async def test_the_database_refuses_non_finite_numbers(
    engine: AsyncEngine, demo_catalogue: None, numbers: str
):
    message = await _insert_refused(engine, f"v.model_id, v.id, '{{}}', {numbers}")

    assert "ck_predictions_finite_numbers" in message


async def test_a_prediction_names_the_model_of_its_version(
    engine: AsyncEngine, demo_catalogue: None
):
    other_model = "(SELECT id FROM models WHERE id <> v.model_id LIMIT 1)"

    message = await _insert_refused(engine, f"{other_model}, v.id, '{{}}', NULL, NULL, 1.0")

    assert "ForeignKeyViolation" in message
    assert "predictions_reference_their_version" in message


async def test_a_prediction_names_an_existing_version(engine: AsyncEngine, demo_catalogue: None):
    message = await _insert_refused(engine, "v.model_id, gen_random_uuid(), '{}', NULL, NULL, 1.0")

    assert "predictions_reference_their_version" in message


STORE_ONE = text(
    "INSERT INTO predictions (id, model_id, model_version_id, inputs, latency_ms, request_id, "
    "batch_index, routed_by) SELECT gen_random_uuid(), v.model_id, v.id, '{}', 1.0, 'req', 0, "
    "'DEFAULT' FROM model_versions v WHERE v.id = :version"
)
DELETE_VERSION = text("DELETE FROM model_versions WHERE id = :version")


async def _a_version(engine: AsyncEngine) -> object:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT id FROM model_versions LIMIT 1"))


async def test_a_version_with_predictions_cannot_be_deleted(
    engine: AsyncEngine, demo_catalogue: None
):
    version = await _a_version(engine)
    async with engine.begin() as connection:
        await connection.execute(STORE_ONE, {"version": version})

    with pytest.raises(DBAPIError) as refused:
        async with engine.begin() as connection:
            await connection.execute(DELETE_VERSION, {"version": version})

    assert "predictions_reference_their_version" in str(refused.value)


@pytest.mark.parametrize("removal", ["delete", "truncate"])
async def test_versions_are_removed_only_on_a_fresh_snapshot(
    engine: AsyncEngine, demo_catalogue: None, removal: str
):
    """Under REPEATABLE READ the check could miss a prediction committed after the snapshot."""
    version = await _a_version(engine)
    statement = DELETE_VERSION if removal == "delete" else text("TRUNCATE models CASCADE")

    async with engine.connect() as connection:
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        with pytest.raises(DBAPIError) as refused:
            await connection.execute(statement, {"version": version})

    assert f'{removal} on table "model_versions" needs READ COMMITTED' in str(refused.value)


async def test_versions_with_predictions_cannot_be_truncated_away(
    engine: AsyncEngine, demo_catalogue: None
):
    async with engine.begin() as connection:
        await connection.execute(STORE_ONE, {"version": await _a_version(engine)})

    with pytest.raises(DBAPIError) as refused:
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE models CASCADE"))

    assert "predictions_reference_their_version" in str(refused.value)
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM model_versions")) >= 5


async def test_a_delete_racing_an_insert_waits_for_it_then_is_refused(
    engine: AsyncEngine, demo_catalogue: None
):
    """The insert's check locks the version as a foreign key would: the delete blocks until
    the insert commits, then finds its prediction."""
    version = await _a_version(engine)
    async with engine.connect() as inserting, engine.connect() as deleting:
        await inserting.execute(STORE_ONE, {"version": version})  # not committed yet
        deletion = asyncio.ensure_future(deleting.execute(DELETE_VERSION, {"version": version}))
        await asyncio.sleep(0.3)
        assert not deletion.done(), "the delete must wait for the inserting transaction"
        await inserting.commit()
        with pytest.raises(DBAPIError) as refused:
            await deletion

    assert "predictions_reference_their_version" in str(refused.value)
