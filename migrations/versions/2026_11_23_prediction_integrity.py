"""Predictions: a prediction's model is its version's model (one composite foreign key instead
of two, which also halves the per-row trigger work of a batch insert), and its numbers are
finite.

Both constraints are added NOT VALID first, so that the upgrade never holds a lock that blocks
writes while it reads the whole table: the foreign key is then validated (which allows
concurrent writes); the CHECK is left unvalidated, because an older database may hold a
non-finite number from before outputs were checked (the API reads those as null). Every new row
is checked either way.

Revision ID: 20261123_integrity
Revises: 20261123_live
Create Date: 2026-11-23 13:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261123_integrity"
down_revision: str | None = "20261123_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINITE = " AND ".join(
    f"({column} IS NULL OR {column} NOT IN ('NaN', 'Infinity', '-Infinity'))"
    for column in ("value", "confidence", "latency_ms")
)


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_model_versions_id_model_id"), "model_versions", ["id", "model_id"]
    )
    op.drop_constraint(op.f("fk_predictions_model_id_models"), "predictions", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_predictions_model_version_id_model_versions"), "predictions", type_="foreignkey"
    )
    op.create_foreign_key(
        op.f("fk_predictions_model_version_id_model_versions"),
        "predictions",
        "model_versions",
        ["model_version_id", "model_id"],
        ["id", "model_id"],
        ondelete="RESTRICT",
        postgresql_not_valid=True,
    )
    op.execute(
        "ALTER TABLE predictions VALIDATE CONSTRAINT fk_predictions_model_version_id_model_versions"
    )
    op.execute(
        "ALTER TABLE predictions ADD CONSTRAINT ck_predictions_finite_numbers "
        f"CHECK ({FINITE}) NOT VALID"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_predictions_finite_numbers"), "predictions", type_="check")
    op.drop_constraint(
        op.f("fk_predictions_model_version_id_model_versions"), "predictions", type_="foreignkey"
    )
    op.create_foreign_key(
        op.f("fk_predictions_model_version_id_model_versions"),
        "predictions",
        "model_versions",
        ["model_version_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_predictions_model_id_models"),
        "predictions",
        "models",
        ["model_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.drop_constraint(op.f("uq_model_versions_id_model_id"), "model_versions", type_="unique")
