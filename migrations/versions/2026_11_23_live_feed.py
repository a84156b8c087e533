"""Live feed: one row per stored group of predictions, the position subscribers catch up from.

Revision ID: 20261123_live
Revises: 20261122_02
Create Date: 2026-11-23 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_live"
down_revision: str | None = "20261123_quality"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_commits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("prediction_ids", sa.ARRAY(sa.Uuid()), nullable=False),
        sa.Column(
            "committed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_prediction_commits_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_commits")),
    )
    op.create_index(
        op.f("ix_prediction_commits_committed_at"), "prediction_commits", ["committed_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_prediction_commits_committed_at"), table_name="prediction_commits")
    op.drop_table("prediction_commits")
