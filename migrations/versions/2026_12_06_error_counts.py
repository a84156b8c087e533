"""Failed prediction instances counted per version and second (`prediction_failure_counts`),
what the ERROR_RATE alert signal divides by the predictions stored.

Revision ID: 20261206_error_counts
Revises: 20261205_prediction_jobs
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_error_counts"
down_revision: str | None = "20261205_prediction_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_failure_counts",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("second", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_prediction_failure_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_prediction_failure_counts_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "second", name=op.f("pk_prediction_failure_counts")
        ),
    )
    op.create_index(
        op.f("ix_prediction_failure_counts_model_id_second"),
        "prediction_failure_counts",
        ["model_id", "second"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_prediction_failure_counts_model_id_second"),
        table_name="prediction_failure_counts",
    )
    op.drop_table("prediction_failure_counts")
