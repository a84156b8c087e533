"""`latest_outcomes` indexed by `outcome_id`. Deleting an outcome (pruning a partition deletes
every outcome of its predictions) makes PostgreSQL look for the latest outcomes that reference
it (the foreign key `fk_latest_outcomes_outcome_id_prediction_outcomes`, ON DELETE RESTRICT),
once per deleted row: without this index, each look-up read the whole table, so a prune took
the outcomes it deleted times the latest outcomes it kept (quadratic; hours at 25,000,000
predictions with 1% labelled).

Revision ID: 20261209_outcome_index
Revises: 20261208_shadow_jobs
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261209_outcome_index"
down_revision: str | None = "20261208_shadow_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_latest_outcomes_outcome_id"), "latest_outcomes", ["outcome_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_latest_outcomes_outcome_id"), table_name="latest_outcomes")
