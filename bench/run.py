"""ModelQL side by side with its peers, in one run, over real HTTP with `wrk`.

Starts PostgreSQL (embedded, unless DATABASE_URL names a server: a fresh database is made
there and dropped) and `modelql serve` (one worker). Write cases put it beside two hand-written
FastAPI peers on the same model artifact and database: `bare` (model in memory, stores
nothing) and `naive` (one INSERT and COMMIT per request); the inference-cache cases compare two
more ModelQL, with its inference cache and without (`modelql-no-cache`), half the inputs repeated.
Read cases first load
`--predictions` stored predictions (COPY, roll-ups and outcomes kept consistent), then put it
beside a second ModelQL with its response cache off (`modelql-cold`), PostGraphile (installed
from npm into bench/peers/postgraphile) and a hand-written FastAPI + asyncpg peer
(`hand-written`, answering with ModelQL's JSON), all on the same database. Each case runs
every service for `--seconds`, in alternating rounds; the tables show medians of the rounds,
server and PostgreSQL CPU per request, and ModelQL's ratio to each peer.

    .venv/bin/python bench/run.py [--rounds 3] [--seconds 10] [--connections 64]
        [--read-connections 16[,64]] [--predictions 1000000] [--case read|write|NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import usage
from dataset import LoadReport, load
from processes import (
    Database,
    Service,
    database,
    fetch,
    install_postgraphile,
    modelql_env,
    start_modelql,
    start_postgraphile,
    start_python_peer,
    stop,
    wait_quiet,
)
from read_cases import MODEL, ReadCase, Subjects, problems, read_cases

HERE = Path(__file__).resolve().parent
IRIS = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
IRIS_FEATURES = ",".join(IRIS)
IRIS_LABELS = "setosa,versicolor,virginica"
OURS, COLD = "modelql", "modelql-cold"
CACHE, NO_CACHE = "modelql-cache", "modelql-no-cache"
"""The inference-cache cases' two ModelQL, started alike (neither trained the demo catalogue),
one with MODELQL_INFERENCE_CACHE_ROWS=0."""
MODELQL_SERVICES = {OURS, COLD, CACHE, NO_CACHE}
IRIS_RANGES = {
    "sepal_length": (4.3, 7.9),
    "sepal_width": (2.0, 4.4),
    "petal_length": (1.0, 6.9),
    "petal_width": (0.1, 2.5),
}
REPEATED_SHARE, REPEATED_POOL = 0.5, 64
"""The inference-cache cases: each request repeats one of 64 inputs with probability 0.5, else
sends an input never seen (six random decimals per feature)."""
WRK_TIMEOUT_S = 30
"""Longer than any answer here takes (wrk's default, 2 s, drops slower answers uncounted)."""
PLACEHOLDER = Subjects(
    uuid.UUID(int=0), datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC)
)
"""Subjects for read cases' names only (the real ones come from the loaded data)."""


def _mutation(version: int) -> str:
    """createPrediction of the iris sample by a given version."""
    features = ", ".join(f"{name}: {value}" for name, value in IRIS.items())
    return (
        f'mutation {{ createPrediction(input: {{model: "iris-classifier", version: {version}, '
        f"features: {{{features}}}}}) {{ prediction {{ id label confidence }} "
        "userErrors { code } } }"
    )


FEATURES_MUTATION = (
    'mutation($features: JSON!) { createPrediction(input: {model: "iris-classifier", '
    "version: %d, features: $features}) { prediction { id label confidence } "
    "userErrors { code } } }"
)


