"""Two replicas reading under writes: memory-only response caches against the Redis-shared one.

Starts PostgreSQL (embedded, unless DATABASE_URL names a server: a fresh database is made there
and dropped), loads `--predictions` predictions, then two pairs of `modelql serve` replicas on
that database: `memory` (each keeps its own answers) and `shared` (`MODELQL_CACHE_URL` on the
Redis `--redis` names, a key prefix of this run's own, removed afterwards), and one more
process that only writes (`createPrediction` at `--writes-per-s`, so the store's generation
keeps moving). Each round runs `wrk` against both replicas of a pair at once (half the
connections each), the pairs alternating; every request is one of 52 questions (an audit page
of 1 to 50, the statistics grouped by label, the catalogue) drawn at random. Reported: both
replicas' req/s summed, p50/p99 of each replica's wrk (the worse of the two), the hit ratio of
each layer, and the executions per second (queries neither layer answered).

    .venv/bin/python bench/shared_cache.py [--rounds 3] [--seconds 10] [--connections 16]
        [--predictions 200000] [--writes-per-s 2] [--redis redis://127.0.0.1:6379/0]
        [--rate 300]   # paced requests/s instead of wrk's closed loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import redis
from dataset import load
from processes import Service, database, modelql_env, start_modelql, stop, wait_quiet

AUDIT = """query Page($first: Int!) { predictions(first: $first,
  filter: {model: "iris-classifier"}) { nodes { id label confidence createdAt
  modelVersion { number } } } }"""
STATS = """{ predictionStats(filter: {model: "iris-classifier"}) { count
  groups(by: [LABEL]) { label count } } }"""
CATALOGUE = """{ models { nodes { name defaultVersion { number algorithm
  f1: metric(name: "f1_macro") inputSchema { name type minimum maximum } } } } }"""
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier", features:
  {sepal_length: 5.9, sepal_width: 3.0, petal_length: 5.1, petal_width: 1.8}}) {
  prediction { id } } }"""
LOOKUPS = re.compile(
    r'^modelql_response_cache_lookups_total\{layer="(\w+)",outcome="(\w+)"\} ([\d.e+]+)$', re.M
)


def bodies() -> list[str]:
    pages = [{"query": AUDIT, "variables": {"first": n}} for n in range(1, 51)]
    return [json.dumps(body) for body in (*pages, {"query": STATS}, {"query": CATALOGUE})]


def wrk_script(scratch: Path) -> Path:
    script = scratch / "mixed.lua"
    quoted = ",\n".join(json.dumps(body) for body in bodies())
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{quoted}\n}}\n"
        "function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end\n"
        "function request() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end\n"
    )
    return script


def lookups(service: Service) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{service.port}/metrics", timeout=10).text
    return {(layer, outcome): float(value) for layer, outcome, value in LOOKUPS.findall(text)}


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def round_of(pair: list[Service], script: Path, connections: int, seconds: int) -> dict:
    """Both replicas of `pair` under load at once: summed req/s, worse p50/p99, lookups."""
    before = [lookups(service) for service in pair]
    runs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections // 2}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{service.port}/graphql",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for service in pair
    ]
    outputs = [run.communicate()[0] for run in runs]
    if any("Non-2xx" in output for output in outputs):
        raise RuntimeError("non-2xx answers:\n" + "\n".join(outputs))
    after = [lookups(service) for service in pair]
    counts: dict[tuple[str, str], float] = {}
    for old, new in zip(before, after, strict=True):
        for key, value in new.items():
            counts[key] = counts.get(key, 0.0) + value - old.get(key, 0.0)
    return {
        "requests_per_s": sum(
            float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outputs
        ),
        "p50_ms": max(_latency(o, "50%") for o in outputs),
        "p99_ms": max(_latency(o, "99%") for o in outputs),
        "counts": counts,
        "seconds": seconds,
    }


def paced_round(pair: list[Service], rate: float, seconds: int) -> dict:
    """`rate` requests a second, whatever the answers' speed (an open loop: the hit ratio is
    not coupled to the throughput), alternating replicas, each a random question."""
    before = [lookups(service) for service in pair]
    latencies = asyncio.run(_paced(pair, rate, seconds))
    after = [lookups(service) for service in pair]
    counts: dict[tuple[str, str], float] = {}
    for old, new in zip(before, after, strict=True):
        for key, value in new.items():
            counts[key] = counts.get(key, 0.0) + value - old.get(key, 0.0)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "counts": counts,
        "seconds": seconds,
    }


async def _paced(pair: list[Service], rate: float, seconds: int) -> list[float]:
    requests = [json.loads(body) for body in bodies()]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def one(number: int) -> None:
            url = f"http://127.0.0.1:{pair[number % 2].port}/graphql"
            body = random.choice(requests)
            sent = time.perf_counter()
            try:
                response = await http.post(url, json=body)
            except httpx.TransportError:  # a kept-alive connection the server just closed
                response = await http.post(url, json=body)
            response.raise_for_status()
            latencies.append((time.perf_counter() - sent) * 1000)

        start = time.perf_counter()
        tasks = []
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + number / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(number)))
        await asyncio.gather(*tasks)
    return latencies


