"""Release safety: traffic splits with their history, and why each prediction's version answered.

Predictions stored before this revision did not record how their version was chosen; they are
marked DEFAULT (the path of every request naming neither version nor alias, the common case)
by the column's default while it is added: PostgreSQL fills it without rewriting the table, so
the immutable rows are not updated. The default is then dropped: the writer always states it.

Revision ID: 20261123_release
Revises: 20261122_02
Create Date: 2026-11-23 09:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261123_release"
down_revision: str | None = "20261123_operate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_traffic_shares",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "weight > 0 AND weight < 'Infinity'::float8",
            name=op.f("ck_model_traffic_shares_weight_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_traffic_shares_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_traffic_shares_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("model_id", "version_id", name=op.f("pk_model_traffic_shares")),
    )
    op.create_table(
        "model_traffic_split_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("shares", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_traffic_split_events_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_traffic_split_events")),
    )
    op.create_index(
        op.f("ix_model_traffic_split_events_model_id_changed_at"),
        "model_traffic_split_events",
        ["model_id", "changed_at"],
        unique=False,
    )
    op.add_column(
        "predictions",
        sa.Column(
            "routed_by",
            sa.String(length=10),
            server_default="DEFAULT",
            nullable=False,
            comment="Why this version answered: VERSION, ALIAS, DEFAULT or SPLIT",
        ),
    )
    op.alter_column("predictions", "routed_by", server_default=None)
    op.create_check_constraint(
        op.f("ck_predictions_routed_by"),
        "predictions",
        "routed_by IN ('VERSION', 'ALIAS', 'DEFAULT', 'SPLIT')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_predictions_routed_by"), "predictions", type_="check")
    op.drop_column("predictions", "routed_by")
    op.drop_index(
        op.f("ix_model_traffic_split_events_model_id_changed_at"),
        table_name="model_traffic_split_events",
    )
    op.drop_table("model_traffic_split_events")
    op.drop_table("model_traffic_shares")