def repeated_inputs_script(version: int) -> str:
    """wrk Lua: createPrediction by a version, half of the inputs drawn from a pool of 64 (the
    same pool in every wrk thread), the others new; the document is the same every time (a
    variable carries the features), so only the inputs differ."""
    query = json.dumps(FEATURES_MUTATION % version)
    ranges = ", ".join(f"{{{low}, {high}}}" for low, high in IRIS_RANGES.values())
    names = ", ".join(f'"{name}"' for name in IRIS_RANGES)
    return f"""
local prefix = '{{"query": ' .. {json.dumps(query)} .. ', "variables": {{"features": '
local names = {{{names}}}
local ranges = {{{ranges}}}
local function features()
  local parts = {{}}
  for i = 1, #names do
    local low, high = ranges[i][1], ranges[i][2]
    parts[i] = string.format('"%s": %.6f', names[i], low + (high - low) * math.random())
  end
  return "{{" .. table.concat(parts, ", ") .. "}}"
end
math.randomseed(20261205)
local pool = {{}}
for i = 1, {REPEATED_POOL} do pool[i] = features() end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + id)
end
function request()
  local chosen
  if math.random() < {REPEATED_SHARE} then chosen = pool[math.random({REPEATED_POOL})]
  else chosen = features() end
  local body = prefix .. chosen .. "}}}}"
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"""


BATCH = (
    "mutation($instances: [JSON!]!) { createPredictions(input: {model: "
    '"iris-classifier", version: 1, instances: $instances}) { predictions { id } '
    "userErrors { code } } }"
)


def graphql_body(query: str, variables: dict | None = None) -> str:
    """A GraphQL request's JSON body."""
    return json.dumps({"query": query, "variables": variables or {}})


@dataclass(frozen=True)
class Target:
    service: str
    path: str
    body: str
    """Empty: a GET."""
    rows_per_request: int = 0
    """Predictions each successful request stores (checked against the table afterwards)."""
    script: str = ""
    """wrk Lua making each request (its body varies); empty: `body` every time."""


@dataclass(frozen=True)
class Case:
    name: str
    targets: tuple[Target, ...]
    connections: int
    per_row: bool = False
    subject: str = OURS
    """The service whose ratio to each other one is shown."""
    read: ReadCase | None = None
    """A read case's questions and answer checks; None for write cases."""


@dataclass
class Sample:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    pg_cpu_ms_per_request: float | None
    """None: PostgreSQL's backends could not be read (not on this machine)."""
    pg_lower_bound: bool = False
    """The service's pool reconnected during the round: backends may have been missed."""


@dataclass
class Result:
    case: Case
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def write_cases(connections: int) -> list[Case]:
    """Predictions made (and stored), against the bare and naive peers."""
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
                Target(OURS, "/graphql", single, 1),
            ),
            connections,
        ),
        Case(
            "createPrediction, RandomForest",
            (
                Target("bare-forest", "/predict", peer),
                Target("naive-forest", "/predict", peer, 1),
                Target(OURS, "/graphql", forest, 1),
            ),
            connections,
        ),
        Case(
            "createPredictions x1000",
            (
                Target("naive", "/predict_batch", json.dumps({"instances": [IRIS] * 1000}), 1000),
                Target(OURS, "/graphql", batch, 1000),
            ),
            4,
            per_row=True,
        ),
        *(
            Case(
                f"inference cache, {name}, 50% repeated inputs",
                tuple(
                    Target(service, "/graphql", sample, 1, repeated_inputs_script(version))
                    for service in (CACHE, NO_CACHE)
                ),
                connections,
                subject=CACHE,
            )
            for name, version in (("RandomForest", 2), ("LogisticRegression", 1))
            for sample in [graphql_body(FEATURES_MUTATION % version, {"features": IRIS})]
        ),
        Case(
            "trivial request",
            (
                Target("bare", "/healthz", ""),
                Target(OURS, "/graphql", graphql_body("{ __typename }")),
            ),
            connections,
        ),
    ]


def read_targets(read: ReadCase, services: set[str]) -> tuple[Target, ...]:
    """ModelQL, then each read peer that runs (PostGraphile where its schema can ask)."""
    targets = [Target(OURS, "/graphql", graphql_body(read.modelql))]
    if COLD in services:
        targets.append(Target(COLD, "/graphql", graphql_body(read.modelql)))
    if "postgraphile" in services and read.postgraphile is not None:
        targets.append(Target("postgraphile", "/graphql", graphql_body(read.postgraphile)))
    targets.append(Target("hand-written", read.route, ""))
    return tuple(targets)


