"""SQL of the failed-prediction counts: failed instances added to the count of their version
and second (an upsert: concurrent failures add up)."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelql.persistence.tables import PredictionFailureCount


async def add(
    session: AsyncSession, model_id: uuid.UUID, model_version_id: uuid.UUID, failures: int
) -> None:
    """Add failed instances to the version's count for the current second."""
    new = insert(PredictionFailureCount).values(
        model_version_id=model_version_id,
        second=func.date_trunc("second", func.now()),
        model_id=model_id,
        failures=failures,
    )
    await session.execute(
        new.on_conflict_do_update(
            index_elements=[PredictionFailureCount.model_version_id, PredictionFailureCount.second],
            set_={"failures": PredictionFailureCount.failures + new.excluded.failures},
        )
    )
