"""The `modelql` command as a newcomer runs it: embedded PostgreSQL, demo catalogue, clean stops;
`export-schema`; `register` and `alias set` against an external database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import joblib
import numpy as np
import psutil
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import create_database, drop_database, graphql, libpq_url, reachable_temp_dir

from modelql.services import api_keys
from modelql.services.api_keys import Scope

pytestmark = pytest.mark.slow  # every test here starts `modelql` processes

REPO = Path(__file__).resolve().parents[1]
MODELQL = str(Path(sys.executable).with_name("modelql"))
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
DEMO_MODELS = [
    "breast-cancer-classifier",
    "diabetes-regressor",
    "iris-classifier",
    "wine-classifier",
]
CATALOGUE_QUERY = "{ models(first: 50) { nodes { name versions { nodes { number } } } } }"


def _base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any database settings, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "MODELQL_DATABASE_URL", "MODELQL_TEST_DATABASE_URL"}
        and not key.startswith("MODELQL_")
    }
    env.update(MODELQL_LOG_JSON="false", COLUMNS="200", NO_COLOR="1", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes other than ours whose command line mentions the data dir."""
    found = []
    for process in psutil.process_iter(["cmdline", "name"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        mentions = str(data_dir) in cmdline and "postgres" in cmdline + (process.info["name"] or "")
        if mentions and _is_alive(process):
            found.append(process)
    return found


def _assert_no_postgres_left(data_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while _postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _postgres_processes(data_dir)
    assert not left, [" ".join(process.cmdline()) for process in left]


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    """A data dir under a short /tmp path (Unix socket paths are limited); removed afterwards."""
    path = reachable_temp_dir("mq")
    yield path
    for process in _postgres_processes(path):  # never leave a server behind, even on failure
        process.kill()
    shutil.rmtree(path, ignore_errors=True)


class Server:
    """`modelql serve` in a subprocess, its output in a file."""

    def __init__(
        self, data_dir: Path, log: Path, *args: str, env: dict[str, str] | None = None, **more: str
    ) -> None:
        self.port = _free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**_base_env(MODELQL_DATA_DIR=str(data_dir), **more), **(env or {})}
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [MODELQL, "serve", "--port", str(self.port), *args],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"modelql serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=5)
                if response.status_code == 200:
                    return response.json()
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as error:
                last = repr(error)
            time.sleep(0.5)
        pytest.fail(f"not ready after {READY_TIMEOUT_S} s ({last}):\n{self.output()}")

    def query(self, document: str) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": document}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"modelql serve ignored signal {signum}:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers started by a test; killed if the test left them running."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def _catalogue(server: Server) -> dict[str, list[int]]:
    nodes = server.query(CATALOGUE_QUERY)["models"]["nodes"]
    return {node["name"]: [v["number"] for v in node["versions"]["nodes"]] for node in nodes}


def _exited_on(signum: int, returncode: int) -> bool:
    """A clean exit after a signal: 0, the shell convention 128+N, or killed by it."""
    return returncode in {0, 128 + signum, -signum}


def test_embedded_serve_trains_once_and_stops_cleanly(
    short_data_dir: Path, servers: list[Server], tmp_path: Path
):
    first = Server(short_data_dir, tmp_path / "first.log")
    servers.append(first)
    ready = first.wait_ready()
    assert ready == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
    }
    assert _catalogue(first) == {
        "breast-cancer-classifier": [1],
        "diabetes-regressor": [1],
        "iris-classifier": [2, 1],
        "wine-classifier": [1],
    }
    assert "Registered 5 demo versions" in first.output()
    assert (short_data_dir / "pgdata").is_dir()
    assert _postgres_processes(short_data_dir), "the embedded server is not where it should be"
    assert any((short_data_dir / "artifacts").rglob("*.joblib"))

    returncode = first.stop(signal.SIGTERM)
    assert _exited_on(signal.SIGTERM, returncode), (returncode, first.output())
    assert "Traceback" not in first.output()
    _assert_no_postgres_left(short_data_dir)

    second = Server(short_data_dir, tmp_path / "second.log")
    servers.append(second)
    assert second.wait_ready()["status"] == "ready"
    catalogue = _catalogue(second)
    assert sorted(catalogue) == DEMO_MODELS
    assert sum(len(numbers) for numbers in catalogue.values()) == 5
    assert "Registered" not in second.output()
    assert len(list((short_data_dir / "artifacts").rglob("*.joblib"))) == 5

    returncode = second.stop(signal.SIGINT)
    assert _exited_on(signal.SIGINT, returncode), (returncode, second.output())
    assert "Traceback" not in second.output()
    _assert_no_postgres_left(short_data_dir)


def test_two_workers_serve_one_embedded_database_and_stop_cleanly(
    short_data_dir: Path, servers: list[Server], tmp_path: Path
):
    server = Server(short_data_dir, tmp_path / "workers.log", "--workers", "2")
    servers.append(server)
    assert server.wait_ready()["status"] == "ready"
    workers = [
        child
        for child in psutil.Process(server.process.pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]
    assert len(workers) == 2, [" ".join(child.cmdline()) for child in workers]

    created = [
        server.query(
            'mutation { createPrediction(input: {model: "iris-classifier", features: '
            "{sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) "
            "{ prediction { id } userErrors { code } } }"
        )["createPrediction"]
        for _ in range(20)
    ]
    assert all(payload["prediction"] and not payload["userErrors"] for payload in created)
    stats = server.query("{ predictionStats { count } }")
    assert stats["predictionStats"]["count"] == 20

    returncode = server.stop(signal.SIGTERM)
    assert _exited_on(signal.SIGTERM, returncode), (returncode, server.output())
    assert "Traceback" not in server.output()
    assert not [worker for worker in workers if _is_alive(worker)]
    _assert_no_postgres_left(short_data_dir)


async def test_a_revoked_key_is_refused_within_a_second_by_another_process(
    servers: list[Server],
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
):
    async with sessionmaker.begin() as session:
        _, key = await api_keys.create(session, name="soon-revoked", scopes=frozenset(Scope))
    server = Server(
        data_dir,
        tmp_path / "auth.log",
        DATABASE_URL=database_url,
        MODELQL_AUTH_MODE="required",
        MODELQL_TRAIN_DEMO_IF_EMPTY="false",
    )
    servers.append(server)
    server.wait_ready()
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (
            await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        ).status_code == 200

        async with sessionmaker.begin() as session:
            await api_keys.revoke(session, name="soon-revoked")
        revoked_at = time.monotonic()
        while True:
            answer = await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
            if answer.status_code == 401:
                break
            assert time.monotonic() - revoked_at < 1.0, "the revoked key still works after 1 s"
            await asyncio.sleep(0.02)


def test_embedded_serve_with_the_system_backend(
    short_data_dir: Path, servers: list[Server], tmp_path: Path
):
    from modelql.embedded_postgres import find_postgres_bindir

    if find_postgres_bindir() is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    server = Server(short_data_dir, tmp_path / "system.log", MODELQL_EMBEDDED_BACKEND="system")
    servers.append(server)
    assert server.wait_ready()["checks"] == {"database": "ok", "migrations": "ok", "models": "ok"}
    assert "Embedded PostgreSQL (system)" in server.output()
    assert _postgres_processes(short_data_dir)
    assert sorted(_catalogue(server)) == DEMO_MODELS

    returncode = server.stop(signal.SIGTERM)
    assert _exited_on(signal.SIGTERM, returncode), (returncode, server.output())
    _assert_no_postgres_left(short_data_dir)
    assert not (short_data_dir / "pgdata" / "postmaster.pid").exists()


def test_export_schema_writes_the_committed_schema(tmp_path: Path):
    output = tmp_path / "exported.graphql"
    result = subprocess.run(
        [MODELQL, "export-schema", "--output", str(output)],
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text() == (REPO / "schema.graphql").read_text()


# --- register and alias set against the test database ------------------------------------


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODELQL, *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """Everything the command printed, with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.fixture
def registration_files(tmp_path: Path) -> dict[str, Path]:
    features = ["alpha", "beta"]
    x = np.array([[0.0, 1.0], [0.5, 1.5], [1.0, 0.5], [3.0, 4.0], [3.5, 3.0], [4.0, 5.0]])
    y = np.array(["no", "no", "no", "yes", "yes", "yes"])
    files = {
        "artifact": tmp_path / "model.joblib",
        "metrics": tmp_path / "metrics.json",
        "args": tmp_path / "args.json",
        "signature": tmp_path / "signature.json",
    }
    joblib.dump(LogisticRegression(C=0.5, max_iter=300).fit(x, y), files["artifact"])
    files["metrics"].write_text(
        json.dumps(
            [
                {"split": "test", "num_samples": 6, "metrics": {"accuracy": 1.0, "f1_macro": 1.0}},
                {
                    "split": "TRAIN",
                    "slice": "overall",
                    "num_samples": 6,
                    "metrics": {"accuracy": 1},
                },
            ]
        )
    )
    files["args"].write_text(
        json.dumps({"hyperparameters": {"C": 0.5, "max_iter": 300}, "data": {"rows": 6}})
    )
    files["signature"].write_text(
        json.dumps(
            [{"name": name, "type": "NUMBER", "minimum": 0.0, "maximum": 5.0} for name in features]
        )
    )
    return files


@pytest.fixture
def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The test database as a plain postgresql:// URL; artifacts where the test app reads them."""
    return _base_env(DATABASE_URL=libpq_url(database_url), MODELQL_DATA_DIR=str(data_dir))


async def test_register_and_move_aliases_from_the_command_line(
    client: httpx.AsyncClient,
    cli_env: dict[str, str],
    registration_files: dict[str, Path],
):
    model = f"cli-model-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    files = registration_files
    register = [
        "register",
        str(files["artifact"]),
        "--model",
        model,
        "--metrics",
        str(files["metrics"]),
        "--args",
        str(files["args"]),
        "--signature",
        str(files["signature"]),
    ]

    first = _run_cli([*register, "--alias", "production", "--version", "1"], cli_env)
    assert first.returncode == 0, _said(first)
    assert f"Registered {model} v1" in _said(first)

    again = _run_cli([*register, "--version", "1", "--description", "retrained"], cli_env)
    assert again.returncode != 0
    assert "already exists" in _said(again)
    assert "Traceback" not in _said(again)

    second = _run_cli([*register, "--description", "second"], cli_env)
    assert second.returncode == 0, _said(second)
    assert f"Registered {model} v2" in _said(second)

    body = await graphql(
        client,
        """query($name: String!) { model(name: $name) { task
             versions { nodes { number aliases description } }
             defaultVersion { number labels inputSchema { name type maximum }
               accuracy: metric(name: "accuracy") trainAccuracy: metric(name: "accuracy", split: TRAIN)
               trainingArguments { name value } } } }""",
        {"name": model},
    )
    registered = body["data"]["model"]
    assert registered["task"] == "CLASSIFICATION"
    assert registered["versions"]["nodes"] == [
        {"number": 2, "aliases": [], "description": "second"},
        {"number": 1, "aliases": ["production"], "description": None},
    ]
    default = registered["defaultVersion"]
    assert default["number"] == 1
    assert default["labels"] == ["no", "yes"]
    assert [f["name"] for f in default["inputSchema"]] == ["alpha", "beta"]
    assert default["accuracy"] == 1.0 and default["trainAccuracy"] == 1.0
    assert {a["name"]: a["value"] for a in default["trainingArguments"]} == {
        "C": 0.5,
        "max_iter": 300,
        "rows": 6,
    }

    moved = _run_cli(["alias", "set", model, "production", "2", "--actor", "ops"], cli_env)
    assert moved.returncode == 0, _said(moved)
    assert f"{model}: production -> version 2" in _said(moved)
    body = await graphql(
        client,
        "query($name: String!) { model(name: $name) { defaultVersion { number } "
        "aliases { alias version { number } } } }",
        {"name": model},
    )
    assert body["data"]["model"] == {
        "defaultVersion": {"number": 2},
        "aliases": [{"alias": "production", "version": {"number": 2}}],
    }

    unknown = _run_cli(["alias", "set", model, "production", "9"], cli_env)
    assert unknown.returncode != 0
    assert "has no version 9" in _said(unknown)


async def test_register_refuses_an_estimator_without_feature_names_or_signature(
    client: httpx.AsyncClient, cli_env: dict[str, str], registration_files: dict[str, Path]
):
    model = f"cli-unsigned-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    result = _run_cli(["register", str(registration_files["artifact"]), "--model", model], cli_env)
    assert result.returncode != 0
    assert "--signature" in _said(result)
    body = await graphql(client, "query($n: String!) { model(name: $n) { name } }", {"n": model})
    assert body["data"]["model"] is None


# --- API keys from the command line -----------------------------------------------------------


async def test_keys_are_created_once_listed_without_secret_and_revoked(
    cli_env: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
):
    name = f"cli-key-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    created = _run_cli(
        ["keys", "create", "--name", name, "--scopes", "read,audit", "--rate", "5/second"], cli_env
    )
    assert created.returncode == 0, _said(created)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("mql_")
    async with sessionmaker() as session:
        caller = await api_keys.authenticate(session, key)
    assert caller is not None
    assert caller.name == name
    assert caller.scopes == {Scope.READ, Scope.AUDIT}
    assert caller.rate_limit == "5/second"

    listed = _run_cli(["keys", "list"], cli_env)
    assert f"{name}\taudit,read\t5/second\t" in listed.stdout
    assert key not in listed.stdout + listed.stderr

    bad_scope = _run_cli(["keys", "create", "--name", f"{name}-x", "--scopes", "write"], cli_env)
    assert bad_scope.returncode != 0
    assert "Scopes must be" in _said(bad_scope)
    bad_rate = _run_cli(["keys", "create", "--name", f"{name}-y", "--rate", "lots"], cli_env)
    assert bad_rate.returncode != 0
    assert "100/second" in _said(bad_rate)

    revoked = _run_cli(["keys", "revoke", name], cli_env)
    assert revoked.returncode == 0, _said(revoked)
    async with sessionmaker() as session:
        assert await api_keys.authenticate(session, key) is None
    again = _run_cli(["keys", "revoke", name], cli_env)
    assert again.returncode != 0


async def test_a_key_created_for_some_models_reaches_only_those(
    cli_env: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
):
    name = f"cli-limited-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    created = _run_cli(
        [
            "keys",
            "create",
            "--name",
            name,
            "--scopes",
            "read",
            "--models",
            "iris-*,wine-classifier",
        ],
        cli_env,
    )
    assert created.returncode == 0, _said(created)
    assert "models iris-*, wine-classifier" in _said(created)
    async with sessionmaker() as session:
        caller = await api_keys.authenticate(session, created.stdout.strip().splitlines()[-1])
    assert caller is not None and caller.models is not None
    assert caller.models.patterns == ("iris-*", "wine-classifier")
    listed = _run_cli(["keys", "list"], cli_env)
    assert f"{name}\tread\tdefault rate\tiris-*,wine-classifier\t" in listed.stdout

    unmatched = _run_cli(["keys", "create", "--name", f"{name}-x", "--models", "fraud-*"], cli_env)
    assert unmatched.returncode != 0
    assert "No model matches 'fraud-*'" in _said(unmatched)
    malformed = _run_cli(["keys", "create", "--name", f"{name}-y", "--models", "Fraud%"], cli_env)
    assert malformed.returncode != 0
    assert "model names or patterns" in _said(malformed)


def test_serving_without_auth_off_loopback_is_refused():
    result = subprocess.run(
        [MODELQL, "serve", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_base_env(MODELQL_AUTH_MODE="disabled"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "MODELQL_AUTH_MODE=required" in _said(result)


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["keys", "list"]])
def test_an_unreachable_database_is_one_line_naming_database_url(command: list[str]):
    env = _base_env(DATABASE_URL=f"postgresql://modelql:s3cret@127.0.0.1:{_free_port()}/modelql")
    result = _run_cli(command, env)
    assert result.returncode == 1
    said = _said(result)
    assert "Traceback" not in said
    assert "DATABASE_URL" in said
    assert "s3cret" not in said
    assert len((result.stdout + result.stderr).strip().splitlines()) <= 2, said


def _request_count(metrics_text: str, operation_name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "modelql_graphql_request_duration_seconds_count"
        and sample.labels.get("operation_name") == operation_name
    )


def test_metrics_add_up_over_every_worker(
    demo_catalogue: None, cli_env: dict[str, str], servers: list[Server], tmp_path: Path
):
    """With --workers 2, each scrape answers for both processes (multiprocess mode)."""
    server = Server(tmp_path, tmp_path / "workers.log", "--workers", "2", "--no-demo", env=cli_env)
    servers.append(server)
    server.wait_ready()
    name = f"Workers{os.getpid()}"
    query = {"query": f"query {name} {{ models {{ nodes {{ name }} }} }}"}

    def one_request(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as fresh:  # a connection each
            return fresh.post("/graphql", json=query).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one_request, range(40)))
    assert statuses == [200] * 40
    counts = {_request_count(httpx.get(f"{server.url}/metrics").text, name) for _ in range(10)}
    assert counts == {40}
    assert _exited_on(signal.SIGTERM, server.stop(signal.SIGTERM)), server.output()
    assert "Traceback" not in server.output()


def _read_terminal(master: int, process: subprocess.Popen[bytes]) -> str:
    """Everything written to the pseudo-terminal until the process exits."""
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_serve_in_a_terminal_prints_a_readable_screen(
    demo_catalogue: None, cli_env: dict[str, str], tmp_path: Path
):
    env = {key: value for key, value in cli_env.items() if key != "MODELQL_LOG_JSON"}
    port = _free_port()
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [MODELQL, "serve", "--port", str(port), "--no-demo"],
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
    )
    os.close(slave)
    output: list[str] = []
    reader = ThreadPoolExecutor(1).submit(_read_terminal, master, process)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            time.sleep(0.3)
        httpx.post(f"{url}/graphql", json={"query": "query Screen { models { nodes { name } } }"})
        process.send_signal(signal.SIGINT)
        process.wait(STOP_TIMEOUT_S)
        output.append(reader.result(STOP_TIMEOUT_S))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output[0])
    lines = [line for line in plain.splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")], lines
    assert any(
        re.search(r"^\d\d:\d\d:\d\d 200 POST /graphql query Screen ok ", line) for line in lines
    ), lines
    assert any("ModelQL on http://127.0.0.1" in line for line in lines), lines
    assert not [
        line for line in lines if "Started server process" in line or "Context impl" in line
    ]


@pytest.fixture
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """An empty database of its own, as a plain postgresql:// URL."""
    url = await create_database(server_url)
    yield libpq_url(url)
    await drop_database(server_url, url)


def test_a_new_database_on_the_same_data_directory_reuses_the_demo_artifacts(
    fresh_database: str, servers: list[Server], tmp_path: Path
):
    """Embedded first, then DATABASE_URL with the same data directory: the demo is trained
    and registered again and finds identical artifacts already there."""
    data = reachable_temp_dir("mqswitch")
    try:
        first = _run_cli(["train-demo"], _base_env(MODELQL_DATA_DIR=str(data)))
        assert first.returncode == 0, _said(first)
        artifacts = sorted((data / "artifacts").rglob("*.joblib"))
        assert len(artifacts) == 5

        env = _base_env(MODELQL_DATA_DIR=str(data))
        server = Server(
            data,
            tmp_path / "switch.log",
            env={**env, "DATABASE_URL": fresh_database, "MODELQL_AUTO_MIGRATE": "true"},
        )
        servers.append(server)
        assert server.wait_ready()["status"] == "ready"
        assert "Registered 5 demo versions" in server.output()
        assert sorted((data / "artifacts").rglob("*.joblib")) == artifacts
        assert _exited_on(signal.SIGTERM, server.stop(signal.SIGTERM))
    finally:
        for process in _postgres_processes(data):
            process.kill()
        shutil.rmtree(data, ignore_errors=True)


def test_a_different_artifact_under_the_same_name_is_one_clear_line(
    fresh_database: str, tmp_path: Path
):
    data = reachable_temp_dir("mqclash")
    env = _base_env(
        MODELQL_DATA_DIR=str(data), DATABASE_URL=fresh_database, MODELQL_AUTO_MIGRATE="true"
    )
    try:
        first = _run_cli(["train-demo"], env)
        assert first.returncode == 0, _said(first)
        victim = sorted((data / "artifacts").rglob("*.joblib"))[0]
        victim.write_bytes(victim.read_bytes() + b"changed")
        asyncio.run(_empty_catalogue(fresh_database))

        again = _run_cli(["train-demo"], env)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert again.returncode == 1
    assert "Traceback" not in _said(again)
    assert f"{victim.parent.name}/{victim.name} already exists" in _said(again)
    assert "other contents" in _said(again)


async def _empty_catalogue(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE models CASCADE")
    finally:
        await connection.close()
