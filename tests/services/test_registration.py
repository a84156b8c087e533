"""Registering versions and moving aliases through the service, as a training pipeline would."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LinearRegression, LogisticRegression
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import create_database, drop_database

from modelql import schema_migrations
from modelql.models.artifacts import ArtifactStore
from modelql.models.metrics import PerformanceRecord
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.tables import AliasEvent, Model, ModelAlias, ModelVersion, TrainingArgument
from modelql.services import registration
from modelql.services.errors import RegistrationError
from modelql.services.registration import VersionRegistration

X = np.array([[0.0, 1.0], [0.5, 1.5], [1.0, 0.5], [3.0, 4.0], [3.5, 3.0], [4.0, 5.0]])
Y_CLASS = np.array(["low", "low", "low", "high", "high", "high"])
Y_VALUE = X.sum(axis=1)

Sessionmaker = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    return LogisticRegression(max_iter=200).fit(X, Y_CLASS)


@pytest.fixture(scope="module")
def regressor() -> LinearRegression:
    return LinearRegression().fit(X, Y_VALUE)


@pytest.fixture
def model_name() -> str:
    """A model name no other test uses (the catalogue is shared by the session)."""
    return f"reg-test-{uuid.uuid4().hex[:10]}"


def classification(name: str, **overrides: object) -> VersionRegistration:
    values: dict[str, object] = {
        "model_name": name,
        "task": "CLASSIFICATION",
        "algorithm": "sklearn.linear_model.LogisticRegression",
        "framework_version": sklearn.__version__,
        "signature": [
            FeatureSpec(name="a", type=FeatureType.NUMBER, minimum=0.0, maximum=4.0),
            FeatureSpec(name="b", type=FeatureType.NUMBER, minimum=0.5, maximum=5.0),
        ],
        "labels": ["high", "low"],
        "hyperparameters": {"max_iter": 200, "C": 1.0},
        "data_arguments": {"rows": 6},
        "performance": [
            PerformanceRecord("TEST", "overall", 6, {"accuracy": 1.0, "f1_macro": 1.0}),
        ],
    }
    values.update(overrides)
    return VersionRegistration(**values)  # type: ignore[arg-type]


def artifact_files(store: ArtifactStore, name: str) -> list[Path]:
    directory = store.root / name
    return sorted(directory.iterdir()) if directory.exists() else []


async def register(
    sessionmaker: Sessionmaker,
    store: ArtifactStore,
    described: VersionRegistration,
    estimator: object,
    actor: str | None = "tests",
) -> ModelVersion:
    async with sessionmaker.begin() as session:
        return await registration.register_version(
            session, store, described, estimator=estimator, actor=actor
        )


async def version_numbers(sessionmaker: Sessionmaker, name: str) -> list[int]:
    async with sessionmaker() as session:
        numbers = await session.scalars(
            select(ModelVersion.number)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(Model.name == name)
            .order_by(ModelVersion.number)
        )
        return list(numbers)


async def test_versions_of_a_new_model_are_numbered_from_one(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    first = await register(sessionmaker, artifact_store, classification(model_name), classifier)
    second = await register(sessionmaker, artifact_store, classification(model_name), classifier)

    assert (first.number, second.number) == (1, 2)
    assert await version_numbers(sessionmaker, model_name) == [1, 2]
    assert first.artifact_path.startswith(f"{model_name}/v1-")
    assert second.artifact_path.startswith(f"{model_name}/v2-")
    assert len(first.artifact_sha256) == 64
    loaded = artifact_store.load(second.artifact_path, second.artifact_sha256)
    assert list(loaded.predict(X)) == list(classifier.predict(X))
    async with sessionmaker() as session:
        arguments = {
            (argument.name, argument.kind): argument.value
            for argument in await session.scalars(
                select(TrainingArgument).where(TrainingArgument.version_id == first.id)
            )
        }
    assert arguments == {
        ("max_iter", "HYPERPARAMETER"): 200,
        ("C", "HYPERPARAMETER"): 1.0,
        ("rows", "DATA"): 6,
    }


async def test_an_explicit_new_number_is_honoured_and_numbering_continues_after_it(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    explicit = await register(
        sessionmaker, artifact_store, classification(model_name, number=5), classifier
    )
    following = await register(sessionmaker, artifact_store, classification(model_name), classifier)
    assert (explicit.number, following.number) == (5, 6)


async def test_registering_an_existing_number_is_refused_and_leaves_nothing(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    original = await register(sessionmaker, artifact_store, classification(model_name), classifier)
    files_before = artifact_files(artifact_store, model_name)

    other = LogisticRegression(C=0.01, max_iter=200).fit(X, Y_CLASS)
    with pytest.raises(RegistrationError, match="already exists"):
        await register(
            sessionmaker,
            artifact_store,
            classification(model_name, number=1, aliases=["production"]),
            other,
        )

    assert await version_numbers(sessionmaker, model_name) == [1]
    assert artifact_files(artifact_store, model_name) == files_before
    async with sessionmaker() as session:
        kept = await session.get(ModelVersion, original.id)
        aliases = await session.scalar(
            select(func.count()).select_from(ModelAlias).where(ModelAlias.version_id == original.id)
        )
    assert kept is not None and kept.artifact_sha256 == original.artifact_sha256
    assert aliases == 0


async def test_a_failure_after_the_artifact_was_written_removes_it(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    unstorable = classification(model_name, hyperparameters={"callback": object()})
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
        await register(sessionmaker, artifact_store, unstorable, classifier)

    assert await version_numbers(sessionmaker, model_name) == []
    assert artifact_files(artifact_store, model_name) == []
    assert not [path for path in artifact_store.root.iterdir() if path.name.startswith(".tmp-")]


async def test_set_alias_moves_production_and_keeps_its_history(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    v1 = await register(
        sessionmaker,
        artifact_store,
        classification(model_name, aliases=["production"]),
        classifier,
        actor="pipeline",
    )
    v2 = await register(sessionmaker, artifact_store, classification(model_name), classifier)
    moments: list[datetime] = [await _clock(sessionmaker)]

    async with sessionmaker.begin() as session:
        moved = await registration.set_alias(
            session, model_name=model_name, alias="production", number=2, actor="alice"
        )
    assert moved.id == v2.id
    moments.append(await _clock(sessionmaker))
    async with sessionmaker.begin() as session:  # pointing it where it already is: no event
        await registration.set_alias(
            session, model_name=model_name, alias="production", number=2, actor="alice"
        )
    async with sessionmaker.begin() as session:
        await registration.set_alias(
            session, model_name=model_name, alias="production", number=1, actor="bob"
        )
    moments.append(await _clock(sessionmaker))

    async with sessionmaker() as session:
        model_id = await session.scalar(select(Model.id).where(Model.name == model_name))
        current = await session.scalar(
            select(ModelAlias).where(
                ModelAlias.model_id == model_id, ModelAlias.alias == "production"
            )
        )
        events = (
            await session.execute(
                select(AliasEvent.from_version_id, AliasEvent.to_version_id, AliasEvent.changed_by)
                .where(AliasEvent.model_id == model_id, AliasEvent.alias == "production")
                .order_by(AliasEvent.changed_at, AliasEvent.id)
            )
        ).all()
        production_at = [
            await production_version_at(session, model_name, moment) for moment in moments
        ]
        before_any = await production_version_at(session, model_name, datetime(2000, 1, 1))

    assert current is not None and current.version_id == v1.id and current.updated_by == "bob"
    assert [tuple(event) for event in events] == [
        (None, v1.id, "pipeline"),
        (v1.id, v2.id, "alice"),
        (v2.id, v1.id, "bob"),
    ]
    assert production_at == [1, 2, 1]
    assert before_any is None


async def _clock(sessionmaker: Sessionmaker) -> datetime:
    """The database's wall clock, between two committed transactions."""
    async with sessionmaker() as session:
        return await session.scalar(text("SELECT clock_timestamp()"))


