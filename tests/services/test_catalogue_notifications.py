"""Every catalogue write announces itself on COMMIT (`pg_notify('modelql_catalogue', model)`),
so that every process re-reads the model's routes; a write that changes nothing is silent."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from support import libpq_url

from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.persistence.notifications import CATALOGUE_CHANNEL
from modelql.services import registration


@pytest.fixture
async def heard(database_url: str):
    """The payloads of catalogue notifications received while the test runs."""
    payloads: list[str] = []
    connection = await asyncpg.connect(libpq_url(database_url))
    await connection.add_listener(CATALOGUE_CHANNEL, lambda *args: payloads.append(args[3]))
    yield payloads
    await connection.close()


async def settle() -> None:
    await asyncio.sleep(0.2)


async def test_registering_moving_an_alias_and_setting_a_split_notify(
    sessionmaker, artifact_store: ArtifactStore, heard: list[str]
):
    name = f"zz-notified-{uuid.uuid4().hex[:8]}"  # after the demo models, by name
    estimator = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array(["a", "b"]))
    for _ in range(2):
        async with sessionmaker.begin() as session:
            await registration.register_version(
                session,
                artifact_store,
                registration.VersionRegistration(
                    model_name=name,
                    task="CLASSIFICATION",
                    algorithm="sklearn.linear_model.LogisticRegression",
                    framework_version=sklearn.__version__,
                    signature=[FeatureSpec(name="x", type=FeatureType.NUMBER)],
                    labels=["a", "b"],
                ),
                estimator=estimator,
            )
    await settle()
    assert heard == [name, name]

    writes = [
        lambda s: registration.set_alias(s, model_name=name, alias="production", number=2),
        lambda s: registration.set_alias(s, model_name=name, alias="production", number=2),
        lambda s: registration.set_traffic_split(s, model_name=name, shares=[(1, 1), (2, 3)]),
        lambda s: registration.set_traffic_split(s, model_name=name, shares=[(2, 3), (1, 1)]),
        lambda s: registration.set_traffic_split(s, model_name=name, shares=[]),
    ]
    for write in writes:
        async with sessionmaker.begin() as session:
            await write(session)
    await settle()
    assert heard == [name] * 5, "a move, a split, its removal; repeating a state is silent"

    async with sessionmaker() as session:  # rolled back: nothing is announced
        await registration.set_alias(session, model_name=name, alias="production", number=1)
        await session.rollback()
    await settle()
    assert len(heard) == 5
