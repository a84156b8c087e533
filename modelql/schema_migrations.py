"""Running and checking Alembic migrations against a database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import modelql.migrations
from modelql.persistence.database import async_url

SCRIPTS_DIR = Path(modelql.migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS_DIR))
    url = async_url(database_url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration (blocking; call it outside a running event loop)."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    """Revert every migration (blocking)."""
    command.downgrade(alembic_config(database_url), "base")


def head_revision() -> str:
    """The newest revision the code knows."""
    script = ScriptDirectory(str(SCRIPTS_DIR))
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated (read directly:
    Alembic's MigrationContext logs two lines each time, and the readiness probe asks often)."""
    async with engine.connect() as connection:
        if await connection.scalar(text("SELECT to_regclass('alembic_version')")) is None:
            return None
        revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        return None if revision is None else str(revision)
