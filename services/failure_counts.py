"""Failed predictions counted durably, the numerator of the ERROR_RATE alert signal: a request
that fails once its version is known (inputs refused, scoring errors) adds its instances to the
version's count, in a short transaction of its own after the failure."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import failure_counts
from modelql.services.catalogue import Version
from modelql.services.errors import ErrorCode, StorageUnavailableError, UserInputError

logger = logging.getLogger("modelql")


def counts_as_failure(error: Exception) -> bool:
    """Every failure but an unreachable store and a reused idempotency key (the request was
    answered before)."""
    if isinstance(error, StorageUnavailableError):
        return False
    if isinstance(error, UserInputError):
        return any(p.code != ErrorCode.IDEMPOTENCY_CONFLICT for p in error.problems)
    return True


async def count_failure(
    sessionmaker: async_sessionmaker[AsyncSession], version: Version, instances: int
) -> None:
    """Add the failed request's instances to its version's count; a count that cannot be
    written is logged, never the request's error."""
    try:
        async with sessionmaker() as session, session.begin():
            await failure_counts.add(session, version.model_id, version.id, instances)
    except Exception:
        logger.exception("counting a failed prediction of %s failed", version.id)
