"""Shadow versions: the primary's createPrediction rate with a shadow scoring 100% of requests
beside the same service without one, in one run (alternating rounds on one `modelql serve`,
one worker, the inference cache off), and every shadow answer accounted for.

Two cases on the iris demo model: the random forest (v2) answers and the logistic regression
(v1) shadows it (`rf-primary`), and the other way round (`rf-shadow`, the heavier model in the
shadow). Every request sends new random inputs (wrk, Lua). After each shadowed round the queue
is let empty and the shadow answers stored for the round's primaries are counted against
them: stored + shed must equal the primaries (lost = the rest). Last, the service is killed
(SIGKILL) under load with the shadow on: the shadow answers missing are at most its queue.

    .venv/bin/python bench/shadow.py [--rounds 3] [--seconds 10] [--connections 32]

DATABASE_URL names the server (a fresh database is made and dropped); unset: an embedded
cluster."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import usage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from processes import Service, database, fetch, modelql_env, start_modelql, stop  # noqa: E402
from run import IRIS_RANGES, wrk  # noqa: E402

MODEL = "iris-classifier"
QUEUE = 10_000
"""MODELQL_SHADOW_QUEUE (its default)."""
CASES = {"rf-primary": (2, 1), "rf-shadow": (1, 2)}
"""Case -> (primary version, shadow version)."""
MUTATION = (
    'mutation($features: JSON!) { createPrediction(input: {model: "iris-classifier", '
    "version: %d, features: $features}) { prediction { id label } userErrors { code } } }"
)
SET_SHADOW = (
    "mutation($versions: [ShadowVersionInput!]!) { setShadow(input: {model: "
    '"iris-classifier", versions: $versions, sample: 1}) { userErrors { code message } } }'
)


class Target:
    """What `run.wrk` sends: a Lua script making createPrediction with new random inputs."""

    def __init__(self, service: str, version: int) -> None:
        self.service = service
        self.path = "/graphql"
        self.body = "lua"
        self.script = _script(version)


def _script(version: int) -> str:
    query = json.dumps(MUTATION % version)
    ranges = ", ".join(f"{{{low}, {high}}}" for low, high in IRIS_RANGES.values())
    names = ", ".join(f'"{name}"' for name in IRIS_RANGES)
    return f"""
local prefix = '{{"query": ' .. {json.dumps(query)} .. ', "variables": {{"features": '
local names = {{{names}}}
local ranges = {{{ranges}}}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + id)
end
function request()
  local parts = {{}}
  for i = 1, #names do
    local low, high = ranges[i][1], ranges[i][2]
    parts[i] = string.format('"%s": %.6f', names[i], low + (high - low) * math.random())
  end
  local body = prefix .. "{{" .. table.concat(parts, ", ") .. "}}}}}}"
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"""


def graphql(port: int, query: str, variables: dict) -> dict:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def shadow_metric(port: int, name: str, outcome: str | None = None) -> float:
    """A sample of /metrics (the shadow counters and queue)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    wanted = name if outcome is None else f'{name}{{outcome="{outcome}"}}'
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def set_shadow(port: int, versions: list[int]) -> None:
    data = graphql(port, SET_SHADOW, {"versions": [{"version": v} for v in versions]})
    assert data["setShadow"]["userErrors"] == [], data


def settle(port: int, timeout_s: float = 120) -> None:
    """Until the shadow queue is empty."""
    deadline = time.monotonic() + timeout_s
    while shadow_metric(port, "modelql_shadow_queue_rows") > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the shadow queue did not empty")
        time.sleep(0.1)
    time.sleep(0.3)


def counts(url: str, since: datetime, until: datetime, primary: int) -> tuple[int, int]:
    """Primaries of the version stored in [since, until), and their shadow answers."""
    rows = asyncio.run(
        fetch(
            url,
            """SELECT (SELECT count(*) FROM predictions p JOIN model_versions v
                         ON v.id = p.model_version_id
                       WHERE v.number = $3 AND p.created_at >= $1 AND p.created_at < $2),
                      (SELECT count(*) FROM shadow_predictions s
                       WHERE s.primary_created_at >= $1 AND s.primary_created_at < $2)""",
            since,
            until,
            primary,
        )
    )
    return int(rows[0][0]), int(rows[0][1])


