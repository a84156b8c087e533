"""Benchmarks statistics and live quality at scale: loads N predictions spread over 30 days
(generated inside PostgreSQL, no round trip per row, in time order with UUIDv7-shaped ids as
the service stores them) and M outcomes into a fresh database,
back-fills the roll-ups through the quality migration (timed), then times GraphQL queries
in-process (ASGI, no network: server time; the response cache off, so each query executes).

    .venv/bin/python bench/quality.py [--predictions 1000000] [--labelled 500000] [--runs 7]

Uses DATABASE_URL's server, else PostgreSQL on 127.0.0.1:5432 (user postgres); creates its
own database and drops it afterwards (--keep to keep it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from alembic import command
from dataset import PICK_OUTCOMES, STORE_OUTCOMES
from sqlalchemy.engine import make_url

from modelql import schema_migrations
from modelql.app import create_app
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.services import registration
from modelql.settings import Settings

BEFORE_QUALITY = "20261122_02"
DAYS = 30

LOAD_PREDICTIONS = """
INSERT INTO predictions (id, model_id, model_version_id, inputs, label, value, probabilities,
                         confidence, latency_ms, request_id, caller, batch_index, created_at)
SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::int8), 12, '0') || '7'
        || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid,
       v.model_id, v.id,
       jsonb_build_object('sepal_length', round((4 + random() * 4)::numeric, 1),
                          'sepal_width', round((2 + random() * 2.5)::numeric, 1),
                          'petal_length', round((1 + random() * 6)::numeric, 1),
                          'petal_width', round((0.1 + random() * 2.4)::numeric, 1)),
       CASE WHEN v.labels IS NOT NULL
            THEN v.labels[1 + (g % array_length(v.labels, 1))] END,
       CASE WHEN v.labels IS NULL THEN 50 + random() * 250 END,
       NULL,
       CASE WHEN v.labels IS NOT NULL THEN 0.34 + random() * 0.66 END,
       exp(ln(0.05) + random() * ln(4000)),
       'bench-' || (g / 10), 'caller-' || ((g / 7) % 5), g % 10,
       t.at
FROM generate_series($3::int8, $4::int8) AS g
CROSS JOIN LATERAL (SELECT $2::timestamptz - $5::interval * (1 - g::float8 / $1)) AS t(at)
JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS slot, id, model_id, labels
      FROM model_versions) AS v ON v.slot = g % (SELECT count(*) FROM model_versions)
