"""Tests for the embedded PostgreSQL launcher, run against every backend available here."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psutil
import pytest

from persistence import embedded
from persistence.embedded import (
    Backend,
    EmbeddedPostgres,
    PostgresNotFoundError,
    find_postgres_bindir,
)

BACKENDS: tuple[Backend, ...] = ("pgserver", "system")


def _unavailable_reason(backend: Backend) -> str | None:
    """Why a backend cannot run on this machine, or None if it can."""
    if backend == "pgserver" and importlib.util.find_spec("pgserver") is None:
        return "pgserver is not installed (it has wheels for Python < 3.13 only)"
    if backend == "system" and find_postgres_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine"
    return None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend, skipped when not available."""
    reason = _unavailable_reason(request.param)
    if reason is not None:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A not-yet-existing data dir under a short /tmp path (Unix socket paths are limited)."""
    root = Path(tempfile.mkdtemp(prefix="mq", dir="/tmp"))
    yield root / "pgdata"
    shutil.rmtree(root, ignore_errors=True)


async def _fetchval(url: str, sql: str) -> Any:
    """Run one query through asyncpg against an SQLAlchemy asyncpg URL."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    host = parse_qs(parts.query)["host"][0]
    conn = await asyncpg.connect(parts._replace(query="").geturl(), host=host)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _query(url: str, sql: str) -> Any:
    return asyncio.run(_fetchval(url, sql))


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _servers_for(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions the data dir."""
    return [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if str(data_dir) in " ".join(proc.info["cmdline"] or ()) and _is_alive(proc.pid)
    ]


@pytest.mark.slow
def test_start_returns_a_url_asyncpg_can_use(backend: Backend, data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, backend=backend)
    try:
        url = pg.start()
        assert url.startswith("postgresql+asyncpg://postgres@/postgres?host=/")
        assert pg.start() == url
        assert pg.backend_in_use == backend
        assert _query(url, "select 1") == 1
        assert _query(url, "select current_user") == "postgres"
    finally:
        pg.stop()


@pytest.mark.slow
def test_data_persists_across_restart(backend: Backend, data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir, backend=backend) as pg:
        url = pg.start()
        _query(url, "create table t (x int)")
        _query(url, "insert into t values (42)")

    with EmbeddedPostgres(data_dir, backend=backend) as restarted:
        assert _query(restarted.start(), "select x from t") == 42


@pytest.mark.slow
def test_stop_leaves_no_server_process(backend: Backend, data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, backend=backend)
    pg.stop()
    pg.start()
    postmaster = _postmaster_pid(data_dir)
    assert _servers_for(data_dir)

    pg.stop()

    assert not _is_alive(postmaster)
    assert not _servers_for(data_dir)
    assert not (data_dir / "postmaster.pid").exists()
    pg.stop()


@pytest.mark.slow
def test_system_backend_reports_server_errors_with_log_tail(data_dir: Path) -> None:
    reason = _unavailable_reason("system")
    if reason is not None:
        pytest.skip(reason)
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("15\n")  # looks initialised, but has no config

    with pytest.raises(RuntimeError, match=r"postgresql\.conf"):
        EmbeddedPostgres(data_dir, backend="system").start()


def test_find_postgres_bindir_finds_initdb() -> None:
    bindir = find_postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    for name in ("initdb", "pg_ctl", "postgres"):
        assert (bindir / name).is_file()


def test_system_backend_without_binaries_raises(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setattr(embedded, "find_postgres_bindir", lambda: None)

    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL") as excinfo:
        EmbeddedPostgres(data_dir, backend="system").start()
    assert "docker compose up" in str(excinfo.value)
    assert isinstance(excinfo.value, RuntimeError)


def test_auto_backend_falls_back_to_system_then_fails(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setattr(embedded, "_import_pgserver", lambda: None)
    monkeypatch.setattr(embedded, "find_postgres_bindir", lambda: Path("/opt/pg/bin"))
    assert EmbeddedPostgres(data_dir).backend_in_use == "system"
    with pytest.raises(PostgresNotFoundError, match="pgserver"):
        EmbeddedPostgres(data_dir, backend="pgserver").start()

    monkeypatch.setattr(embedded, "find_postgres_bindir", lambda: None)
    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL"):
        EmbeddedPostgres(data_dir).start()


def test_auto_backend_prefers_pgserver(data_dir: Path) -> None:
    reason = _unavailable_reason("pgserver")
    if reason is not None:
        pytest.skip(reason)
    assert EmbeddedPostgres(data_dir).backend_in_use == "pgserver"


def test_stop_without_start_is_a_no_op(data_dir: Path) -> None:
    EmbeddedPostgres(data_dir).stop()
    assert not data_dir.exists()
