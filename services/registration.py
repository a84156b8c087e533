"""Registering model versions, moving aliases and setting traffic splits; what a training
pipeline calls from Python. Every catalogue write notifies the other processes on COMMIT."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from modelql.models.artifacts import ArtifactError, ArtifactStore, StoredArtifact
from modelql.models.metrics import PerformanceRecord
from modelql.models.profile import ReferenceProfile
from modelql.models.signature import FeatureSpec
from modelql.models.training import DatasetInfo, ThresholdSlice, TrainedVersion
from modelql.models.vocabulary import STORED_SPLITS, Task
from modelql.persistence import registration_repository
from modelql.persistence.notifications import notify_catalogue_changed
from modelql.persistence.tables import (
    Model,
    ModelVersion,
)
from modelql.services.errors import (
    CatalogueInputError,
    ErrorCode,
    FieldProblem,
    RegistrationError,
)

MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
ALIAS_NAME = re.compile(r"[a-z][a-z0-9_-]{0,99}")
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
    slices: list[ThresholdSlice] = field(default_factory=list)
    """Rules of the named slices, stored so that LIVE metrics can use them too."""
    reference: ReferenceProfile | None = None
    """The training data's profile, which drift reports compare live inputs with."""

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
            slices=trained.slices,
            reference=trained.reference,
        )

    def check(self) -> None:
        """Refuse anything the catalogue could not serve faithfully."""
        if not MODEL_NAME.fullmatch(self.model_name):
            raise RegistrationError(
                f"Model name {self.model_name!r} must be a slug: lowercase letters, digits, "
                "'.', '_' or '-', at most 100 characters."
            )
        if self.task not in tuple(Task):
            raise RegistrationError(f"Task must be one of {', '.join(Task)}, got {self.task!r}.")
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
            if record.split not in STORED_SPLITS:
                raise RegistrationError(
                    f"Metric split must be one of {', '.join(STORED_SPLITS)}, got "
                    f"{record.split!r} (LIVE metrics are computed from recorded outcomes)."
                )
        for alias in self.aliases:
            _check_alias(alias)
        numeric = {s.name for s in self.signature if s.type in ("NUMBER", "INTEGER")}
        for rule in self.slices:
            if rule.feature not in numeric:
                raise RegistrationError(
                    f"Slice {rule.name!r} needs a numeric feature of the signature."
                )


def _check_alias(alias: str) -> None:
    if not ALIAS_NAME.fullmatch(alias):
        raise CatalogueInputError.single(
            ("alias",),
            ErrorCode.INVALID_ALIAS,
            f"Alias {alias!r} must start with a lowercase letter and hold only lowercase "
            "letters, digits, '_' or '-'.",
        )


async def _model_for_update(session: AsyncSession, registration: VersionRegistration) -> Model:
    """The model row, created if new, locked so version numbers are handed out one at a time."""
    model = await registration_repository.locked_model_or_new(
        session,
        name=registration.model_name,
        description=registration.model_description,
        task=registration.task,
        tags=registration.tags,
    )
    if model.task != registration.task:
        raise RegistrationError(
            f"Model {model.name!r} is a {model.task.lower()} model; "
            f"cannot register a {registration.task.lower()} version."
        )
    return model


async def _next_number(session: AsyncSession, model: Model, requested: int | None) -> int:
    newest = await registration_repository.newest_version_number(session, model.id)
    if requested is None:
        return (newest or 0) + 1
    if requested < 1:
        raise RegistrationError(f"Version numbers start at 1, got {requested}.")
    if await registration_repository.version_by_number(session, model.id, requested) is not None:
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
    if artifact.created:
        _remove_unless_committed(session, store.resolve(artifact.path))
    version = await _insert_version(session, model, number, artifact, registration)
    for alias in registration.aliases:
        await registration_repository.move_alias(
            session, model_id=model.id, alias=alias, version_id=version.id, actor=actor
        )
    await notify_catalogue_changed(session, model.name)
    return version


def _remove_unless_committed(session: AsyncSession, artifact: Path) -> None:
    """Delete the artifact file if the registering transaction ends without committing, here
    or later in the caller: an artifact without its version row is never left behind."""
    committed = ended = False

    def on_commit(_session: Session) -> None:
        nonlocal committed
        committed = True

    def on_end(_session: Session, transaction: SessionTransaction) -> None:
        nonlocal ended
        if transaction.parent is not None or ended:
            return
        ended = True
        if not committed:
            artifact.unlink(missing_ok=True)

    event.listen(session.sync_session, "after_commit", on_commit)
    event.listen(session.sync_session, "after_transaction_end", on_end)


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
    arguments = [
        {"name": name, "kind": kind, "value": value}
        for kind, values in (
            ("HYPERPARAMETER", registration.hyperparameters),
            ("DATA", registration.data_arguments),
        )
        for name, value in values.items()
    ]
    metrics = [
        {
            "split": record.split,
            "slice": record.slice,
            "metric": name,
            "value": value,
            "num_samples": record.num_samples,
        }
        for record in registration.performance
        for name, value in record.metrics.items()
    ]
    slices = {rule.name: rule for rule in registration.slices}
    return await registration_repository.add_version(
        session,
        version,
        arguments=arguments,
        metrics=metrics,
        slices=[
            {"name": name, "feature": rule.feature, "minimum": rule.minimum}
            for name, rule in slices.items()
        ],
        profile=registration.reference.to_json() if registration.reference else None,
    )


