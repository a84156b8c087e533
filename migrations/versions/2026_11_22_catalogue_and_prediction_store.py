"""Catalogue, alias history and prediction store; versions and predictions are immutable.

Revision ID: 20261122_01
Revises:
Create Date: 2026-11-22 01:49:37.577356
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261122_01"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


IMMUTABLE_TABLES = ("model_versions", "training_arguments", "performance_metrics", "predictions")

FORBID_UPDATE_FUNCTION = """
CREATE FUNCTION modelql_forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "caller", sa.Text(), nullable=False, comment="API key name; empty when auth is off"
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("caller", "key", name=op.f("uq_idempotency_records_caller_key")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("tags", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("task IN ('CLASSIFICATION', 'REGRESSION')", name=op.f("ck_models_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("framework", sa.Text(), nullable=False),
        sa.Column("framework_version", sa.Text(), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("input_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("labels", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("dataset", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("number >= 1", name=op.f("ck_model_versions_number_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "number", name=op.f("uq_model_versions_model_id_number")),
    )
    op.create_table(
        "model_alias_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("from_version_id", sa.Uuid(), nullable=True),
        sa.Column("to_version_id", sa.Uuid(), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_alias_events_from_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_alias_events_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_alias_events_to_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias_events")),
    )
    op.create_index(
        op.f("ix_model_alias_events_model_id_alias_changed_at"),
        "model_alias_events",
        ["model_id", "alias", "changed_at"],
        unique=False,
    )
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_aliases_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_aliases_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_model_aliases_model_id_alias")),
    )
    op.create_index(
        op.f("ix_model_aliases_version_id"), "model_aliases", ["version_id"], unique=False
    )
    op.create_table(
        "performance_metrics",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("split", sa.String(length=20), nullable=False),
        sa.Column("slice", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("num_samples", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "split IN ('TRAIN', 'VALIDATION', 'TEST')", name=op.f("ck_performance_metrics_split")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_performance_metrics_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performance_metrics")),
        sa.UniqueConstraint(
            "version_id",
            "split",
            "slice",
            "metric",
            name=op.f("uq_performance_metrics_version_id_split_slice_metric"),
        ),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("probabilities", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("idempotency_record_id", sa.Uuid(), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["idempotency_record_id"],
            ["idempotency_records.id"],
            name=op.f("fk_predictions_idempotency_record_id_idempotency_records"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_predictions_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(
        op.f("ix_predictions_caller_created_at_id"),
        "predictions",
        ["caller", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_predictions_created_at_id"), "predictions", ["created_at", "id"], unique=False
    )
    op.create_index(
        op.f("ix_predictions_idempotency_record_id_batch_index"),
        "predictions",
        ["idempotency_record_id", "batch_index"],
        unique=False,
    )
    op.create_index(
        op.f("ix_predictions_model_id_created_at_id"),
        "predictions",
        ["model_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_predictions_model_version_id_created_at_id"),
        "predictions",
        ["model_version_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_predictions_request_id"), "predictions", ["request_id"], unique=False)
    op.create_table(
        "training_arguments",
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "kind IN ('HYPERPARAMETER', 'DATA')", name=op.f("ck_training_arguments_kind")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_training_arguments_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_training_arguments")),
    )
    op.execute(FORBID_UPDATE_FUNCTION)
    for table in IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION modelql_forbid_update()"
        )


def downgrade() -> None:
    for table in IMMUTABLE_TABLES:
        op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
    op.execute("DROP FUNCTION modelql_forbid_update()")
    op.drop_table("training_arguments")
    op.drop_index(op.f("ix_predictions_request_id"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_model_version_id_created_at_id"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_model_id_created_at_id"), table_name="predictions")
    op.drop_index(
        op.f("ix_predictions_idempotency_record_id_batch_index"), table_name="predictions"
    )
    op.drop_index(op.f("ix_predictions_created_at_id"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_caller_created_at_id"), table_name="predictions")
    op.drop_table("predictions")
    op.drop_table("performance_metrics")
    op.drop_index(op.f("ix_model_aliases_version_id"), table_name="model_aliases")
    op.drop_table("model_aliases")
    op.drop_index(
        op.f("ix_model_alias_events_model_id_alias_changed_at"), table_name="model_alias_events"
    )
    op.drop_table("model_alias_events")
    op.drop_table("model_versions")
    op.drop_table("models")
    op.drop_table("idempotency_records")
