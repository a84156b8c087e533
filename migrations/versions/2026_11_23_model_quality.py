"""Model quality: outcomes (append-only, with the latest per prediction), slice rules and
reference profiles of versions, and hourly prediction roll-ups (counts and sums per version,
caller and label; latency histograms per version) back-filled from the store.

Revision ID: 20261123_quality
Revises: 20261122_02
Create Date: 2026-11-23 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261123_quality"
down_revision: str | None = "20261123_release"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLES = ("prediction_outcomes", "data_slices", "reference_profiles")

# Bucket b holds latencies in [0.001 * 1.1**b, 0.001 * 1.1**(b + 1)) ms; below 1 µs: bucket 0.
LATENCY_BUCKET_FUNCTION = """
CREATE FUNCTION modelql_latency_bucket(latency_ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN greatest(0, floor(ln(greatest(latency_ms, 0.001) / 0.001) / ln(1.1)))::integer
"""

BACKFILL_ROLLUPS = """
INSERT INTO prediction_rollups (
    model_version_id, caller, label, hour, model_id, count, latency_sum,
    confidence_sum, confidence_count, value_sum, value_count, first_at, last_at
)
SELECT model_version_id, coalesce(caller, ''), coalesce(label, ''),
       date_trunc('hour', created_at, 'UTC'), model_id, count(*), sum(latency_ms),
       coalesce(sum(confidence), 0), count(confidence), coalesce(sum(value), 0), count(value),
       min(created_at), max(created_at)
FROM predictions
GROUP BY 1, 2, 3, 4, 5
"""

BACKFILL_LATENCY_ROLLUPS = """
INSERT INTO prediction_latency_rollups (model_version_id, hour, bucket, model_id, count)
SELECT model_version_id, date_trunc('hour', created_at, 'UTC'),
       modelql_latency_bucket(latency_ms), model_id, count(*)
FROM predictions
GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    op.create_table(
        "data_slices",
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("minimum", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_data_slices_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_data_slices")),
    )
    op.create_table(
        "reference_profiles",
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("profile", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_reference_profiles_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_reference_profiles")),
    )
    op.create_table(
        "prediction_outcomes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(label IS NULL) <> (value IS NULL)",
            name=op.f("ck_prediction_outcomes_label_or_value"),
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_prediction_outcomes_prediction_id_predictions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_outcomes")),
    )
    op.create_index(
        op.f("ix_prediction_outcomes_prediction_id_recorded_at_id"),
        "prediction_outcomes",
        ["prediction_id", "recorded_at", "id"],
        unique=False,
    )
    op.create_table(
        "latest_outcomes",
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("outcome_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("predicted_label", sa.Text(), nullable=True),
        sa.Column("predicted_value", sa.Double(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column(
            "correct",
            sa.Boolean(),
            sa.Computed("predicted_label = label", persisted=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_latest_outcomes_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["outcome_id"],
            ["prediction_outcomes.id"],
            name=op.f("fk_latest_outcomes_outcome_id_prediction_outcomes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_latest_outcomes_prediction_id_predictions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_latest_outcomes")),
    )
    op.create_index(
        op.f("ix_latest_outcomes_model_version_id_predicted_at"),
        "latest_outcomes",
        ["model_version_id", "predicted_at"],
        unique=False,
        postgresql_include=["predicted_label", "label", "predicted_value", "value"],
    )
    op.create_table(
        "prediction_rollups",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Double(), nullable=False),
        sa.Column("confidence_sum", sa.Double(), nullable=False),
        sa.Column("confidence_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Double(), nullable=False),
        sa.Column("value_count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("correct", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_prediction_rollups_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_prediction_rollups_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "caller", "label", "hour", name=op.f("pk_prediction_rollups")
        ),
    )
    op.create_index(
        op.f("ix_prediction_rollups_model_id_hour"),
        "prediction_rollups",
        ["model_id", "hour"],
        unique=False,
    )
    op.create_index(
        op.f("ix_prediction_rollups_hour"), "prediction_rollups", ["hour"], unique=False
    )
    op.create_table(
        "prediction_latency_rollups",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_prediction_latency_rollups_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_prediction_latency_rollups_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "hour", "bucket", name=op.f("pk_prediction_latency_rollups")
        ),
    )
    op.create_index(
        op.f("ix_prediction_latency_rollups_model_id_hour"),
        "prediction_latency_rollups",
        ["model_id", "hour"],
        unique=False,
    )
    op.create_table(
        "outcome_rollups",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("predicted", sa.Text(), nullable=False),
        sa.Column("observed", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("squared_error", sa.Double(), nullable=False),
        sa.Column("absolute_error", sa.Double(), nullable=False),
        sa.Column("observed_sum", sa.Double(), nullable=False),
        sa.Column("observed_square_sum", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_outcome_rollups_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "hour", "predicted", "observed", name=op.f("pk_outcome_rollups")
        ),
    )
    op.execute(LATENCY_BUCKET_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION modelql_forbid_update()"
        )
    op.execute(BACKFILL_ROLLUPS)
    op.execute(BACKFILL_LATENCY_ROLLUPS)


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
    op.drop_index(op.f("ix_prediction_rollups_hour"), table_name="prediction_rollups")
    op.drop_index(op.f("ix_prediction_rollups_model_id_hour"), table_name="prediction_rollups")
    op.drop_table("prediction_rollups")
    op.drop_index(
        op.f("ix_prediction_latency_rollups_model_id_hour"),
        table_name="prediction_latency_rollups",
    )
    op.drop_table("prediction_latency_rollups")
    op.drop_table("outcome_rollups")
    op.execute("DROP FUNCTION modelql_latency_bucket(double precision)")
    op.drop_index(
        op.f("ix_latest_outcomes_model_version_id_predicted_at"), table_name="latest_outcomes"
    )
    op.drop_table("latest_outcomes")
    op.drop_index(
        op.f("ix_prediction_outcomes_prediction_id_recorded_at_id"),
        table_name="prediction_outcomes",
    )
    op.drop_table("prediction_outcomes")
    op.drop_table("reference_profiles")
    op.drop_table("data_slices")