def read_case_runs(
    subjects: Subjects, services: set[str], options: argparse.Namespace
) -> list[Case]:
    """Each selected read case at each of `--read-connections` (within the case's cap)."""
    runs: dict[tuple[str, int], Case] = {}
    for connections in options.read_connections:
        for read in read_cases(subjects):
            if selected(read.name, True, options.case):
                count = min(connections, read.max_connections or connections)
                runs.setdefault(
                    (read.name, count),
                    Case(read.name, read_targets(read, services), count, read=read),
                )
    return list(runs.values())


def selected(name: str, is_read: bool, choice: str | None) -> bool:
    """`--case`: every case, "read" or "write" ones, or those whose name contains it."""
    if choice in (None, "read", "write"):
        return choice is None or (choice == "read") == is_read
    return choice.lower() in name.lower()


def wrk(url: str, target: Target, connections: int, seconds: int, scratch: Path) -> dict:
    """One wrk run of the target: requests, req/s, p50 and p99."""
    script = scratch / "request.lua"
    method = "POST" if target.body else "GET"
    script.write_text(
        target.script
        or (
            f'wrk.method = "{method}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(target.body)}\n"
        )
    )
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={WRK_TIMEOUT_S}s",
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
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        print(f"  {target.service}: wrk socket errors: {errors.group(1)}", flush=True)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _latency(output, "50%"),
        "p99_ms": _latency(output, "99%"),
    }


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def stored_rows(db: Database, table: str) -> int:
    """Rows in a table (what the write cases check their answers against)."""
    return asyncio.run(fetch(db.libpq, f"SELECT count(*) FROM {table}"))[0][0]


def start_write_peers(db: Database, data_dir: Path, needed: set[str]) -> dict[str, Service]:
    """Those of bare and naive on iris v1 (LogisticRegression) and v2 (RandomForest) that the
    selected cases need, and ModelQL without its inference cache."""
    artifacts = {
        number: str(data_dir / "artifacts" / path)
        for number, path in asyncio.run(
            fetch(
                db.libpq,
                "SELECT v.number, v.artifact_path FROM model_versions v JOIN models m "
                "ON m.id = v.model_id WHERE m.name = $1",
                MODEL,
            )
        )
    }
    peers = {
        "bare": ("bare.py", 1),
        "naive": ("naive.py", 1),
        "bare-forest": ("bare.py", 2),
        "naive-forest": ("naive.py", 2),
    }
    started = {}
    for service, rows in ((CACHE, None), (NO_CACHE, "0")):
        if service in needed:
            extra = {"MODELQL_INFERENCE_CACHE_ROWS": rows} if rows else {}
            env = modelql_env(db, data_dir, MODELQL_AUTO_MIGRATE="false", **extra)
            started[service] = start_modelql(env)
    for service, (script, version) in peers.items():
        if service not in needed:
            continue
        arguments = ["--artifact", artifacts[version], "--features", IRIS_FEATURES]
        arguments += ["--labels", IRIS_LABELS]
        if script == "naive.py":
            arguments += ["--database-url", db.url]
        started[service] = start_python_peer(script, arguments)
    return started


def start_read_peers(
    db: Database, data_dir: Path, options: argparse.Namespace, notes: list[str]
) -> dict[str, Service]:
    """The hand-written peer, ModelQL without its response cache, and PostGraphile (skipped,
    with the reason noted, when it cannot be installed or started)."""
    started = {"hand-written": start_python_peer("reads.py", ["--database-url", db.libpq])}
    if options.cold:
        env = modelql_env(
            db, data_dir, MODELQL_AUTO_MIGRATE="false", MODELQL_RESPONSE_CACHE="false"
        )
        started[COLD] = start_modelql(env)
    reason = "--no-postgraphile given" if not options.postgraphile else install_postgraphile()
    if reason is None:
        try:
            started["postgraphile"] = start_postgraphile(db)
        except (RuntimeError, OSError) as error:
            reason = f"it did not start: {error}"
    if reason is not None:
        notes.append(f"PostGraphile peer skipped: {reason}")
        print(notes[-1], flush=True)
    return started


