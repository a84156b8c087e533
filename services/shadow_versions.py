"""`setShadow`: which versions of a model score a sampled share of its live requests in the
shadow. Checked whole (every problem at once, nothing changed on any), stored with its
history, announced on the catalogue channel like aliases and traffic splits."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from modelql.models.signature import FeatureSpec
from modelql.models.signature_changes import SignatureChangeKind, signature_changes
from modelql.persistence import catalogue_repository, registration_repository, shadow_repository
from modelql.persistence.notifications import notify_catalogue_changed
from modelql.persistence.tables import ModelVersion
from modelql.services.errors import CatalogueInputError, ErrorCode, FieldProblem
from modelql.services.registration import locked_model


@dataclass(frozen=True)
class ShadowVersionRef:
    """A shadow version as the client named it: by number within the model, or by id."""

    number: int | None = None
    version_id: uuid.UUID | None = None


async def set_shadow(
    session: AsyncSession,
    *,
    model_name: str,
    versions: Sequence[ShadowVersionRef],
    sample: float | None,
    actor: str | None,
) -> list[int]:
    """Replace the model's shadow versions (an empty list clears them); the version numbers
    set. CatalogueInputError naming each bad input."""
    model = await locked_model(session, model_name)
    numbers = await registration_repository.version_ids_by_number(session, model.id)
    named = [ref.version_id for ref in versions if ref.version_id is not None]
    rows = {row.id: row for row in await catalogue_repository.versions_by_id(session, named)}
    chosen, problems = _resolve(model_name, model.id, versions, numbers, rows)
    if versions and (sample is None or not (math.isfinite(sample) and 0 < sample <= 1)):
        problems.append(
            FieldProblem(
                ("sample",),
                ErrorCode.INVALID_SHADOW,
                f"The sample is the share of requests the shadows score: more than 0, at most "
                f"1; got {sample!r}.",
            )
        )
    if not problems and chosen:
        problems += await _incompatible(session, model_name, model.id, chosen)
    if problems:
        raise CatalogueInputError(problems)
    wanted = {version_id: sample for version_id in chosen.values()}
    if await shadow_repository.shadow_versions(session, model.id) == wanted:
        return sorted(chosen)
    await shadow_repository.replace_shadows(
        session, model_id=model.id, versions=chosen, sample=sample, actor=actor
    )
    await notify_catalogue_changed(session, model.name)
    return sorted(chosen)


def _resolve(
    model_name: str,
    model_id: uuid.UUID,
    versions: Sequence[ShadowVersionRef],
    numbers: dict[int, uuid.UUID],
    rows: dict[uuid.UUID, ModelVersion],
) -> tuple[dict[int, uuid.UUID], list[FieldProblem]]:
    """The versions named (number -> id) and the problems of each reference."""
    chosen: dict[int, uuid.UUID] = {}
    problems: list[FieldProblem] = []
    for index, ref in enumerate(versions):
        path = ("versions", str(index))
        if (ref.number is None) == (ref.version_id is None):
            problems.append(
                FieldProblem(path, ErrorCode.INVALID_SHADOW, "Give a version's number or its id.")
            )
            continue
        if ref.version_id is not None:
            row = rows.get(ref.version_id)
            if row is None:
                problems.append(
                    FieldProblem((*path, "id"), ErrorCode.VERSION_NOT_FOUND, "No such version.")
                )
                continue
            if row.model_id != model_id:
                problems.append(
                    FieldProblem(
                        (*path, "id"),
                        ErrorCode.VERSION_OF_ANOTHER_MODEL,
                        f"This version belongs to another model, not to {model_name!r}: a "
                        "shadow answers its own model's requests.",
                    )
                )
                continue
            number, field = row.number, "id"
        else:
            assert ref.number is not None
            number, field = ref.number, "version"
            if number not in numbers:
                problems.append(
                    FieldProblem(
                        (*path, field),
                        ErrorCode.VERSION_NOT_FOUND,
                        f"Model {model_name!r} has no version {number}.",
                    )
                )
                continue
        if number in chosen:
            problems.append(
                FieldProblem(
                    (*path, field),
                    ErrorCode.INVALID_SHADOW,
                    f"Version {number} appears more than once.",
                )
            )
        chosen[number] = numbers[number]
    return chosen, problems


async def _incompatible(
    session: AsyncSession, model_name: str, model_id: uuid.UUID, chosen: dict[int, uuid.UUID]
) -> list[FieldProblem]:
    """A problem per shadow whose signature cannot score what the model's default version is
    sent: a required feature it lacks, or a feature of another type."""
    route = (await catalogue_repository.routes(session, ids=[model_id]))[0]
    aliases = {alias: uuid.UUID(str(version)) for alias, version in route.aliases}
    by_number = {int(number): uuid.UUID(str(version)) for number, version in route.numbers}
    default = aliases.get(catalogue_repository.DEFAULT_ALIAS) or by_number[max(by_number)]
    ids = [default, *chosen.values()]
    signatures = {
        row.id: [FeatureSpec.from_json(spec) for spec in row.input_schema]
        for row in await catalogue_repository.versions_by_id(session, ids)
    }
    problems = []
    for index, (number, version_id) in enumerate(chosen.items()):
        for change in signature_changes(signatures[default], signatures[version_id]):
            refuses = change.kind is SignatureChangeKind.RETYPED or (
                change.kind in (SignatureChangeKind.ADDED, SignatureChangeKind.REQUIRED_CHANGED)
                and change.after is not None
                and change.after.required
            )
            if refuses:
                problems.append(
                    FieldProblem(
                        ("versions", str(index)),
                        ErrorCode.INCOMPATIBLE_SIGNATURE,
                        f"Version {number} of {model_name!r} cannot score the inputs of the "
                        f"default version: feature {change.feature!r} is "
                        f"{change.kind.value.lower()} (see signatureChanges).",
                    )
                )
                break
    return problems


shadow_events_for_models = shadow_repository.shadow_events_for_models
"""Every change of each model's shadow versions, newest first (for the graph's loaders)."""
shadows_of_predictions = shadow_repository.shadows_of_predictions
"""Each primary prediction's shadow answers, oldest first (for the graph's loaders)."""
