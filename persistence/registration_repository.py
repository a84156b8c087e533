"""The catalogue's writes: models created and locked, versions recorded with their arguments,
metrics, slices and reference profile, aliases moved and traffic splits replaced, each move kept
in its history. All in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import (
    AliasEvent,
    DataSlice,
    Model,
    ModelAlias,
    ModelVersion,
    PerformanceMetric,
    ReferenceProfile,
    TrafficShare,
    TrafficSplitEvent,
    TrainingArgument,
)


async def locked_model_or_new(
    session: AsyncSession, *, name: str, description: str | None, task: str, tags: Sequence[str]
) -> Model:
    """The model row, created if new (concurrent creators agree on one row), locked until
    COMMIT so that version numbers are handed out one at a time."""
    await session.execute(
        pg_insert(Model)
        .values(name=name, description=description, task=task, tags=list(tags))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    model = await locked_model(session, name)
    assert model is not None, "the row was inserted or already existed"
    return model


async def locked_model(session: AsyncSession, name: str) -> Model | None:
    """The named model, locked until COMMIT; None when there is none."""
    return await session.scalar(select(Model).where(Model.name == name).with_for_update())


async def newest_version_number(session: AsyncSession, model_id: uuid.UUID) -> int | None:
    return await session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model_id)
    )


async def version_by_number(
    session: AsyncSession, model_id: uuid.UUID, number: int
) -> ModelVersion | None:
    return await session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.number == number)
    )


async def version_ids_by_number(session: AsyncSession, model_id: uuid.UUID) -> dict[int, uuid.UUID]:
    rows = await session.execute(
        select(ModelVersion.number, ModelVersion.id).where(ModelVersion.model_id == model_id)
    )
    return {number: version_id for number, version_id in rows.all()}


async def add_version(
    session: AsyncSession,
    version: ModelVersion,
    *,
    arguments: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    slices: Sequence[Mapping[str, Any]],
    profile: dict[str, Any] | None,
) -> ModelVersion:
    """Insert the version, then its rows (each a mapping of its columns but the version id),
    and mark the model updated."""
    session.add(version)
    await session.flush()
    tables = ((TrainingArgument, arguments), (PerformanceMetric, metrics), (DataSlice, slices))
    for table, rows in tables:
        if rows:
            await session.execute(
                insert(table), [{**row, "version_id": version.id} for row in rows]
            )
    if profile is not None:
        session.add(ReferenceProfile(version_id=version.id, profile=profile))
        await session.flush()
    await session.execute(
        update(Model).where(Model.id == version.model_id).values(updated_at=func.now())
    )
    return version


async def move_alias(
    session: AsyncSession,
    *,
    model_id: uuid.UUID,
    alias: str,
    version_id: uuid.UUID,
    actor: str | None,
    based_on: dict[str, Any] | None = None,
) -> bool:
    """Point the alias at the version and record the move (with the comparison it was based
    on, if any); False when it already did."""
    current = await session.scalar(
        select(ModelAlias)
        .where(ModelAlias.model_id == model_id, ModelAlias.alias == alias)
        .with_for_update()
    )
    previous = current.version_id if current else None
    if previous == version_id:
        return False
    if current is None:
        session.add(
            ModelAlias(model_id=model_id, alias=alias, version_id=version_id, updated_by=actor)
        )
    else:
        current.version_id = version_id
        current.updated_by = actor
        current.updated_at = func.now()
    session.add(
        AliasEvent(
            model_id=model_id,
            alias=alias,
            from_version_id=previous,
            to_version_id=version_id,
            changed_by=actor,
            based_on=based_on,
        )
    )
    await session.flush()
    return True


async def traffic_shares(session: AsyncSession, model_id: uuid.UUID) -> dict[uuid.UUID, float]:
    rows = await session.execute(
        select(TrafficShare.version_id, TrafficShare.weight).where(
            TrafficShare.model_id == model_id
        )
    )
    return {version_id: weight for version_id, weight in rows.all()}


async def replace_traffic_split(
    session: AsyncSession,
    *,
    model_id: uuid.UUID,
    shares: Mapping[uuid.UUID, float],
    recorded: list[dict[str, Any]],
    actor: str | None,
) -> None:
    """Replace the model's shares (version id -> weight) and record the change as `recorded`."""
    await session.execute(delete(TrafficShare).where(TrafficShare.model_id == model_id))
    if shares:
        await session.execute(
            insert(TrafficShare),
            [
                {"model_id": model_id, "version_id": version_id, "weight": weight}
                for version_id, weight in shares.items()
            ],
        )
    session.add(TrafficSplitEvent(model_id=model_id, shares=recorded, changed_by=actor))
    await session.flush()


async def model_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Model)) or 0


async def lock_for_transaction(session: AsyncSession, key: int) -> None:
    """Wait for, then hold until COMMIT, the transaction-level advisory lock `key`."""
    await session.execute(select(func.pg_advisory_xact_lock(key)))
