"""The container set-up. No container engine runs here, so the tests build the wheel the image
installs from exactly the files the Dockerfile copies, and run the image's start command and
health check with it against the test database; the compose file holds no secret."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from support import libpq_url

ROOT = Path(__file__).resolve().parents[1]


def test_the_compose_file_reads_the_database_password_from_the_environment():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in compose
    urls = re.findall(r"postgresql://.*", compose)
    assert urls, "the API's DATABASE_URL is missing"
    for url in urls:
        assert re.match(r"postgresql://modelql:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:", url), url


def _dockerfile_instructions(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction in the Dockerfile (continuations joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{keyword} ")]


@pytest.fixture(scope="module")
def image_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `pip install .` puts in the image: the wheel built from exactly the files the
    Dockerfile copies, unpacked into a directory of its own (dependencies: this venv's)."""
    staging = tmp_path_factory.mktemp("image-context")
    for copy in _dockerfile_instructions("COPY"):
        *sources, target = copy.split()
        for source in sources:
            destination = staging / (source if target.endswith("/") else target)
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy(ROOT / source, destination)
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            str(wheels),
            str(staging),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("modelql-*.whl")
    site = tmp_path_factory.mktemp("image-site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_holds_every_layer_and_the_migrations(image_site: Path):
    for package in ("modelql", "graph", "services", "persistence", "models", "migrations"):
        assert (
            image_site / "modelql" / (package if package != "modelql" else "") / "__init__.py"
        ).is_file(), package
    assert (image_site / "modelql" / "migrations" / "script.py.mako").is_file()
    assert list((image_site / "modelql" / "migrations" / "versions").glob("2026_*.py"))
    assert not (image_site / "tests").exists()


@pytest.mark.slow
def test_the_image_start_command_migrates_and_serves_against_the_test_database(
    image_site: Path, database_url: str, data_dir: Path, tmp_path: Path
):
    [start] = _dockerfile_instructions("CMD")
    [healthcheck] = _dockerfile_instructions("HEALTHCHECK")
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "MODELQL_ENVIRONMENT: production" in compose
    assert "MODELQL_AUTH_MODE: required" in compose
    port = _free_port()
    command = json.loads(start)
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("--port 8000", f"--port {port}")
    assert f"--port {port}" in script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "modelql"
    shim.write_text(f"#!{sys.executable}\nfrom modelql.cli import app\napp()\n")
    shim.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)  # the image's `python`, for HEALTHCHECK
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYTHONPATH": str(image_site),
        "HOME": str(tmp_path),
        "MODELQL_DATA_DIR": str(data_dir),  # the artifacts of the models in the test database
        "DATABASE_URL": libpq_url(database_url),
        "MODELQL_ENVIRONMENT": "production",
        "MODELQL_AUTH_MODE": "required",
        "MODELQL_TRAIN_DEMO_IF_EMPTY": "false",
    }
    imported = subprocess.run(
        [sys.executable, "-c", "import modelql.app; print(modelql.app.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(image_site)), "the test would not run the wheel's code"
    process = subprocess.Popen(
        ["sh", "-c", script],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            ready = _wait_ready(http, process)
            unauthenticated = http.post("/graphql", json={"query": "{ __typename }"})
        probe = healthcheck.split("CMD ", 1)[1].replace("8000", str(port))
        health = subprocess.run(["sh", "-c", probe], env=env, capture_output=True, timeout=30)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert ready == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
    }
    assert unauthenticated.status_code == 401
    assert health.returncode == 0, health.stderr
    assert "Traceback" not in output, output


def _wait_ready(http: httpx.Client, process: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        with contextlib.suppress(httpx.TransportError):
            response = http.get("/readyz")
            if response.status_code == 200:
                return response.json()
        time.sleep(0.3)
    pytest.fail("the image's start command never became ready")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
