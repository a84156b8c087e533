"""Embedded PostgreSQL: a private cluster in a data directory for development and tests.

Uses the ``pgserver`` wheel when it is installed (Python < 3.13 only), otherwise the
machine's own PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import shlex
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, TYPE_CHECKING, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    import pwd

    from pgserver import PostgresServer

logger = logging.getLogger(__name__)

Backend = Literal["pgserver", "system"]

_BINARIES = ("initdb", "pg_ctl", "postgres")
_BINDIR_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
)
_DEFAULT_PORT = 5432
_SOCKET_PATH_LIMIT = 100  # sun_path holds 104 (macOS) to 108 (Linux) bytes
_FALLBACK_USER = "modelql-pg"
_TIMEOUT_S = 120
_LOG_TAIL_LINES = 20


class PostgresNotFoundError(RuntimeError):
    """No way to run an embedded PostgreSQL server on this machine."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"No embedded PostgreSQL is available ({reason}); set DATABASE_URL to an existing "
            "PostgreSQL database or run `docker compose up`."
        )


class EmbeddedPostgres:
    """A private PostgreSQL cluster in a data directory, started on demand and stopped cleanly.

    The superuser is ``postgres`` with trust authentication; the server listens on a Unix
    socket only. Existing data in ``data_dir`` is reused. With the system backend, ``stop()``
    stops the cluster even if another process reused it, so use one process per data dir.
    """

    def __init__(
        self, data_dir: Path, *, backend: Literal["auto", "pgserver", "system"] = "auto"
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._requested = backend
        self._backend: Backend | None = None
        self._bindir: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._pgserver: PostgresServer | None = None
        self._url: str | None = None

    @property
    def backend_in_use(self) -> Backend:
        """The backend that runs (or will run) the cluster; raises PostgresNotFoundError."""
        if self._backend is None:
            self._backend = self._resolve_backend()
        return self._backend

    def start(self) -> str:
        """Start the cluster (initialising it on first use); return its SQLAlchemy asyncpg URL."""
        if self._url is None:
            backend = self.backend_in_use
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._url = self._start_pgserver() if backend == "pgserver" else self._start_system()
            logger.info("Embedded PostgreSQL started (%s backend) in %s", backend, self.data_dir)
        return self._url

    def stop(self) -> None:
        """Stop the cluster (fast shutdown, waiting for it to exit); a no-op if not started."""
        if self._url is None:
            return
        if self._pgserver is not None:
            self._stop_pgserver()
        else:
            self._stop_system()
        self._url = None
        logger.info("Embedded PostgreSQL stopped (%s backend) in %s", self._backend, self.data_dir)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _resolve_backend(self) -> Backend:
        """Pick pgserver if importable (unless "system" is forced), else the system binaries."""
        if self._requested != "system" and _import_pgserver() is not None:
            return "pgserver"
        if self._requested == "pgserver":
            raise PostgresNotFoundError("the pgserver package is not installed")
        self._bindir = find_postgres_bindir()
        if self._bindir is None:
            raise PostgresNotFoundError(
                "pgserver is not installed and no initdb/pg_ctl/postgres binaries were found"
                if self._requested == "auto"
                else "no initdb/pg_ctl/postgres binaries were found"
            )
        return "system"

    def _start_pgserver(self) -> str:
        """Start (or attach to) the cluster through pgserver."""
        import pgserver

        _prune_dead_pgserver_handles(self.data_dir)
        try:
            self._pgserver = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(
                f"pgserver could not start PostgreSQL in {self.data_dir}: {exc}"
                + _log_tail(self.data_dir / "log")
            ) from exc
        return _libpq_to_asyncpg_url(self._pgserver.get_uri())

    def _stop_pgserver(self) -> None:
        """Run pgserver's cleanup now instead of at interpreter exit."""
        server, self._pgserver = self._pgserver, None
        assert server is not None
        server.cleanup()  # with cleanup_mode="stop" this is `pg_ctl -w stop`, data is kept
        atexit.unregister(server._cleanup)
        if (self.data_dir / "postmaster.pid").exists():
            logger.info("PostgreSQL in %s is still used by another process", self.data_dir)

    def _start_system(self) -> str:
        """Initialise the data dir if needed and start the server with the machine's binaries."""
        self._account = _server_account()
        if self._account is not None:
            if self.data_dir.stat().st_uid != self._account.pw_uid:
                _chown_tree(self.data_dir, self._account)
            _ensure_traversable(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("Initialising PostgreSQL data directory %s", self.data_dir)
            self._run(
                "initdb",
                "--auth=trust",
                "--auth-local=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
            )
        if self._server_running():
            logger.info("Reusing the PostgreSQL server already running in %s", self.data_dir)
        else:
            socket_dir = self._socket_dir()
            options = f"-k {shlex.quote(str(socket_dir))} -c listen_addresses=''"
            self._run(
                "pg_ctl", "-w", "-l", str(self.data_dir / "server.log"), "-o", options, "start"
            )
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return _asyncpg_url(host=lines[4].strip(), port=int(lines[3]))

    def _stop_system(self) -> None:
        """Stop the server with a fast shutdown unless it is already down."""
        if self._server_running():
            self._run("pg_ctl", "-m", "fast", "-w", "stop")

    def _socket_dir(self) -> Path:
        """The data dir if the socket path fits in sun_path, else a short private dir in /tmp."""
        if len(str(self.data_dir / f".s.PGSQL.{_DEFAULT_PORT}")) < _SOCKET_PATH_LIMIT:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:10]
        socket_dir = Path("/tmp") / f"modelql-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._account is not None:
            os.chown(socket_dir, self._account.pw_uid, self._account.pw_gid)
            _ensure_traversable(socket_dir)
        socket_dir.chmod(0o700)
        return socket_dir

    def _server_running(self) -> bool:
        """Whether `pg_ctl status` reports a server running for the data dir."""
        return self._subprocess("pg_ctl", "status", stdout=subprocess.DEVNULL).returncode == 0

    def _run(self, tool: str, *args: str) -> None:
        """Run initdb/pg_ctl; on failure raise RuntimeError with its output and the log tail."""
        # A file rather than a pipe: pg_ctl can hang on a pipe inherited by the postmaster.
        with tempfile.TemporaryFile("w+", errors="replace") as output:
            try:
                self._subprocess(tool, *args, stdout=output, check=True)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                output.seek(0)
                raise RuntimeError(
                    f"{tool} failed for {self.data_dir} ({exc}): {output.read().strip()}"
                    + _log_tail(self.data_dir / "server.log")
                ) from exc

    def _subprocess(
        self, tool: str, *args: str, stdout: IO[str] | int, check: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a PostgreSQL tool on the data dir, as the server account when we are root."""
        assert self._bindir is not None
        account = self._account
        return subprocess.run(
            [str(self._bindir / tool), "-D", str(self.data_dir), *args],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            check=check,
            timeout=_TIMEOUT_S,
            cwd=self.data_dir,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )


def find_postgres_bindir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, or None if PostgreSQL is not installed.

    Looks on PATH (all three in one dir), then `pg_config --bindir`, then the highest version
    in the usual Debian, source-build and Homebrew locations.
    """
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and _has_binaries(Path(entry)):
            return Path(entry).absolute()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
        bindir = Path(result.stdout.strip())
        if result.stdout.strip() and _has_binaries(bindir):
            return bindir
    found = [Path(p) for pattern in _BINDIR_GLOBS for p in glob.glob(pattern)]
    return max((p for p in found if _has_binaries(p)), key=_version_key, default=None)


def _has_binaries(directory: Path) -> bool:
    """Whether initdb, pg_ctl and postgres are all executables in the directory."""
    return all(
        (directory / name).is_file() and os.access(directory / name, os.X_OK) for name in _BINARIES
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    """Version numbers in a bin dir path (e.g. 16 for postgresql@16); unversioned sorts lowest."""
    return tuple(int(n) for n in re.findall(r"\d+", str(bindir)))


def _import_pgserver() -> ModuleType | None:
    """The pgserver module if it is installed, else None."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers).
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver
    except ImportError:
        return None
    return pgserver


def _prune_dead_pgserver_handles(data_dir: Path) -> None:
    """Drop dead processes from pgserver's handle list, or a crashed run keeps it from stopping."""
    import psutil

    handles = data_dir / ".handle_pids.json"
    if handles.exists():
        pids = json.loads(handles.read_text())
        handles.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))


def _libpq_to_asyncpg_url(uri: str) -> str:
    """Convert pgserver's libpq URI (`postgresql://postgres:@/postgres?host=/dir`)."""
    parts = urlsplit(uri)
    host = dict(parse_qsl(parts.query)).get("host") or parts.hostname or "localhost"
    return _asyncpg_url(host=host, port=parts.port or _DEFAULT_PORT)


def _asyncpg_url(*, host: str, port: int) -> str:
    """SQLAlchemy asyncpg URL for user/db "postgres"; a host starting with / is a socket dir."""
    port_part = "" if port == _DEFAULT_PORT else f":{port}"
    if host.startswith("/"):
        query = urlencode({"host": host}, safe="/")
        return f"postgresql+asyncpg://postgres@{port_part}/postgres?{query}"
    return f"postgresql+asyncpg://postgres@{host}{port_part}/postgres"


def _log_tail(log: Path) -> str:
    """The last lines of a server log, formatted for an error message ("" if unreadable)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    except OSError:
        return ""
    return f"\n--- last lines of {log} ---\n" + "\n".join(lines)


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as when we are root, else None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", _FALLBACK_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", _FALLBACK_USER],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise RuntimeError(f"Cannot create system user {_FALLBACK_USER!r}: {detail}") from exc
    return pwd.getpwnam(_FALLBACK_USER)


def _chown_tree(root: Path, account: pwd.struct_passwd) -> None:
    """Give a directory tree to the server account."""
    os.chown(root, account.pw_uid, account.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(
                os.path.join(dirpath, name), account.pw_uid, account.pw_gid, follow_symlinks=False
            )


def _ensure_traversable(path: Path) -> None:
    """Add o+x to every parent of path so that the server account can reach it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("Adding o+x to %s so PostgreSQL can reach %s", parent, path)
            parent.chmod(mode | stat.S_IXOTH)
