"""Job retention: a finished job's uploaded file and parts can be dropped (`pruned_at`), its
progress then kept on the job (`rows_done`); the job's unused `next_row` (parts hold the
cursors) goes.

Revision ID: 20261207_job_retention
Revises: 20261206_model_keys
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_job_retention"
down_revision: str | None = "20261206_model_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "prediction_jobs", sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("prediction_jobs", sa.Column("rows_done", sa.Integer(), nullable=True))
    op.drop_column("prediction_jobs", "next_row")
    op.create_index(
        "ix_prediction_jobs_unpruned_finished_at",
        "prediction_jobs",
        ["finished_at"],
        postgresql_where=sa.text("pruned_at IS NULL AND finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_jobs_unpruned_finished_at", table_name="prediction_jobs")
    op.add_column(
        "prediction_jobs",
        sa.Column("next_row", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.drop_column("prediction_jobs", "rows_done")
    op.drop_column("prediction_jobs", "pruned_at")
