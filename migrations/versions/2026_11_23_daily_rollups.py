"""Daily roll-ups beside the hourly ones: the hourly rows summed per UTC day, for predictions
and for latency buckets, back-filled from the hourly roll-ups. Long windows (a month by day)
then read 24 times fewer rows; the hours of a window's partial days still come from the
hourly roll-ups (now indexed by hour, as the prediction roll-ups already were), so every
answer stays exact.

Revision ID: 20261123_daily
Revises: 20261123_integrity
Create Date: 2026-11-23 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_daily"
down_revision: str | None = "20261123_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_DAILY_ROLLUPS = """
INSERT INTO prediction_daily_rollups (
    model_version_id, caller, label, day, model_id, count, latency_sum, confidence_sum,
    confidence_count, value_sum, value_count, first_at, last_at, labelled, correct
)
SELECT model_version_id, caller, label, date_trunc('day', hour, 'UTC'), model_id, sum(count),
       sum(latency_sum), sum(confidence_sum), sum(confidence_count), sum(value_sum),
       sum(value_count), min(first_at), max(last_at), sum(labelled), sum(correct)
FROM prediction_rollups
GROUP BY 1, 2, 3, 4, 5
"""

BACKFILL_DAILY_LATENCY_ROLLUPS = """
INSERT INTO prediction_latency_daily_rollups (model_version_id, day, bucket, model_id, count)
SELECT model_version_id, date_trunc('day', hour, 'UTC'), bucket, model_id, sum(count)
FROM prediction_latency_rollups
GROUP BY 1, 2, 3, 4
"""


def _catalogue_keys(table: str) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f(f"fk_{table}_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f(f"fk_{table}_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "prediction_daily_rollups",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
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
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        *_catalogue_keys("prediction_daily_rollups"),
        sa.PrimaryKeyConstraint(
            "model_version_id", "caller", "label", "day", name=op.f("pk_prediction_daily_rollups")
        ),
    )
    op.create_index(
        op.f("ix_prediction_daily_rollups_model_id_day"),
        "prediction_daily_rollups",
        ["model_id", "day"],
    )
    op.create_index(op.f("ix_prediction_daily_rollups_day"), "prediction_daily_rollups", ["day"])
    op.create_table(
        "prediction_latency_daily_rollups",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        *_catalogue_keys("prediction_latency_daily_rollups"),
        sa.PrimaryKeyConstraint(
            "model_version_id", "day", "bucket", name=op.f("pk_prediction_latency_daily_rollups")
        ),
    )
    op.create_index(
        op.f("ix_prediction_latency_daily_rollups_model_id_day"),
        "prediction_latency_daily_rollups",
        ["model_id", "day"],
    )
    op.create_index(
        op.f("ix_prediction_latency_daily_rollups_day"), "prediction_latency_daily_rollups", ["day"]
    )
    op.create_index(
        op.f("ix_prediction_latency_rollups_hour"), "prediction_latency_rollups", ["hour"]
    )
    # Writers wait until this commits, so no hourly row is added after the back-fill read
    # them. Instances of the previous release never feed the daily roll-ups: stop them first.
    op.execute("LOCK TABLE prediction_rollups, prediction_latency_rollups IN SHARE MODE")
    op.execute(BACKFILL_DAILY_ROLLUPS)
    op.execute(BACKFILL_DAILY_LATENCY_ROLLUPS)


def downgrade() -> None:
    op.drop_index(
        op.f("ix_prediction_latency_rollups_hour"), table_name="prediction_latency_rollups"
    )
    op.drop_table("prediction_latency_daily_rollups")
    op.drop_table("prediction_daily_rollups")
