"""A shadow round's feed commit is written in the transaction storing its answers: a
transaction that fails afterwards leaves no commit (and sends no notification)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence.shadow_repository import record_shadow_commits
from modelql.persistence.tables import PredictionCommit


class _FailedError(Exception):
    pass


async def _record_then_fail(
    sessionmaker: async_sessionmaker[AsyncSession], version_id: uuid.UUID
) -> None:
    async with sessionmaker.begin() as session:
        await record_shadow_commits(session, [uuid.uuid4()], [version_id])
        raise _FailedError


async def _shadow_commits(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        found = await session.scalar(
            select(func.count()).select_from(PredictionCommit).where(PredictionCommit.shadows)
        )
    return int(found or 0)


async def test_a_failed_transaction_leaves_no_shadow_commit(
    sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
) -> None:
    async with sessionmaker() as session:
        version_id = await session.scalar(text("SELECT id FROM model_versions LIMIT 1"))
    before = await _shadow_commits(sessionmaker)

    with pytest.raises(_FailedError):
        await _record_then_fail(sessionmaker, version_id)

    assert await _shadow_commits(sessionmaker) == before


async def test_a_committed_transaction_records_one_commit_per_primary_version(
    sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
) -> None:
    async with sessionmaker() as session:
        versions = list(await session.scalars(text("SELECT id FROM model_versions LIMIT 2")))
    before = await _shadow_commits(sessionmaker)

    async with sessionmaker.begin() as session:
        await record_shadow_commits(
            session,
            [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()],
            [versions[0], versions[1], versions[0]],
        )

    assert await _shadow_commits(sessionmaker) == before + 2