async def production_version_at(session: AsyncSession, model_name: str, moment: datetime):
    """Which version number was `production` of a model at a moment (None: no alias yet)."""
    latest_move = (
        select(AliasEvent.to_version_id)
        .join(Model, Model.id == AliasEvent.model_id)
        .where(
            Model.name == model_name,
            AliasEvent.alias == "production",
            AliasEvent.changed_at <= moment,
        )
        .order_by(AliasEvent.changed_at.desc(), AliasEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return await session.scalar(select(ModelVersion.number).where(ModelVersion.id == latest_move))


async def test_set_alias_refuses_unknown_models_versions_and_bad_names(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, classifier, model_name: str
):
    await register(sessionmaker, artifact_store, classification(model_name), classifier)
    cases = [
        ("no-such-model-" + model_name, "production", 1, "No model"),
        (model_name, "production", 7, "no version 7"),
        (model_name, "Production", 1, "must start with a lowercase letter"),
        (model_name, "prod stage", 1, "must start with a lowercase letter"),
    ]
    for name, alias, number, message in cases:
        with pytest.raises(RegistrationError, match=message):
            async with sessionmaker.begin() as session:
                await registration.set_alias(
                    session, model_name=name, alias=alias, number=number, actor="tests"
                )
    async with sessionmaker() as session:
        events = await session.scalar(
            select(func.count())
            .select_from(AliasEvent)
            .join(Model, Model.id == AliasEvent.model_id)
            .where(Model.name == model_name)
        )
    assert events == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_name": "Iris Classifier"}, "must be a slug"),
        ({"model_name": "UPPER"}, "must be a slug"),
        ({"model_name": ""}, "must be a slug"),
        ({"model_name": "-leading-dash"}, "must be a slug"),
        ({"model_name": "x" * 101}, "must be a slug"),
        ({"model_name": "../escape"}, "must be a slug"),
        ({"labels": None}, "Classification versions need labels"),
        ({"task": "CLUSTERING"}, "Task must be one of"),
        ({"signature": []}, "at least one feature"),
        (
            {
                "signature": [
                    FeatureSpec(name="a", type=FeatureType.NUMBER),
                    FeatureSpec(name="a", type=FeatureType.NUMBER),
                ]
            },
            "repeat",
        ),
        ({"data_arguments": {"C": 2}}, "both ways"),
        ({"performance": [PerformanceRecord("HOLDOUT", "overall", 3, {"a": 1.0})]}, "split"),
        ({"aliases": ["Production"]}, "Alias"),
        ({"number": 0}, "start at 1"),
    ],
)
async def test_bad_registrations_are_refused_and_leave_nothing(
    sessionmaker: Sessionmaker,
    artifact_store: ArtifactStore,
    classifier,
    model_name: str,
    overrides: dict[str, object],
    message: str,
):
    described = classification(model_name, **overrides)
    with pytest.raises(RegistrationError, match=message):
        await register(sessionmaker, artifact_store, described, classifier)
    async with sessionmaker() as session:
        models = await session.scalar(
            select(func.count()).select_from(Model).where(Model.name == described.model_name)
        )
    assert models == 0
    assert artifact_files(artifact_store, model_name) == []