"""
"""Predictions $3..$4 of $1, spread evenly over the span $5 ending at $2."""


def queries(now: datetime) -> dict[str, tuple[str, str]]:
    """Benchmark name -> (goal, GraphQL document)."""
    month_ago = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    day = (now - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "predictionStats, one model": (
            "<= 100 ms",
            """{ predictionStats(filter: {model: "iris-classifier"}) { count
              labelCounts { label count } meanLatencyMs p95LatencyMs meanConfidence labelled
              accuracy firstAt lastAt } }""",
        ),
        "groups(by: [VERSION, TIME], DAY), 30 days": (
            "<= 200 ms",
            f"""{{ predictionStats(filter: {{createdAfter: "{month_ago.isoformat()}"}}) {{
              groups(by: [VERSION, TIME], interval: DAY, first: 1000) {{
                version bucket count meanLatencyMs p95LatencyMs labelled accuracy }} }} }}""",
        ),
        "audit page: model, label, one day": (
            "<= 15 ms",
            f"""{{ predictions(first: 50, filter: {{model: "iris-classifier", label: "setosa",
              createdAfter: "{day.isoformat()}",
              createdBefore: "{(day + timedelta(days=1)).isoformat()}"}}) {{
              nodes {{ id label confidence latencyMs createdAt caller }}
              pageInfo {{ hasNextPage endCursor }} }} }}""",
        ),
        "performance(split: LIVE), all slices, one version (raw)": (
            "(no goal)",
            """{ model(name: "iris-classifier") { version(number: 1) {
              performance(split: LIVE) { slice numSamples metrics { name value } } } } }""",
        ),
        "metric(split: LIVE), every version": (
            "<= 300 ms",
            """{ models { nodes { name versions { nodes { number
              f1: metric(name: "f1_macro", split: LIVE) r2: metric(name: "r2", split: LIVE)
            } } } } }""",
        ),
        "predictionStats, raw table (minConfidence)": (
            "(fallback)",
            """{ predictionStats(filter: {model: "iris-classifier", minConfidence: 0}) {
              count meanLatencyMs p95LatencyMs } }""",
        ),
    }


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _timed(label: str, work: Awaitable[object]) -> float:
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    print(f"  {label}: {elapsed:.1f} s", flush=True)
    del result
    return elapsed


LOADERS = 2
"""Concurrent connections that generate predictions (one INSERT uses one core)."""


async def load(
    url: str, predictions: int, now: datetime, span: timedelta = timedelta(days=DAYS)
) -> None:
    """Generate predictions 1..N over `span` ending at `now`, in LOADERS slices at once. The
    generated rows reference existing versions by construction, so the load skips the
    foreign-key triggers (session_replication_role = replica); CHECK constraints and indexes
    still apply."""

    async def load_slice(first: int, last: int) -> None:
        connection = await asyncpg.connect(_libpq(url))
        try:
            await connection.execute("SET session_replication_role = replica")
            await connection.execute(LOAD_PREDICTIONS, predictions, now, first, last, span)
        finally:
            await connection.close()

    size = -(-predictions // LOADERS)
    await asyncio.gather(
        *(
            load_slice(start, min(start + size - 1, predictions))
            for start in range(1, predictions + 1, size)
        )
    )


async def prepare(url: str, data_dir: Path, predictions: int, labelled: int) -> datetime:
    """Demo catalogue, predictions, back-fill (timed), outcomes; returns the load's `now`."""
    await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
    engine = create_engine(url)
    async with create_sessionmaker(engine).begin() as session:
        store = ArtifactStore(data_dir / "artifacts")
        (data_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        await registration.register_demo(session, store, train_demo(), actor="bench")
    await engine.dispose()
    await asyncio.to_thread(
        command.downgrade, schema_migrations.alembic_config(url), BEFORE_QUALITY
    )
    now = datetime.now(UTC)
    connection = await asyncpg.connect(_libpq(url))
    try:
        await _timed(f"load {predictions:,} predictions", load(url, predictions, now))
        await _timed("VACUUM ANALYZE", connection.execute("VACUUM ANALYZE predictions"))
    finally:
        await connection.close()
    started = time.perf_counter()
    await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
    print(f"  migration with roll-up back-fill: {time.perf_counter() - started:.1f} s")
    connection = await asyncpg.connect(_libpq(url))
    try:
        async with connection.transaction():
            await connection.execute(PICK_OUTCOMES, labelled / predictions)
            for statement in STORE_OUTCOMES:
                await connection.execute(statement)
        count = await connection.fetchval("SELECT count(*) FROM latest_outcomes")
        print(f"  {count:,} labelled predictions")
        for table in (
            "prediction_outcomes",
            "latest_outcomes",
            "prediction_rollups",
            "prediction_daily_rollups",
            "outcome_rollups",
        ):
            await connection.execute(f"VACUUM ANALYZE {table}")
        rollups = await connection.fetchval("SELECT count(*) FROM prediction_rollups")
        print(f"  {rollups:,} roll-up rows")
    finally:
        await connection.close()
    return now


def measuring_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    """The service as a measurement runs it: answers executed (no response cache), quiet
    logs, timeouts long enough for the largest stores."""
    values: dict[str, object] = {
        "database_url": url,
        "data_dir": data_dir,
        "auto_migrate": False,
        "log_json": False,
        "log_level": "WARNING",
        "response_cache": False,
        "max_page_size": 100,
        "db_statement_timeout_ms": 120_000,
        "execution_timeout_s": 120,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def measure(url: str, data_dir: Path, now: datetime, runs: int) -> None:
    settings = measuring_settings(url, data_dir)
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            print("\n| query | goal | median ms | min ms | runs |\n|---|---|---:|---:|---:|")
            for name, (goal, document) in queries(now).items():
                times = []
                for attempt in range(runs + 2):
                    started = time.perf_counter()
                    response = await http.post("/graphql", json={"query": document})
                    elapsed = (time.perf_counter() - started) * 1000
                    body = response.json()
                    if "errors" in body:
                        raise SystemExit(f"{name}: {body['errors']}")
                    if attempt >= 2:
                        times.append(elapsed)
                print(
                    f"| {name} | {goal} | {statistics.median(times):.1f} | {min(times):.1f} "
                    f"| {runs} |",
                    flush=True,
                )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--labelled", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    options = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"modelql_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_libpq(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    print(f"Database {name}: {options.predictions:,} predictions, {options.labelled:,} labelled")
    try:
        with tempfile.TemporaryDirectory(prefix="mqbench") as data:
            now = await prepare(url, Path(data), options.predictions, options.labelled)
            await measure(url, Path(data), now, options.runs)
    finally:
        if not options.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