def writer(service: Service, per_s: float, stop_writing: threading.Event) -> None:
    """createPrediction at a steady rate through a replica of its own."""
    url = f"http://127.0.0.1:{service.port}/graphql"
    with httpx.Client(timeout=10) as http:
        while not stop_writing.wait(1 / per_s):
            http.post(url, json={"query": PREDICT}).raise_for_status()


def summary(name: str, rounds: list[dict]) -> str:
    counts: dict[tuple[str, str], float] = {}
    for found in rounds:
        for key, value in found["counts"].items():
            counts[key] = counts.get(key, 0.0) + value
    memory = sum(v for (layer, _), v in counts.items() if layer == "memory")
    memory_hits = counts.get(("memory", "hit"), 0) + counts.get(("memory", "shared"), 0)
    shared = sum(v for (layer, _), v in counts.items() if layer == "redis")
    executed = memory - memory_hits - counts.get(("redis", "hit"), 0)
    seconds = sum(found["seconds"] for found in rounds)
    redis_ratio = f"{counts.get(('redis', 'hit'), 0) / shared:.1%}" if shared else ""
    return (
        f"| {name} | {statistics.median(r['requests_per_s'] for r in rounds):,.0f} | "
        f"{statistics.median(r['p50_ms'] for r in rounds):.2f} | "
        f"{statistics.median(r['p99_ms'] for r in rounds):.2f} | "
        f"{memory_hits / memory:.1%} | {redis_ratio} | "
        f"{(memory_hits + counts.get(('redis', 'hit'), 0)) / memory:.1%} | "
        f"{executed / seconds:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--writes-per-s", type=float, default=2.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--rate", type=float, default=0, help="requests/s, paced (default: wrk, closed loop)"
    )
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mqshared"))
    prefix = f"modelql-bench:{uuid.uuid4().hex[:8]}:"
    services: list[Service] = []
    stop_writing = threading.Event()
    try:
        with database(os.environ.get("DATABASE_URL"), scratch) as db:
            data_dir = scratch / "data"
            small = {  # five processes on a PostgreSQL other work may share
                "MODELQL_RATE_LIMIT": "",
                "MODELQL_DB_POOL_SIZE": "4",
                "MODELQL_DB_MAX_OVERFLOW": "2",
                "MODELQL_JOB_WORKERS": "0",
            }
            writing = start_modelql(modelql_env(db, data_dir, MODELQL_AUTO_MIGRATE="true", **small))
            services.append(writing)
            print(f"Loading {options.predictions:,} predictions ...", flush=True)
            print(asyncio.run(load(db.libpq, options.predictions)).summary(), flush=True)
            common = {"MODELQL_AUTO_MIGRATE": "false", **small}
            shared = {**common, "MODELQL_CACHE_URL": options.redis, "MODELQL_CACHE_PREFIX": prefix}
            pairs = {
                "memory": [start_modelql(modelql_env(db, data_dir, **common)) for _ in range(2)],
                "shared": [start_modelql(modelql_env(db, data_dir, **shared)) for _ in range(2)],
            }
            services += [service for pair in pairs.values() for service in pair]
            script = wrk_script(scratch)
            for pair in pairs.values():  # warm-up
                round_of(pair, script, options.connections, 2)
            thread = threading.Thread(
                target=writer, args=(writing, options.writes_per_s, stop_writing), daemon=True
            )
            thread.start()
            results: dict[str, list[dict]] = {name: [] for name in pairs}
            for number in range(options.rounds):
                for name in random.sample(list(pairs), len(pairs)) if number else list(pairs):
                    results[name].append(
                        paced_round(pairs[name], options.rate, options.seconds)
                        if options.rate
                        else round_of(pairs[name], script, options.connections, options.seconds)
                    )
                    wait_quiet(db)
            stop_writing.set()
            thread.join()
            driven = (
                f"{options.rate:g} requests/s paced"
                if options.rate
                else f"wrk, {options.connections} connections"
            )
            print(
                f"\n{driven} over two replicas, "
                f"{options.writes_per_s:g} createPrediction/s through a third, "
                f"{options.rounds} rounds x {options.seconds} s (medians)\n"
            )
            print(
                "| caches | req/s | p50 ms | p99 ms | memory hits | Redis hits (of memory "
                "misses) | answered from a cache | executions/s |\n"
                "|---|---|---|---|---|---|---|---|"
            )
            for name, rounds in results.items():
                print(summary(name, rounds))
            if os.environ.get("BENCH_DEBUG"):
                print({name: [r["counts"] for r in rounds] for name, rounds in results.items()})
                for service in pairs["shared"]:
                    text = httpx.get(f"http://127.0.0.1:{service.port}/metrics").text
                    print([line for line in text.splitlines() if "errors_total" in line])
    finally:
        stop_writing.set()
        for service in services:
            stop(service.process)
        client = redis.Redis.from_url(options.redis)
        stale = list(client.scan_iter(match=f"{prefix}*"))
        if stale:
            client.delete(*stale)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
