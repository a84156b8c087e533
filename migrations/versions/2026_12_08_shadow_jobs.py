"""Shadows for prediction jobs and in the live tail: a job counts the shadow answers it stored
with its chunks (`rows_shadowed`) and the rows a failing shadow could not score
(`shadow_rows_failed`); a `prediction_commits` row may now record a stored group of shadow
answers (`shadows`: its prediction ids are the primaries shadowed), so the live feed sends
them to subscribers that select `shadows`.

Revision ID: 20261208_shadow_jobs
Revises: 20261207_job_retention
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261208_shadow_jobs"
down_revision: str | None = "20261207_job_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "prediction_jobs",
        sa.Column("rows_shadowed", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "prediction_jobs",
        sa.Column("shadow_rows_failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "prediction_commits",
        sa.Column("shadows", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("prediction_commits", "shadows")
    op.drop_column("prediction_jobs", "shadow_rows_failed")
    op.drop_column("prediction_jobs", "rows_shadowed")