async def test_regression_versions_take_no_labels(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, regressor, model_name: str
):
    described = classification(
        model_name, task="REGRESSION", algorithm="sklearn.linear_model.LinearRegression"
    )
    with pytest.raises(RegistrationError, match="regression ones none"):
        await register(sessionmaker, artifact_store, described, regressor)
    described.labels = None
    version = await register(sessionmaker, artifact_store, described, regressor)
    assert version.number == 1 and version.labels is None


async def test_a_model_task_cannot_change(
    sessionmaker: Sessionmaker,
    artifact_store: ArtifactStore,
    classifier,
    regressor,
    model_name: str,
):
    await register(sessionmaker, artifact_store, classification(model_name), classifier)
    as_regression = classification(
        model_name,
        task="REGRESSION",
        labels=None,
        algorithm="sklearn.linear_model.LinearRegression",
    )
    with pytest.raises(RegistrationError, match="is a classification model"):
        await register(sessionmaker, artifact_store, as_regression, regressor)

    assert await version_numbers(sessionmaker, model_name) == [1]
    assert len(artifact_files(artifact_store, model_name)) == 1
    async with sessionmaker() as session:
        task = await session.scalar(select(Model.task).where(Model.name == model_name))
    assert task == "CLASSIFICATION"


async def test_exactly_one_of_estimator_or_file(
    sessionmaker: Sessionmaker, artifact_store: ArtifactStore, model_name: str
):
    with pytest.raises(RegistrationError, match="exactly one"):
        async with sessionmaker.begin() as session:
            await registration.register_version(
                session, artifact_store, classification(model_name), actor="tests"
            )
    assert await version_numbers(sessionmaker, model_name) == []


async def test_concurrent_first_registrations_of_a_new_model_share_one_model(
    sessionmaker: Sessionmaker,
    artifact_store: ArtifactStore,
    classifier: LogisticRegression,
    model_name: str,
):
    async def one() -> int:
        async with sessionmaker.begin() as session:
            version = await registration.register_version(
                session, artifact_store, classification(model_name), estimator=classifier
            )
            return version.number

    numbers = await asyncio.gather(*(one() for _ in range(4)))
    assert sorted(numbers) == [1, 2, 3, 4]
    async with sessionmaker() as session:
        models = await session.scalar(select(func.count()).where(Model.name == model_name))
    assert models == 1


async def test_a_second_database_on_the_same_artifact_root_reuses_identical_artifacts(
    server_url: str,
    sessionmaker: Sessionmaker,
    artifact_store: ArtifactStore,
    classifier,
    model_name: str,
):
    """Switching from the embedded database to DATABASE_URL with the same data directory:
    the demo registration finds its artifacts already there and must not crash."""
    first = await register(sessionmaker, artifact_store, classification(model_name), classifier)
    url = await create_database(server_url)
    engine = create_engine(url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        other = create_sessionmaker(engine)
        again = await register(other, artifact_store, classification(model_name), classifier)
        unstorable = classification(model_name, hyperparameters={"callback": object()})
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
            await register(other, artifact_store, unstorable, classifier)
    finally:
        await engine.dispose()
        await drop_database(server_url, url)

    assert (again.artifact_path, again.artifact_sha256) == (
        first.artifact_path,
        first.artifact_sha256,
    )
    assert artifact_files(artifact_store, model_name) == [artifact_store.root / first.artifact_path]
    assert artifact_store.load(first.artifact_path, first.artifact_sha256) is not None
