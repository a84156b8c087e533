"""Shadow versions: the versions scoring a sampled share of each model's live requests
(`model_shadow_versions`) and their history (`model_shadow_events`), the shadows' answers
linked to the primary predictions (`shadow_predictions`), and the comparison an alias move
was based on (`model_alias_events.based_on`).

Revision ID: 20261206_shadow
Revises: 20261206_error_counts
Create Date: 2026-12-06 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261206_shadow"
down_revision: str | None = "20261206_error_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINITE_NUMBERS = " AND ".join(
    f"({column} IS NULL OR {column} NOT IN ('NaN', 'Infinity', '-Infinity'))"
    for column in ("value", "confidence", "latency_ms")
)


def upgrade() -> None:
    op.add_column(
        "model_alias_events",
        sa.Column(
            "based_on",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="The comparison the move was based on (setAlias basedOn), as its summary",
        ),
    )
    op.create_table(
        "model_shadow_versions",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("sample", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "sample > 0 AND sample <= 1", name=op.f("ck_model_shadow_versions_sample_share")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_shadow_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_shadow_versions_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("model_id", "version_id", name=op.f("pk_model_shadow_versions")),
    )
    op.create_table(
        "model_shadow_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("versions", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("sample", sa.Double(), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_shadow_events_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_shadow_events")),
    )
    op.create_index(
        op.f("ix_model_shadow_events_model_id_changed_at"),
        "model_shadow_events",
        ["model_id", "changed_at"],
    )
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("primary_id", sa.Uuid(), nullable=False),
        sa.Column("primary_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("probabilities", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(FINITE_NUMBERS, name=op.f("ck_shadow_predictions_finite_numbers")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_shadow_predictions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_shadow_predictions_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_predictions")),
    )
    op.create_index(op.f("ix_shadow_predictions_primary_id"), "shadow_predictions", ["primary_id"])
    op.create_index(
        op.f("ix_shadow_predictions_model_version_id_created_at_id"),
        "shadow_predictions",
        ["model_version_id", "created_at", "id"],
    )
    op.create_index(
        op.f("ix_shadow_predictions_primary_created_at"),
        "shadow_predictions",
        ["primary_created_at"],
    )


def downgrade() -> None:
    op.drop_table("shadow_predictions")
    op.drop_index(
        op.f("ix_model_shadow_events_model_id_changed_at"), table_name="model_shadow_events"
    )
    op.drop_table("model_shadow_events")
    op.drop_table("model_shadow_versions")
    op.drop_column("model_alias_events", "based_on")