def prepare_reads(db: Database, predictions: int, notes: list[str]) -> Subjects:
    """Load the predictions; pick the prediction and the day the documents name."""
    print(f"Loading {predictions:,} predictions ...", flush=True)
    report: LoadReport = asyncio.run(load(db.libpq, predictions))
    notes.append(report.summary())
    print(notes[-1], flush=True)
    middle = report.first_at + (report.last_at - report.first_at) / 2
    [row] = asyncio.run(
        fetch(
            db.libpq,
            "SELECT p.id, p.created_at FROM predictions p WHERE p.model_id = "
            "(SELECT id FROM models WHERE name = $1) AND p.created_at >= $2 "
            "ORDER BY p.created_at, p.id LIMIT 1",
            MODEL,
            middle,
        )
    )
    day = (report.last_at - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    return Subjects(row["id"], row["created_at"], day)


def plan(options: argparse.Namespace) -> tuple[bool, bool]:
    """Whether any write case and any read case is selected."""
    writes = any(selected(c.name, False, options.case) for c in write_cases(options.connections))
    reads = any(selected(c.name, True, options.case) for c in read_cases(PLACEHOLDER))
    return writes, reads


def run(options: argparse.Namespace) -> tuple[list[Result], list[str]]:
    """Start what the selected cases need, measure them; the results and the run's notes."""
    scratch = Path(tempfile.mkdtemp(prefix="mqbench"))
    services: dict[str, Service] = {}
    notes: list[str] = []
    writes, reads = plan(options)
    try:
        with database(os.environ.get("DATABASE_URL"), scratch) as db:
            data_dir = scratch / "data"
            services[OURS] = start_modelql(modelql_env(db, data_dir, MODELQL_AUTO_MIGRATE="true"))
            cases: list[Case] = []
            if writes:
                cases += [
                    case
                    for case in write_cases(options.connections)
                    if selected(case.name, False, options.case)
                ]
                needed = {target.service for case in cases for target in case.targets}
                services.update(start_write_peers(db, data_dir, needed))
            if reads:
                subjects = prepare_reads(db, options.predictions, notes)
                services.update(start_read_peers(db, data_dir, options, notes))
                cases += read_case_runs(subjects, set(services), options)
            results = []
            for case in cases:
                before = cache_counters(services, case)
                results.append(measure(case, services, db, options, scratch))
                if before:
                    notes.append(inference_cache_note(case, before, cache_counters(services, case)))
            return results, notes
    finally:
        for service in services.values():
            stop(service.process)
        shutil.rmtree(scratch, ignore_errors=True)


COUNTERS = {
    "hit": 'modelql_inference_cache_lookups_total{outcome="hit"}',
    "miss": 'modelql_inference_cache_lookups_total{outcome="miss"}',
    "calls": "modelql_inference_batch_size_count",
    "rows": "modelql_inference_batch_size_sum",
    "stored": "modelql_predictions_stored_total",
}


def cache_counters(services: dict[str, Service], case: Case) -> dict[str, dict[str, float]]:
    """For an inference-cache case, each of its services' counters from /metrics (stored
    predictions summed over models and versions); {} for other cases."""
    if NO_CACHE not in {target.service for target in case.targets}:
        return {}
    found = {}
    for service in (CACHE, NO_CACHE):
        text = httpx.get(f"http://127.0.0.1:{services[service].port}/metrics", timeout=60).text
        found[service] = {
            key: sum(
                float(value)
                for value in re.findall(
                    rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
                    if key == "stored"
                    else rf"^{re.escape(name)} (\S+)$",
                    text,
                    re.MULTILINE,
                )
            )
            for key, name in COUNTERS.items()
        }
    return found


def inference_cache_note(
    case: Case, before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> str:
    """Over the case (warm-up included): the cache's hits and misses, and each service's
    estimator calls and rows scored per stored prediction."""
    moved = {
        service: {key: after[service][key] - before[service][key] for key in COUNTERS}
        for service in before
    }
    hits, misses = moved[CACHE]["hit"], moved[CACHE]["miss"]
    parts = [
        f"{service}: {counts['calls'] / max(counts['stored'], 1):.3f} estimator calls and "
        f"{counts['rows'] / max(counts['stored'], 1):.2f} rows scored per prediction"
        for service, counts in moved.items()
    ]
    return (
        f"{case.name} ({case.connections} connections): {hits:,.0f} cache hits, "
        f"{misses:,.0f} misses; " + "; ".join(parts)
    )


def answer(service: Service, target: Target) -> dict[str, Any]:
    """One request of the target, its JSON answer."""
    url = f"http://127.0.0.1:{service.port}{target.path}"
    if not target.body:
        return httpx.get(url, timeout=60).json()
    headers = {"Content-Type": "application/json"}
    return httpx.post(url, content=target.body, headers=headers, timeout=60).json()


def check_answers(case: Case, services: dict[str, Service]) -> None:
    """A read case is measured only when every service answers it with the same data."""
    assert case.read is not None
    answers = {t.service: answer(services[t.service], t) for t in case.targets}
    found = problems(case.read, answers)
    if found:
        raise RuntimeError(f"{case.name}: the answers differ\n" + "\n".join(found))


def measure(
    case: Case,
    services: dict[str, Service],
    db: Database,
    options: argparse.Namespace,
    scratch: Path,
) -> Result:
    """Check a read case's answers, warm every service up, then the alternating rounds."""
    print(f"{case.name} ({case.connections} connections) ...", flush=True)
    result = Result(case)
    if case.read is not None:
        check_answers(case, services)
    for target in case.targets:  # warm-up: caches, pools, the model's first call
        port = services[target.service].port
        wrk(f"http://127.0.0.1:{port}", target, case.connections, 2, scratch)
        _settle(db)
    for _ in range(options.rounds):
        for target in case.targets:
            sample = _round(case, target, services[target.service], db, options, scratch)
            _settle(db)
            result.samples.setdefault(target.service, []).append(sample)
            print(f"  {target.service}: {_rate(sample.requests_per_s)} req/s", flush=True)
    return result


def _settle(db: Database) -> None:
    """Wait for the database to go quiet before the next wrk run."""
    waited = wait_quiet(db)
    if waited > 1:
        print(f"  (waited {waited:.1f} s for abandoned requests to finish)", flush=True)


def _round(
    case: Case,
    target: Target,
    service: Service,
    db: Database,
    options: argparse.Namespace,
    scratch: Path,
) -> Sample:
    """One service's round: wrk's numbers and the CPU it and its backends spent."""
    table = "predictions" if target.service in MODELQL_SERVICES else "peer_predictions"
    before_rows = stored_rows(db, table) if target.rows_per_request else 0
    url = f"http://127.0.0.1:{service.port}"
    seconds = max(options.seconds, case.read.min_seconds if case.read else 0)
    with usage.Meter(service.process.pid, db.libpq, db.pg_port, local=db.local) as meter:
        found = wrk(url, target, case.connections, seconds, scratch)
    if target.rows_per_request:
        time.sleep(0.5)  # requests wrk abandoned at its deadline finish server-side
        stored = stored_rows(db, table) - before_rows
        expected = found["requests"] * target.rows_per_request
        if stored < expected:
            raise RuntimeError(f"{target.service}: {expected} answered, {stored} stored")
    server_s, pg_s = meter.server_s, meter.pg_s
    requests = max(found["requests"], 1)
    return Sample(
        requests_per_s=found["requests_per_s"],
        p50_ms=found["p50_ms"],
        p99_ms=found["p99_ms"],
        cpu_ms_per_request=1000 * server_s / requests,
        pg_cpu_ms_per_request=None if pg_s is None else 1000 * pg_s / requests,
        pg_lower_bound=meter.churned,
    )


def _medians(samples: list[Sample]) -> Sample:
    """Each number's median over a service's rounds."""
    pg = [s.pg_cpu_ms_per_request for s in samples if s.pg_cpu_ms_per_request is not None]
    return Sample(
        statistics.median(s.requests_per_s for s in samples),
        statistics.median(s.p50_ms for s in samples),
        statistics.median(s.p99_ms for s in samples),
        statistics.median(s.cpu_ms_per_request for s in samples),
        statistics.median(pg) if pg else None,
        any(s.pg_lower_bound for s in samples),
    )


def _ratio(ours: Sample | None, theirs: Sample) -> str:
    if ours is None or not theirs.requests_per_s:
        return ""
    return f"{ours.requests_per_s / theirs.requests_per_s:.2f}x"


def _rate(requests_per_s: float) -> str:
    """Requests per second, with a decimal below 10."""
    return f"{requests_per_s:,.0f}" if requests_per_s >= 10 else f"{requests_per_s:.1f}"


def _pg(sample: Sample) -> str:
    """PostgreSQL CPU per request; "≥" when backends may have been missed."""
    if sample.pg_cpu_ms_per_request is None:
        return ""
    return f"{'≥' if sample.pg_lower_bound else ''}{sample.pg_cpu_ms_per_request:.2f}"


def report(results: list[Result]) -> str:
    """A table of the write cases and one of the read cases (medians of the rounds)."""
    tables = []
    writes = [result for result in results if result.case.read is None]
    reads = [result for result in results if result.case.read is not None]
    if writes:
        tables.append(_write_table(writes))
    if reads:
        tables.append(_read_table(reads))
    return "\n\n".join(tables)


def _write_table(results: list[Result]) -> str:
    """Write cases: with rows stored per second."""
    lines = [
        "| case | service | conns | req/s | rows/s | p50 ms | p99 ms | CPU ms/req "
        "| PG CPU ms/req | ModelQL / peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        medians = {service: _medians(samples) for service, samples in result.samples.items()}
        for target in result.case.targets:
            median = medians[target.service]
            rows = median.requests_per_s * target.rows_per_request
            subject = result.case.subject
            ratio = "" if target.service == subject else _ratio(medians[subject], median)
            lines.append(
                f"| {result.case.name} | {target.service} | {result.case.connections} "
                f"| {_rate(median.requests_per_s)} | {f'{rows:,.0f}' if rows else ''} "
                f"| {median.p50_ms:.1f} | {median.p99_ms:.1f} | {median.cpu_ms_per_request:.2f} "
                f"| {_pg(median)} | {ratio} |"
            )
    return "\n".join(lines)


def _read_table(results: list[Result]) -> str:
    """Read cases: with the ratio of ModelQL without its cache to each peer."""
    lines = [
        "| case | service | conns | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| PG CPU ms/req | ModelQL / peer | cold / peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        medians = {service: _medians(samples) for service, samples in result.samples.items()}
        for target in result.case.targets:
            median = medians[target.service]
            ours = "" if target.service == OURS else _ratio(medians[OURS], median)
            peer = target.service not in (OURS, COLD)
            cold = _ratio(medians.get(COLD), median) if peer else ""
            lines.append(
                f"| {result.case.name} | {target.service} | {result.case.connections} "
                f"| {_rate(median.requests_per_s)} | {median.p50_ms:.1f} | {median.p99_ms:.1f} "
                f"| {median.cpu_ms_per_request:.2f} | {_pg(median)} | {ours} | {cold} |"
            )
    return "\n".join(lines)


def _connection_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("connection counts like 16 or 16,64")
    return counts


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.replace("_", "").replace(",", ""))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum:,}")
        return value

    return parse


def main() -> None:
    """Parse the options, run, print the notes and tables and keep them in results/."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64, help="Write cases' connections.")
    parser.add_argument(
        "--read-connections",
        type=_connection_counts,
        default=[16],
        help="Read cases' connections, one run of each case per count (e.g. 16,64).",
    )
    parser.add_argument(
        "--predictions",
        type=_at_least(1_000),
        default=1_000_000,
        help="Stored predictions the read cases load (at least 1,000).",
    )
    parser.add_argument(
        "--case", help='"read", "write", or run only the cases whose name contains this text.'
    )
    parser.add_argument(
        "--no-cold",
        dest="cold",
        action="store_false",
        help="No second ModelQL with MODELQL_RESPONSE_CACHE=false in the read cases.",
    )
    parser.add_argument(
        "--no-postgraphile",
        dest="postgraphile",
        action="store_false",
        help="Leave PostGraphile out of the read cases.",
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/run.py drives the services with wrk: apt-get install wrk")
    results, notes = run(options)
    output = "\n\n".join([*notes, report(results)]) if notes else report(results)
    print(output)
    folder = HERE / "results"
    folder.mkdir(exist_ok=True)
    (folder / "latest.md").write_text(output + "\n")


if __name__ == "__main__":
    main()
