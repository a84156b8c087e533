"""API keys: an optional rate of their own (e.g. "100/second"), else the service's default.

Revision ID: 20261123_operate
Revises: 20261122_02
Create Date: 2026-11-23 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_operate"
down_revision: str | None = "20261122_02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_limit", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "rate_limit")
