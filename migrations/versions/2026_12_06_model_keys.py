"""API keys limited to models: the model names or glob patterns a key may reach (null: all).

Revision ID: 20261206_model_keys
Revises: 20261206_shadow
Create Date: 2026-12-06 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_model_keys"
down_revision: str | None = "20261206_shadow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("models", sa.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "models")
