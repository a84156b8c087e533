"""Benchmarks ModelQL over real HTTP: starts `modelql serve` (embedded PostgreSQL unless
DATABASE_URL is set) in a temporary data directory, measures, stops it, prints a table.

    .venv/bin/python bench/run.py [--requests 500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

TRIVIAL = "{ __typename }"
CATALOGUE = """{ models { nodes { name defaultVersion { number algorithm
  f1: metric(name: "f1_macro") inputSchema { name type minimum maximum }
  performance(split: TEST) { slice numSamples metrics { name value } } } } } }"""
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2}}) {
  prediction { id label confidence } userErrors { code } } }"""
BATCH = """mutation($instances: [JSON!]!) { createPredictions(input: {model: "iris-classifier",
  instances: $instances}) { predictions { id } userErrors { code } } }"""
AUDIT = """{ predictions(first: 50) { nodes { id label confidence createdAt
  modelVersion { number model { name } } } } predictionStats { count p95LatencyMs } }"""
IRIS = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MODELQL_DATA_DIR": str(data_dir), "MODELQL_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "modelql.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(http: httpx.AsyncClient, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError("the service did not become ready")


async def measure(
    name: str, call: Callable[[], Awaitable[httpx.Response]], requests: int, concurrency: int
) -> dict[str, float | str | int]:
    """Latency percentiles and throughput of `requests` calls, `concurrency` at a time."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            response = await call()
            latencies.append((time.perf_counter() - started) * 1000)
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")

    for _ in range(min(20, requests)):
        await one()
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "benchmark": name,
        "requests": requests,
        "concurrency": concurrency,
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "throughput_rps": round(requests / elapsed, 1),
    }


async def run(base_url: str, requests: int, concurrency: int) -> list[dict]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await wait_ready(http)

        def post(query: str, variables: dict | None = None) -> Callable[[], Awaitable]:
            return lambda: http.post("/graphql", json={"query": query, "variables": variables})

        batch = [IRIS] * 100
        return [
            await measure("trivial query, sequential", post(TRIVIAL), requests, 1),
            await measure("catalogue nested query", post(CATALOGUE), requests, concurrency),
            await measure("createPrediction", post(PREDICT), requests, concurrency),
            await measure("createPredictions x100", post(BATCH, {"instances": batch}), 50, 4),
            await measure("audit page of 50 + stats", post(AUDIT), requests // 5, concurrency),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mqbench") as directory:
        server = start_server(Path(directory), port)
        try:
            results = asyncio.run(
                run(f"http://127.0.0.1:{port}", options.requests, options.concurrency)
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    width = max(len(str(row["benchmark"])) for row in results)
    print(f"{'benchmark':<{width}}  conc  p50 ms  p95 ms   req/s")
    for row in results:
        print(
            f"{row['benchmark']:<{width}}  {row['concurrency']:>4}  {row['p50_ms']:>6}"
            f"  {row['p95_ms']:>6}  {row['throughput_rps']:>6}"
        )
    output = Path(__file__).parent / "results"
    output.mkdir(exist_ok=True)
    (output / "latest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
