"""Registering model versions and moving aliases; what a training pipeline calls from Python."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.artifacts import ArtifactError, ArtifactStore, StoredArtifact
from models.metrics import PerformanceRecord
from models.signature import FeatureSpec
from models.training import DatasetInfo, TrainedVersion
from persistence.tables import (
    AliasEvent,
    Model,
    ModelAlias,
    ModelVersion,
    PerformanceMetric,
    TrainingArgument,
)
from services.errors import RegistrationError

MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
ALIAS_NAME = re.compile(r"[a-z][a-z0-9_-]{0,99}")
TASKS = ("CLASSIFICATION", "REGRESSION")
SPLITS = ("TRAIN", "VALIDATION", "TEST")
DEMO_LOCK_KEY = 0x6D6F64656C716C  # "modelql": serialises demo registration across processes


@dataclass
class VersionRegistration:
    """Everything the catalogue records about a new version, besides its artifact."""

    model_name: str
    task: str
    algorithm: str
    framework_version: str
    signature: list[FeatureSpec]
    labels: list[str] | None = None
    framework: str = "scikit-learn"
    description: str | None = None
    model_description: str | None = None
    tags: list[str] = field(default_factory=list)
    dataset: DatasetInfo | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data_arguments: dict[str, Any] = field(default_factory=dict)
    performance: list[PerformanceRecord] = field(default_factory=list)
    trained_at: datetime | None = None
    aliases: list[str] = field(default_factory=list)
    number: int | None = None

    @classmethod
    def from_trained(cls, trained: TrainedVersion) -> VersionRegistration:
        return cls(
            model_name=trained.model_name,
            task=trained.task,
            algorithm=trained.algorithm,
            framework_version=trained.framework_version,
            signature=trained.signature,
            labels=trained.labels,
            description=trained.description,
            model_description=trained.model_description,
            tags=trained.tags,
            dataset=trained.dataset,
            hyperparameters=trained.hyperparameters,
            data_arguments=trained.data_arguments,
            performance=trained.performance,
            trained_at=trained.trained_at,
            aliases=trained.aliases,
        )

    def check(self) -> None:
        """Refuse anything the catalogue could not serve faithfully."""
        if not MODEL_NAME.fullmatch(self.model_name):
            raise RegistrationError(
                f"Model name {self.model_name!r} must be a slug: lowercase letters, digits, "
                "'.', '_' or '-', at most 100 characters."
            )
        if self.task not in TASKS:
            raise RegistrationError(f"Task must be one of {', '.join(TASKS)}, got {self.task!r}.")
        if not self.signature:
            raise RegistrationError("A version needs an input signature of at least one feature.")
        names = [spec.name for spec in self.signature]
        if len(set(names)) != len(names):
            raise RegistrationError(f"Feature names in the signature repeat: {names}.")
        if (self.task == "CLASSIFICATION") != (self.labels is not None):
            raise RegistrationError("Classification versions need labels; regression ones none.")
        overlap = set(self.hyperparameters) & set(self.data_arguments)
        if overlap:
            raise RegistrationError(f"Arguments named both ways: {sorted(overlap)}.")
        for record in self.performance:
            if record.split not in SPLITS:
                raise RegistrationError(
                    f"Metric split must be one of {', '.join(SPLITS)}, got {record.split!r}."
                )
        for alias in self.aliases:
            _check_alias(alias)


def _check_alias(alias: str) -> None:
    if not ALIAS_NAME.fullmatch(alias):
        raise RegistrationError(
            f"Alias {alias!r} must start with a lowercase letter and hold only lowercase "
            "letters, digits, '_' or '-'."
        )


async def _model_for_update(session: AsyncSession, registration: VersionRegistration) -> Model:
    """The model row, created if new (concurrent creators agree on one row) and locked, so
    version numbers are handed out one at a time."""
    await session.execute(
        pg_insert(Model)
        .values(
            name=registration.model_name,
            description=registration.model_description,
            task=registration.task,
            tags=list(registration.tags),
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    model = await session.scalar(
        select(Model).where(Model.name == registration.model_name).with_for_update()
    )
    assert model is not None, "the row was inserted or already existed"
    if model.task != registration.task:
        raise RegistrationError(
            f"Model {model.name!r} is a {model.task.lower()} model; "
            f"cannot register a {registration.task.lower()} version."
        )
    return model


async def _next_number(session: AsyncSession, model: Model, requested: int | None) -> int:
    newest = await session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)
    )
    if requested is None:
        return (newest or 0) + 1
    if requested < 1:
        raise RegistrationError(f"Version numbers start at 1, got {requested}.")
    exists = await session.scalar(
        select(ModelVersion.id).where(
            ModelVersion.model_id == model.id, ModelVersion.number == requested
        )
    )
    if exists is not None:
        raise RegistrationError(
            f"Version {requested} of model {model.name!r} already exists; versions are "
            "immutable, register a new version instead."
        )
    return requested


async def register_version(
    session: AsyncSession,
    store: ArtifactStore,
    registration: VersionRegistration,
    *,
    estimator: Any | None = None,
    artifact_file: Path | None = None,
    actor: str | None = None,
) -> ModelVersion:
    """Store the artifact and record the version with its arguments, metrics and aliases."""
    registration.check()
    if (estimator is None) == (artifact_file is None):
        raise RegistrationError("Give exactly one of an estimator or an artifact file.")
    model = await _model_for_update(session, registration)
    number = await _next_number(session, model, registration.number)
    artifact = _store_artifact(store, model.name, number, estimator, artifact_file)
    try:
        version = await _insert_version(session, model, number, artifact, registration)
        for alias in registration.aliases:
            await _point_alias(session, model, alias, version, actor)
    except BaseException:
        store.resolve(artifact.path).unlink(missing_ok=True)
        raise
    return version


def _store_artifact(
    store: ArtifactStore,
    model_name: str,
    number: int,
    estimator: Any | None,
    artifact_file: Path | None,
) -> StoredArtifact:
    try:
        if artifact_file is not None:
            return store.import_file(artifact_file, model_name=model_name, version=number)
        return store.save(estimator, model_name=model_name, version=number)
    except ArtifactError as error:
        raise RegistrationError(str(error)) from error


async def _insert_version(
    session: AsyncSession,
    model: Model,
    number: int,
    artifact: StoredArtifact,
    registration: VersionRegistration,
) -> ModelVersion:
    version = ModelVersion(
        model_id=model.id,
        number=number,
        description=registration.description,
        algorithm=registration.algorithm,
        framework=registration.framework,
        framework_version=registration.framework_version,
        artifact_path=artifact.path,
        artifact_sha256=artifact.sha256,
        input_schema=[spec.to_json() for spec in registration.signature],
        labels=registration.labels,
        dataset=asdict(registration.dataset) if registration.dataset else None,
        trained_at=registration.trained_at,
    )
    session.add(version)
    await session.flush()
    arguments = [
        {"version_id": version.id, "name": name, "kind": kind, "value": value}
        for kind, values in (
            ("HYPERPARAMETER", registration.hyperparameters),
            ("DATA", registration.data_arguments),
        )
        for name, value in values.items()
    ]
    if arguments:
        await session.execute(insert(TrainingArgument), arguments)
    metrics = [
        {
            "version_id": version.id,
            "split": record.split,
            "slice": record.slice,
            "metric": name,
            "value": value,
            "num_samples": record.num_samples,
        }
        for record in registration.performance
        for name, value in record.metrics.items()
    ]
    if metrics:
        await session.execute(insert(PerformanceMetric), metrics)
    await session.execute(update(Model).where(Model.id == model.id).values(updated_at=func.now()))
    return version


async def _point_alias(
    session: AsyncSession, model: Model, alias: str, version: ModelVersion, actor: str | None
) -> None:
    current = await session.scalar(
        select(ModelAlias)
        .where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        .with_for_update()
    )
    previous = current.version_id if current else None
    if previous == version.id:
        return
    if current is None:
        session.add(
            ModelAlias(model_id=model.id, alias=alias, version_id=version.id, updated_by=actor)
        )
    else:
        current.version_id = version.id
        current.updated_by = actor
        current.updated_at = func.now()
    session.add(
        AliasEvent(
            model_id=model.id,
            alias=alias,
            from_version_id=previous,
            to_version_id=version.id,
            changed_by=actor,
        )
    )
    await session.flush()


async def set_alias(
    session: AsyncSession, *, model_name: str, alias: str, number: int, actor: str | None = None
) -> ModelVersion:
    """Point `alias` of a model at one of its versions, recording the move in the history."""
    _check_alias(alias)
    model = await session.scalar(select(Model).where(Model.name == model_name).with_for_update())
    if model is None:
        raise RegistrationError(f"No model is named {model_name!r}.")
    version = await session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.number == number)
    )
    if version is None:
        raise RegistrationError(f"Model {model_name!r} has no version {number}.")
    await _point_alias(session, model, alias, version, actor)
    return version


async def catalogue_is_empty(session: AsyncSession) -> bool:
    return await session.scalar(select(func.count()).select_from(Model)) == 0


async def register_demo(
    session: AsyncSession, store: ArtifactStore, trained: list[TrainedVersion], *, actor: str
) -> list[ModelVersion]:
    """Register freshly trained demo versions in order, unless the catalogue filled meanwhile."""
    await session.execute(select(func.pg_advisory_xact_lock(DEMO_LOCK_KEY)))
    if not await catalogue_is_empty(session):
        return []
    return [
        await register_version(
            session,
            store,
            VersionRegistration.from_trained(version),
            estimator=version.estimator,
            actor=actor,
        )
        for version in trained
    ]
