"""API keys as stored: a name, a public prefix, the SHA-256 of the whole key, scopes, a rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import ApiKey


async def name_taken(session: AsyncSession, name: str) -> bool:
    return await session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def all_by_name(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.name))).all()


async def revoke(session: AsyncSession, name: str) -> bool:
    """Revoke the active key of that name; False when there is none."""
    # An UPDATE's result is a CursorResult, which has the row count; AsyncSession.execute
    # is typed as returning any Result.
    revoked = cast(
        CursorResult[*tuple[Any, ...]],
        await session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
        ),
    )
    return bool(revoked.rowcount)


async def active_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    )
