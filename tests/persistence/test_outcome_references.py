"""An outcome names a stored prediction by its key (id, created_at), and a prediction with
outcomes stays: what the foreign keys enforced, held by triggers so that a prune's detach
checks nothing (migration 20261210_outcome_references)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

RULE = "outcomes_reference_their_prediction"
STORE_ONE = text(
    "INSERT INTO predictions (id, model_id, model_version_id, inputs, label, latency_ms, "
    "request_id, batch_index, routed_by) SELECT gen_random_uuid(), v.model_id, v.id, '{}', "
    "'setosa', 1.0, 'req', 0, 'DEFAULT' FROM model_versions v ORDER BY v.id LIMIT 1 "
    "RETURNING id"
)
LABEL = (
    "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, observed_at) "
    "SELECT gen_random_uuid(), id, created_at{shift}, 'setosa', now() FROM predictions "
    "WHERE id = :prediction"
)
LATEST = text(
    "INSERT INTO latest_outcomes (prediction_id, outcome_id, model_version_id, predicted_at, "
    "label) SELECT o.prediction_id, o.id, p.model_version_id, o.predicted_at, o.label "
    "FROM prediction_outcomes o JOIN predictions p ON p.id = o.prediction_id "
    "WHERE o.prediction_id = :prediction"
)
DELETE_PREDICTION = text("DELETE FROM predictions WHERE id = :prediction")


async def _stored(engine: AsyncEngine) -> object:
    async with engine.begin() as connection:
        return (await connection.execute(STORE_ONE)).scalar_one()


async def _labelled(engine: AsyncEngine) -> object:
    prediction = await _stored(engine)
    async with engine.begin() as connection:
        await connection.execute(text(LABEL.format(shift="")), {"prediction": prediction})
        await connection.execute(LATEST, {"prediction": prediction})
    return prediction


async def _refused(engine: AsyncEngine, statement: str, **values: object) -> str:
    with pytest.raises(DBAPIError) as refused:
        async with engine.begin() as connection:
            await connection.execute(text(statement), values)
    return str(refused.value)


async def test_an_outcome_must_name_a_prediction_by_its_id_and_time(
    engine: AsyncEngine, demo_catalogue: None
):
    prediction = await _stored(engine)

    message = await _refused(
        engine, LABEL.format(shift=" + interval '1 second'"), prediction=prediction
    )

    assert "ForeignKeyViolation" in message and f"violates {RULE}" in message
    assert 'table "prediction_outcomes"' in message


async def test_a_latest_outcome_must_name_a_prediction_by_its_id_and_time(
    engine: AsyncEngine, demo_catalogue: None
):
    prediction = await _labelled(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM latest_outcomes"))

    message = await _refused(
        engine,
        str(LATEST).replace("o.predicted_at,", "o.predicted_at - interval '1 day',"),
        prediction=prediction,
    )

    assert 'table "latest_outcomes"' in message and f"violates {RULE}" in message


async def test_outcomes_of_stored_predictions_are_accepted_many_at_once(
    engine: AsyncEngine, demo_catalogue: None
):
    first, second = await _stored(engine), await _stored(engine)
    async with engine.begin() as connection:
        for _ in range(2):  # two outcomes of each: the check counts distinct predictions
            for prediction in (first, second):
                await connection.execute(text(LABEL.format(shift="")), {"prediction": prediction})
        count = await connection.scalar(text("SELECT count(*) FROM prediction_outcomes"))

    assert count == 4


@pytest.mark.parametrize("where", ["predictions", "its partition"])
async def test_a_prediction_with_outcomes_cannot_be_deleted(
    engine: AsyncEngine, demo_catalogue: None, where: str
):
    prediction = await _labelled(engine)
    async with engine.connect() as connection:
        partition = await connection.scalar(
            text("SELECT tableoid::regclass::text FROM predictions WHERE id = :prediction"),
            {"prediction": prediction},
        )
    table = "predictions" if where == "predictions" else partition

    message = await _refused(engine, f"DELETE FROM {table} WHERE id = :p", p=prediction)

    assert f'delete on table "predictions" violates {RULE}' in message


async def test_a_prediction_without_outcomes_can_be_deleted(
    engine: AsyncEngine, demo_catalogue: None
):
    await _labelled(engine)
    unlabelled = await _stored(engine)
    async with engine.begin() as connection:
        deleted = await connection.execute(DELETE_PREDICTION, {"prediction": unlabelled})

    assert deleted.rowcount == 1


async def test_predictions_with_outcomes_cannot_be_truncated_alone(
    engine: AsyncEngine, demo_catalogue: None
):
    await _labelled(engine)

    message = await _refused(engine, "TRUNCATE predictions")

    assert f'truncate on table "predictions" violates {RULE}' in message
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE latest_outcomes, prediction_outcomes, predictions"))
        assert await connection.scalar(text("SELECT count(*) FROM predictions")) == 0


async def test_every_table_of_the_partitions_schema_is_guarded_against_truncation(
    engine: AsyncEngine, demo_catalogue: None
):
    """Statement triggers are not cloned onto partitions (migration 20261211)."""
    async with engine.connect() as connection:
        tables = await connection.execute(
            text(
                "SELECT c.relname, EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid "
                "AND t.tgname = :trigger) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'prediction_partitions' AND c.relkind = 'r'"
            ),
            {"trigger": f"{RULE}_on_truncate"},
        )
        guarded = dict(tables.all())

    assert "predictions_legacy" in guarded
    assert all(guarded.values()), guarded


async def test_the_partition_of_a_labelled_prediction_cannot_be_truncated(
    engine: AsyncEngine, demo_catalogue: None
):
    prediction = await _labelled(engine)
    async with engine.connect() as connection:
        partition = await connection.scalar(
            text("SELECT tableoid::regclass::text FROM predictions WHERE id = :prediction"),
            {"prediction": prediction},
        )

    message = await _refused(engine, f"TRUNCATE {partition}")

    assert f'truncate on table "{partition.split(".")[1]}" violates {RULE}' in message


async def test_predictions_are_deleted_only_on_a_fresh_snapshot(
    engine: AsyncEngine, demo_catalogue: None
):
    """Under REPEATABLE READ the check could miss an outcome committed after the snapshot."""
    prediction = await _stored(engine)
    async with engine.connect() as connection:
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        with pytest.raises(DBAPIError) as refused:
            await connection.execute(DELETE_PREDICTION, {"prediction": prediction})

    assert 'delete on table "predictions" needs READ COMMITTED' in str(refused.value)


async def test_a_delete_racing_an_outcome_waits_for_it_then_is_refused(
    engine: AsyncEngine, demo_catalogue: None
):
    """The outcome's check locks the prediction as a foreign key would: the delete blocks
    until the outcome commits, then finds it."""
    prediction = await _stored(engine)
    async with engine.connect() as labelling, engine.connect() as deleting:
        await labelling.execute(text(LABEL.format(shift="")), {"prediction": prediction})
        deletion = asyncio.ensure_future(
            deleting.execute(DELETE_PREDICTION, {"prediction": prediction})
        )
        await asyncio.sleep(0.3)
        assert not deletion.done(), "the delete must wait for the labelling transaction"
        await labelling.commit()
        with pytest.raises(DBAPIError) as refused:
            await deletion

    assert f"violates {RULE}" in str(refused.value)
