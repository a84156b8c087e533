"""ModelQL side by side with its peers, in one run, over real HTTP with `wrk`.

Starts PostgreSQL (embedded, unless DATABASE_URL names a server: a fresh database is made
there and dropped), `modelql serve` (one worker) and two hand-written FastAPI peers on the same
model artifact and database: `bare` (model in memory, stores nothing) and `naive` (one INSERT
and COMMIT per request). Each case runs every service for `--seconds`, in alternating rounds;
the table shows medians of the rounds and ModelQL's ratio to each peer.

    .venv/bin/python bench/run.py [--rounds 3] [--seconds 10] [--connections 64] [--case ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
from sqlalchemy.engine import make_url

from modelql.embedded_postgres import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
IRIS = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
IRIS_FEATURES = ",".join(IRIS)
IRIS_LABELS = "setosa,versicolor,virginica"


def _mutation(version: int) -> str:
    features = ", ".join(f"{name}: {value}" for name, value in IRIS.items())
    return (
        f'mutation {{ createPrediction(input: {{model: "iris-classifier", version: {version}, '
        f"features: {{{features}}}}}) {{ prediction {{ id label confidence }} "
        "userErrors { code } } }"
    )


BATCH = (
    "mutation($instances: [JSON!]!) { createPredictions(input: {model: "
    '"iris-classifier", version: 1, instances: $instances}) { predictions { id } '
    "userErrors { code } } }"
)
CATALOGUE = """{ models { nodes { name defaultVersion { number algorithm
  f1: metric(name: "f1_macro") inputSchema { name type minimum maximum }
  performance(split: TEST) { slice numSamples metrics { name value } } } } } }"""
AUDIT = """{ predictions(first: 50, filter: {model: "iris-classifier"}) { nodes { id label
  confidence createdAt modelVersion { number } } } }"""


def graphql_body(query: str, variables: dict | None = None) -> str:
    return json.dumps({"query": query, "variables": variables or {}})


@dataclass(frozen=True)
class Target:
    service: str
    path: str
    body: str
    rows_per_request: int = 0
    """Predictions each successful request stores (checked against the table afterwards)."""


@dataclass(frozen=True)
class Case:
    name: str
    targets: tuple[Target, ...]
    connections: int
    per_row: bool = False


@dataclass
class Sample:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float


@dataclass
class Result:
    case: Case
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def cases(connections: int) -> list[Case]:
    single = graphql_body(_mutation(1))
    forest = graphql_body(_mutation(2))
    peer = json.dumps({"features": IRIS})
    batch = graphql_body(BATCH, {"instances": [IRIS] * 1000})
    return [
        Case(
            "createPrediction, LogisticRegression",
            (
                Target("bare", "/predict", peer),
                Target("naive", "/predict", peer, 1),
                Target("modelql", "/graphql", single, 1),
            ),
            connections,
        ),
        Case(
            "createPrediction, RandomForest",
            (
                Target("bare-forest", "/predict", peer),
                Target("naive-forest", "/predict", peer, 1),
                Target("modelql", "/graphql", forest, 1),
            ),
            connections,
        ),
        Case(
            "createPredictions x1000",
            (
                Target("naive", "/predict_batch", json.dumps({"instances": [IRIS] * 1000}), 1000),
                Target("modelql", "/graphql", batch, 1000),
            ),
            4,
            per_row=True,
        ),
        Case(
            "trivial request",
            (
                Target("bare", "/healthz", ""),
                Target("modelql", "/graphql", graphql_body("{ __typename }")),
            ),
            connections,
        ),
        Case(
            "nested catalogue query", (Target("modelql", "/graphql", graphql_body(CATALOGUE)),), 16
        ),
        Case("audit page of 50", (Target("modelql", "/graphql", graphql_body(AUDIT)),), 16),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def database(server_url: str | None, scratch: Path) -> Iterator[str]:
    """A fresh database on the given server, or on an embedded cluster started here."""
    cluster = None
    if server_url is None:
        cluster = EmbeddedPostgres(scratch / "pg")
        server_url = cluster.start()
    name = f"modelql_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if cluster is not None:
            cluster.stop()


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
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


def wrk(url: str, target: Target, connections: int, seconds: int, scratch: Path) -> dict:
    script = scratch / "request.lua"
    method = "POST" if target.body else "GET"
    script.write_text(
        f'wrk.method = "{method}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(target.body)}\n"
    )
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url + target.path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"{target.service} {target.path}: non-2xx answers\n{output}")
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _latency(output, "50%"),
        "p99_ms": _latency(output, "99%"),
    }


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def stored_rows(database_url: str, table: str) -> int:
    return asyncio.run(_fetch(database_url, f"SELECT count(*) FROM {table}"))[0][0]


def run(options: argparse.Namespace) -> list[Result]:
    scratch = Path(tempfile.mkdtemp(prefix="mqbench"))
    processes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        with database(os.environ.get("DATABASE_URL"), scratch) as database_url:
            port = free_port()
            env = {
                "DATABASE_URL": database_url,
                "MODELQL_DATA_DIR": str(scratch / "data"),
                "MODELQL_AUTO_MIGRATE": "true",
                "MODELQL_LOG_LEVEL": "WARNING",
                "MODELQL_MAX_BATCH_SIZE": "1000",
            }
            processes["modelql"] = (
                start([sys.executable, "-m", "modelql.cli", "serve", "--port", str(port)], env),
                port,
            )
            wait_ready(f"http://127.0.0.1:{port}/readyz")
            artifacts = {
                number: str(scratch / "data" / "artifacts" / path)
                for number, path in asyncio.run(
                    _fetch(
                        database_url,
                        "SELECT v.number, v.artifact_path FROM model_versions v JOIN models m "
                        "ON m.id = v.model_id WHERE m.name = 'iris-classifier'",
                    )
                )
            }
            peers = {
                "bare": ("bare.py", 1),
                "naive": ("naive.py", 1),
                "bare-forest": ("bare.py", 2),
                "naive-forest": ("naive.py", 2),
            }
            for service, (script, version) in peers.items():
                peer_port = free_port()
                command = [
                    sys.executable,
                    str(HERE / "peers" / script),
                    "--port",
                    str(peer_port),
                    "--artifact",
                    artifacts[version],
                    "--features",
                    IRIS_FEATURES,
                    "--labels",
                    IRIS_LABELS,
                ]
                if script == "naive.py":
                    command += ["--database-url", database_url]
                processes[service] = (start(command, {}), peer_port)
            for service, (_, peer_port) in processes.items():
                if service != "modelql":
                    wait_ready(f"http://127.0.0.1:{peer_port}/docs")
            return [
                measure(case, processes, database_url, options, scratch)
                for case in cases(options.connections)
                if not options.case or options.case in case.name
            ]
    finally:
        for process, _ in processes.values():
            stop(process)
        shutil.rmtree(scratch, ignore_errors=True)


def measure(
    case: Case,
    processes: dict[str, tuple[subprocess.Popen[bytes], int]],
    database_url: str,
    options: argparse.Namespace,
    scratch: Path,
) -> Result:
    result = Result(case)
    for target in case.targets:  # warm-up: caches, pools, the model's first call
        wrk(
            f"http://127.0.0.1:{processes[target.service][1]}", target, case.connections, 2, scratch
        )
    for _ in range(options.rounds):
        for target in case.targets:
            process, port = processes[target.service]
            table = "predictions" if target.service == "modelql" else "peer_predictions"
            before = stored_rows(database_url, table) if target.rows_per_request else 0
            cpu_before = psutil.Process(process.pid).cpu_times()
            answer = wrk(
                f"http://127.0.0.1:{port}", target, case.connections, options.seconds, scratch
            )
            cpu_after = psutil.Process(process.pid).cpu_times()
            if target.rows_per_request:
                time.sleep(0.5)  # requests wrk abandoned at its deadline finish server-side
                stored = stored_rows(database_url, table) - before
                expected = answer["requests"] * target.rows_per_request
                if stored < expected:
                    raise RuntimeError(f"{target.service}: {expected} answered, {stored} stored")
            cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            result.samples.setdefault(target.service, []).append(
                Sample(
                    requests_per_s=answer["requests_per_s"],
                    p50_ms=answer["p50_ms"],
                    p99_ms=answer["p99_ms"],
                    cpu_ms_per_request=1000 * cpu_s / max(answer["requests"], 1),
                )
            )
    return result


def report(results: list[Result]) -> str:
    lines = [
        "| case | service | conns | req/s | rows/s | p50 ms | p99 ms | CPU ms/req "
        "| ModelQL / peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        medians = {
            service: Sample(
                *(
                    statistics.median(getattr(s, name) for s in samples)
                    for name in ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
                )
            )
            for service, samples in result.samples.items()
        }
        ours = medians["modelql"].requests_per_s
        for target in result.case.targets:
            median = medians[target.service]
            rows = (
                median.requests_per_s * target.rows_per_request if target.rows_per_request else None
            )
            ratio = "" if target.service == "modelql" else f"{ours / median.requests_per_s:.2f}x"
            lines.append(
                f"| {result.case.name} | {target.service} | {result.case.connections} "
                f"| {median.requests_per_s:,.0f} | {f'{rows:,.0f}' if rows else ''} "
                f"| {median.p50_ms:.1f} | {median.p99_ms:.1f} | {median.cpu_ms_per_request:.2f} "
                f"| {ratio} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--case", help="Run only the cases whose name contains this text.")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/run.py drives the services with wrk: apt-get install wrk")
    table = report(run(options))
    print(table)
    output = HERE / "results"
    output.mkdir(exist_ok=True)
    (output / "latest.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
