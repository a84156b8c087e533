"""The benchmark's processes: a fresh database, `modelql serve`, and the peers (the FastAPI
ones in bench/peers, PostGraphile installed from npm into bench/peers/postgraphile)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from modelql.embedded_postgres import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
POSTGRAPHILE = HERE / "peers" / "postgraphile"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Service:
    process: subprocess.Popen[bytes]
    port: int


@dataclass(frozen=True)
class Database:
    """The benchmark's database: a SQLAlchemy URL for ModelQL, a libpq one for the rest."""

    url: str
    libpq: str
    pg_port: int | None
    """PostgreSQL's TCP port; None over a Unix socket."""
    local: bool
    """Whether PostgreSQL runs on this machine (its backends' CPU can be read)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _describe(url: str) -> Database:
    """Where the database's server is, from its URL."""
    parsed = make_url(url)
    libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    socket_dir = parsed.query.get("host")
    if parsed.host is None and socket_dir:
        return Database(url, libpq, None, True)
    return Database(url, libpq, parsed.port or 5432, parsed.host in LOOPBACK)


@contextmanager
def database(server_url: str | None, scratch: Path) -> Iterator[Database]:
    """A fresh database on the given server, or on an embedded cluster started here."""
    cluster = None
    if server_url is None:
        cluster = EmbeddedPostgres(scratch / "pg")
        server_url = cluster.start()
    name = f"modelql_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _describe(
            make_url(server_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if cluster is not None:
            cluster.stop()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_libpq(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def fetch(url: str, query: str, *arguments: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_libpq(url))
    try:
        return await connection.fetch(query, *arguments)
    finally:
        await connection.close()


BUSY = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND state = 'active'
"""
QUIET_S = 0.5


async def _wait_quiet(url: str, timeout_s: float) -> float:
    """Polls for active queries until none ran for QUIET_S; the seconds it took."""
    connection = await asyncpg.connect(_libpq(url))
    started = time.monotonic()
    quiet_since = None
    try:
        while time.monotonic() - started < timeout_s:
            if await connection.fetchval(BUSY):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return time.monotonic() - started - QUIET_S


def wait_quiet(database: Database, timeout_s: float = 600) -> float:
    """Until no query runs in the benchmark's database for half a second: requests wrk
    abandoned at the end of a round finish server-side before the next round starts. The
    seconds waited for them."""
    return asyncio.run(_wait_quiet(database.libpq, timeout_s))


def start(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_ready(
    service: Service, path: str, body: str | None = None, timeout_s: float = 180
) -> None:
    """Until the service answers 200 on `path` (to a GET, or to a JSON POST of `body`); an
    error with its last words if it exits first."""
    url = f"http://127.0.0.1:{service.port}{path}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            stderr = (
                service.process.stderr.read().decode(errors="replace")
                if service.process.stderr
                else ""
            )
            raise RuntimeError(f"{url} exited with {service.process.returncode}: {stderr[-800:]}")
        try:
            if body is None:
                response = httpx.get(url, timeout=2)
            else:
                headers = {"Content-Type": "application/json"}
                response = httpx.post(url, content=body, headers=headers, timeout=2)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def modelql_env(database: Database, data_dir: Path, **extra: str) -> dict[str, str]:
    """ModelQL's settings for the benchmark, plus `extra`."""
    return {
        "DATABASE_URL": database.url,
        "MODELQL_DATA_DIR": str(data_dir),
        "MODELQL_LOG_LEVEL": "WARNING",
        "MODELQL_MAX_BATCH_SIZE": "1000",
        **extra,
    }


def start_modelql(env: dict[str, str]) -> Service:
    """`modelql serve` (one worker) on a free port, once ready."""
    port = free_port()
    command = [sys.executable, "-m", "modelql.cli", "serve", "--port", str(port)]
    service = Service(start(command, env), port)
    wait_ready(service, "/readyz")
    return service


def start_python_peer(script: str, arguments: list[str]) -> Service:
    """One of bench/peers/*.py on a free port (readiness: its /docs page)."""
    port = free_port()
    command = [sys.executable, str(HERE / "peers" / script), "--port", str(port), *arguments]
    service = Service(start(command, {}), port)
    wait_ready(service, "/docs")
    return service


def install_postgraphile() -> str | None:
    """`npm ci` in bench/peers/postgraphile unless its node_modules matches the lock file;
    why PostGraphile cannot run here, or None."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are needed (not found on PATH)"
    lock = POSTGRAPHILE / "package-lock.json"
    installed = POSTGRAPHILE / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return None
    print("Installing PostGraphile (npm ci in bench/peers/postgraphile) ...", flush=True)
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        result = subprocess.run(
            command, cwd=POSTGRAPHILE, capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired:
        return "npm ci did not finish in 15 minutes"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return "npm ci failed: " + " / ".join(line.strip() for line in lines[:3])
    return None


def start_postgraphile(database: Database) -> Service:
    """Its computed columns created in the database, then `node server.js` on a free port,
    its connections with JIT off as ModelQL's and the hand-written peer's are."""
    asyncio.run(execute(database.url, (POSTGRAPHILE / "functions.sql").read_text()))
    port = free_port()
    separator = "&" if "?" in database.libpq else "?"
    settings = "application_name=peer-postgraphile&options=-c%20jit%3Doff"
    connection = f"{database.libpq}{separator}{settings}"
    command = [shutil.which("node") or "node", "server.js", connection, str(port)]
    service = Service(start(command, {"NODE_ENV": "production"}, cwd=POSTGRAPHILE), port)
    try:
        wait_ready(service, "/graphql", body='{"query": "{ __typename }"}')
    except RuntimeError:
        stop(service.process)
        raise
    return service