async def locked_model(session: AsyncSession, model_name: str) -> Model:
    """The named model, locked until COMMIT so that catalogue writes to it are serialised."""
    model = await registration_repository.locked_model(session, model_name)
    if model is None:
        raise CatalogueInputError.single(
            ("model",), ErrorCode.MODEL_NOT_FOUND, f"No model is named {model_name!r}."
        )
    return model


async def set_alias(
    session: AsyncSession,
    *,
    model_name: str,
    alias: str,
    number: int,
    actor: str | None = None,
    based_on: dict[str, Any] | None = None,
) -> ModelVersion:
    """Point `alias` of a model at one of its versions, recording the move in the history
    (with the summary of the comparison it was based on, if any)."""
    _check_alias(alias)
    model = await locked_model(session, model_name)
    version = await registration_repository.version_by_number(session, model.id, number)
    if version is None:
        raise CatalogueInputError.single(
            ("version",),
            ErrorCode.VERSION_NOT_FOUND,
            f"Model {model_name!r} has no version {number}.",
        )
    moved = await registration_repository.move_alias(
        session,
        model_id=model.id,
        alias=alias,
        version_id=version.id,
        actor=actor,
        based_on=based_on,
    )
    if moved:
        await notify_catalogue_changed(session, model.name)
    return version


async def set_traffic_split(
    session: AsyncSession,
    *,
    model_name: str,
    shares: Sequence[tuple[int, float]],
    actor: str | None = None,
) -> list[tuple[int, float]]:
    """Replace the model's traffic split by (version number, weight) shares, recording the
    change; an empty list removes the split. Weights are relative: positive and finite."""
    model = await locked_model(session, model_name)
    numbers = await registration_repository.version_ids_by_number(session, model.id)
    _check_shares(model_name, shares, numbers)
    wanted = {numbers[number]: weight for number, weight in shares}
    if await registration_repository.traffic_shares(session, model.id) == wanted:
        return list(shares)
    await registration_repository.replace_traffic_split(
        session,
        model_id=model.id,
        shares=wanted,
        recorded=[{"version": number, "weight": weight} for number, weight in shares],
        actor=actor,
    )
    await notify_catalogue_changed(session, model.name)
    return list(shares)


def _check_shares(
    model_name: str, shares: Sequence[tuple[int, float]], numbers: Mapping[int, object]
) -> None:
    """Every problem of the shares at once: unknown or repeated versions, weights that are
    not positive and finite, or whose sum is not (a draw places a point on their sum)."""
    problems: list[FieldProblem] = []
    seen: set[int] = set()
    for index, (number, weight) in enumerate(shares):
        path = ("shares", str(index))
        if number not in numbers:
            problems.append(
                FieldProblem(
                    (*path, "version"),
                    ErrorCode.VERSION_NOT_FOUND,
                    f"Model {model_name!r} has no version {number}.",
                )
            )
        elif number in seen:
            problems.append(
                FieldProblem(
                    (*path, "version"),
                    ErrorCode.INVALID_TRAFFIC_SPLIT,
                    f"Version {number} appears more than once; give each version one weight.",
                )
            )
        seen.add(number)
        if not (math.isfinite(weight) and weight > 0):
            problems.append(
                FieldProblem(
                    (*path, "weight"),
                    ErrorCode.INVALID_TRAFFIC_SPLIT,
                    f"A weight must be a positive, finite number; got {weight!r}.",
                )
            )
    if not problems and not math.isfinite(sum(weight for _, weight in shares)):
        problems.append(
            FieldProblem(
                ("shares",),
                ErrorCode.INVALID_TRAFFIC_SPLIT,
                "The weights' sum is not a finite number; use smaller weights (only their "
                "ratios matter).",
            )
        )
    if problems:
        raise CatalogueInputError(problems)


async def catalogue_is_empty(session: AsyncSession) -> bool:
    return await registration_repository.model_count(session) == 0


async def register_demo(
    session: AsyncSession, store: ArtifactStore, trained: list[TrainedVersion], *, actor: str
) -> list[ModelVersion]:
    """Register freshly trained demo versions in order, unless the catalogue filled meanwhile."""
    await registration_repository.lock_for_transaction(session, DEMO_LOCK_KEY)
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