def now(url: str) -> datetime:
    return asyncio.run(fetch(url, "SELECT clock_timestamp()"))[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        with database(os.environ.get("DATABASE_URL"), scratch) as db:
            env = modelql_env(
                db,
                scratch / "data",
                MODELQL_INFERENCE_CACHE_ROWS="0",
                MODELQL_AUTO_MIGRATE="true",
                MODELQL_SHADOW_QUEUE=str(QUEUE),
            )
            service = start_modelql(env)
            try:
                for case, (primary, shadow) in CASES.items():
                    run_case(case, primary, shadow, service, db.libpq, args, scratch)
                crash(service, db.libpq, args, scratch)
            finally:
                if service.process.poll() is None:
                    stop(service.process)


def run_case(
    case: str,
    primary: int,
    shadow: int,
    service: Service,
    url: str,
    args: argparse.Namespace,
    scratch: Path,
) -> None:
    port, pid = service.port, service.process.pid
    target = Target("modelql", primary)
    wrk(f"http://127.0.0.1:{port}", target, args.connections, 2, scratch)  # warm-up
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu_ms: dict[str, list[float]] = {"without": [], "with": []}
    totals = {"primaries": 0, "stored": 0, "shed": 0}
    for _ in range(args.rounds):
        for mode in ("without", "with"):
            set_shadow(port, [shadow] if mode == "with" else [])
            time.sleep(0.5)
            shed_before = shadow_metric(port, "modelql_shadow_rows_total", "shed")
            since, cpu_before = now(url), usage.tree_cpu_s(pid)
            found = wrk(f"http://127.0.0.1:{port}", target, args.connections, args.seconds, scratch)
            time.sleep(0.5)  # requests wrk abandoned at its deadline finish
            if mode == "with":
                settle(port)  # the shadow's work for the round counts in its CPU
            until, cpu_after = now(url), usage.tree_cpu_s(pid)
            rates[mode].append(found["requests_per_s"])
            cpu_ms[mode].append((cpu_after - cpu_before) * 1000 / found["requests"])
            if mode == "with":
                primaries, stored = counts(url, since, until, primary)
                shed = shadow_metric(port, "modelql_shadow_rows_total", "shed") - shed_before
                totals["primaries"] += primaries
                totals["stored"] += stored
                totals["shed"] += int(shed)
    set_shadow(port, [])
    without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
    paired = statistics.median(
        w / wo for w, wo in zip(rates["with"], rates["without"], strict=True)
    )
    cpu_without, cpu_with = statistics.median(cpu_ms["without"]), statistics.median(cpu_ms["with"])
    lost = totals["primaries"] - totals["stored"] - totals["shed"]
    print(
        f"{case}: primary v{primary}, shadow v{shadow} at 100%, {args.connections} connections, "
        f"{args.rounds} x {args.seconds} s rounds\n"
        f"  createPrediction/s without shadow {without:.0f} (rounds "
        f"{', '.join(f'{r:.0f}' for r in rates['without'])}), with {with_:.0f} (rounds "
        f"{', '.join(f'{r:.0f}' for r in rates['with'])}): ratio of medians "
        f"{with_ / without:.2f}, median of round-pair ratios {paired:.2f}\n"
        f"  service CPU per request (shadow work included) {cpu_without:.2f} ms without, "
        f"{cpu_with:.2f} ms with\n"
        f"  shadow answers: expected {totals['primaries']}, stored {totals['stored']}, "
        f"shed {totals['shed']}, lost {lost}",
        flush=True,
    )


def crash(service: Service, url: str, args: argparse.Namespace, scratch: Path) -> None:
    """SIGKILL the service under load with a shadow at 100%: the shadow answers missing for
    the primaries it committed are at most what its queue held (MODELQL_SHADOW_QUEUE)."""
    primary, shadow = CASES["rf-primary"]
    set_shadow(service.port, [shadow])
    time.sleep(0.5)
    script = scratch / "crash.lua"
    script.write_text(Target("modelql", primary).script)
    since = now(url)
    load = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            "-d8s",
            "-s",
            str(script),
            f"http://127.0.0.1:{service.port}/graphql",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    queued = shadow_metric(service.port, "modelql_shadow_queue_rows")
    service.process.kill()
    service.process.wait()
    load.wait()
    until = now(url)
    primaries, stored = counts(url, since, until, primary)
    print(
        f"crash: SIGKILL after 4 s under load (queue {queued:.0f} rows shortly before): "
        f"{primaries} primaries committed, {stored} shadow answers stored, "
        f"{primaries - stored} lost (bound: MODELQL_SHADOW_QUEUE = {QUEUE})",
        flush=True,
    )


if __name__ == "__main__":
    main()
