"""Benchmarks the prediction store at scale (#17's goals): loads N predictions spread over D
days into the partitions of a fresh database (bench/quality.py's generator, inside PostgreSQL)
and adds them to the roll-ups with the writer's own statements (timed), then times the audit
page and predictionStats in-process (ASGI, no network: server time, response cache off), and
prunes the oldest 30 days as `modelql store prune` does while concurrent clients store
predictions through createPrediction and record outcomes of them through recordOutcomes,
timing their requests before and during the prune.

    .venv/bin/python bench/scale.py [--predictions 1000000] [--days 40] [--writers 4]

Uses DATABASE_URL's server, else PostgreSQL on 127.0.0.1:5432 (user postgres); creates its own
database (mqscale_...) and drops it afterwards (--keep to keep it). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import quality
from dataset import PICK_OUTCOMES, ROLLUPS, STORE_OUTCOMES, SUM_LOADED, VACUUMED
from sqlalchemy.engine import make_url

from modelql import schema_migrations
from modelql.app import create_app
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence import partitions
from modelql.persistence.database import create_engine, create_sessionmaker, libpq_url
from modelql.persistence.partitions import PartitionInterval
from modelql.runtime import store_maintenance
from modelql.services import registration
from modelql.settings import Settings

MODEL = "iris-classifier"
PRUNED_DAYS = 30
LEGACY = "prediction_partitions.predictions_legacy"
IRIS_RANGES = {
    "sepal_length": (4.3, 7.9),
    "sepal_width": (2.0, 4.4),
    "petal_length": (1.0, 6.9),
    "petal_width": (0.1, 2.5),
}
WRITE = """mutation($features: JSON!, $key: String) {
  createPrediction(input: {model: "iris-classifier", features: $features, idempotencyKey: $key}) {
    prediction { id } userErrors { code message } } }"""
RECORD = """mutation($id: ID!) {
  recordOutcomes(input: {outcomes: [{predictionId: $id, label: "setosa"}]}) {
    userErrors { code message } } }"""
KINDS = {
    "plain": "createPrediction without an idempotency key",
    "keyed": "createPrediction with an idempotency key",
    "outcome": "recordOutcomes (one outcome)",
}
WARM_UP_S = 2.0
WATCH_EVERY_S = 0.01
ACTIVE = """
SELECT extract(epoch FROM now() - query_start) * 1000 AS ms, wait_event_type = 'Lock' AS locked,
       query, (SELECT b.query FROM pg_stat_activity b
               WHERE b.pid = (pg_blocking_pids(a.pid))[1]) AS blocker
FROM pg_stat_activity a
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
"""
"""The statements running in the benchmark's database, how long each has run, whether it waits
for a lock, and the statement of the first backend it waits for."""
GOAL_READ = {"audit": "<= 15 ms", "stats": "<= 100 ms"}


@dataclass(frozen=True)
class Span:
    """Where the loaded predictions lie, [start, now): the oldest PRUNED_DAYS days end at
    `cut`, a partition boundary, so a prune can drop exactly them."""

    start: datetime
    cut: datetime
    now: datetime

    @classmethod
    def planned(cls, now: datetime, days: int, interval: PartitionInterval) -> Span:
        """At least `days` days ending `now`, the oldest PRUNED_DAYS of them whole partitions."""
        cut = interval.start(now - timedelta(days=days - PRUNED_DAYS))
        return cls(cut - timedelta(days=PRUNED_DAYS), cut, now)

    @property
    def days(self) -> float:
        return (self.now - self.start) / timedelta(days=1)


@dataclass
class Report:
    """The rows of the printed table: (what, result, goal)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, what: str, result: str, goal: str = "") -> None:
        print(f"  {what}: {result}", flush=True)
        self.rows.append((what, result, goal))

    @contextmanager
    def timed(self, what: str, goal: str = "") -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.add(what, f"{time.perf_counter() - started:,.1f} s", goal)

    def markdown(self) -> str:
        lines = ["| | result | goal |", "|---|---:|---|"]
        lines += [f"| {what} | {result} | {goal} |" for what, result, goal in self.rows]
        return "\n".join(lines)


@dataclass(frozen=True)
class Write:
    """One request: when it started and how long it took (perf_counter s), and its kind (a
    key of KINDS)."""

    started: float
    seconds: float
    kind: str

    @property
    def ended(self) -> float:
        return self.started + self.seconds


def _statement(query: str) -> str:
    """A statement's text as one line, partition names and long tails cut."""
    text = re.sub(r"_p\d{8}", "_p…", " ".join(query.split()))
    return text if len(text) <= 70 else f"{text[:69]}…"


@dataclass
class Seen:
    """Per statement, the longest it was seen running, and the longest it was seen waiting
    for a lock with the statement it waited for."""

    running: dict[str, float] = field(default_factory=dict)
    locked: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add(self, row: asyncpg.Record) -> None:
        statement, ms = _statement(row["query"]), float(row["ms"])
        self.running[statement] = max(ms, self.running.get(statement, 0.0))
        if row["locked"] and ms > self.locked.get(statement, (0.0, ""))[0]:
            self.locked[statement] = (ms, _statement(row["blocker"] or "?"))

    def report(self, report: Report, when: str, top: int) -> None:
        for statement, ms in sorted(self.running.items(), key=lambda item: -item[1])[:top]:
            waited = self.locked.get(statement)
            blocked = f"; waited {waited[0]:.0f} ms for `{waited[1]}`" if waited else ""
            report.add(f"  {when}: `{statement}`", f"{ms:,.0f} ms{blocked}")


@dataclass
class Activity:
    """What polling pg_stat_activity saw before the prune and while it ran (the same polling
    in both, so that its own cost weighs on both)."""

    before: Seen = field(default_factory=Seen)
    during: Seen = field(default_factory=Seen)
    pruning: bool = False

    async def watch(self, libpq: str, stop: asyncio.Event) -> None:
        """Poll every WATCH_EVERY_S until `stop`."""
        connection = await asyncpg.connect(libpq)
        try:
            while not stop.is_set():
                seen = self.during if self.pruning else self.before
                for row in await connection.fetch(ACTIVE):
                    seen.add(row)
                await asyncio.sleep(WATCH_EVERY_S)
        finally:
            await connection.close()


async def prepare(
    url: str,
    data: Path,
    span: Span,
    interval: PartitionInterval,
    predictions: int,
    labelled: int,
    report: Report,
) -> None:
    """Migrated, partitions over the span, the demo catalogue, the load and its roll-ups,
    outcomes, VACUUM ANALYZE; each step timed."""
    await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            (data / "artifacts").mkdir(parents=True, exist_ok=True)
            store = ArtifactStore(data / "artifacts")
            await registration.register_demo(session, store, train_demo(), actor="bench")
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(libpq_url(url))
    try:
        await connection.execute(f"ALTER TABLE predictions DETACH PARTITION {LEGACY}")
        await connection.execute(f"DROP TABLE {LEGACY}")
        for moment in (span.start, span.now):
            await partitions.ensure(connection, interval=interval, now=moment)
        # The generator predates routed_by; its rows are routed as the migration that added
        # the column routed the rows before it.
        await connection.execute(
            "ALTER TABLE predictions ALTER COLUMN routed_by SET DEFAULT 'DEFAULT'"
        )
        started = time.perf_counter()
        await quality.load(url, predictions, span.now, span.now - span.start)
        seconds = time.perf_counter() - started
        report.add(
            f"generate {predictions:,} predictions (INSERT ... SELECT, 2 loaders)",
            f"{seconds:,.1f} s ({predictions / seconds:,.0f}/s)",
        )
        await connection.execute("ALTER TABLE predictions ALTER COLUMN routed_by DROP DEFAULT")
        with report.timed("roll-ups: the writer's statements over the loaded rows"):
            async with connection.transaction():
                # The roll-ups' keys name the versions the rows were generated from: their
                # foreign-key triggers are skipped too.
                await connection.execute("SET LOCAL session_replication_role = replica")
                # Millions of (version, caller, label, hour, latency bucket) groups at scale:
                # summed in memory rather than spilled to disk.
                await connection.execute("SET LOCAL work_mem = '1GB'")
                await connection.execute(SUM_LOADED, "bench-%")
                for statement in ROLLUPS:
                    await connection.execute(statement)
        with report.timed(f"outcomes for {labelled:,} predictions"):
            async with connection.transaction():
                await connection.execute(PICK_OUTCOMES, labelled / predictions)
                for statement in STORE_OUTCOMES:
                    await connection.execute(statement)
        with report.timed("VACUUM ANALYZE"):
            for table in VACUUMED:
                await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()


async def store_size(connection: asyncpg.Connection) -> int:
    """Bytes of every partition of predictions: heap, TOAST and indexes."""
    names = [partition.name for partition in await partitions.partitions(connection)]
    return int(
        await connection.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(name::regclass)), 0) "
            "FROM unnest($1::text[]) AS name",
            names,
        )
    )


def _gb(size: int) -> str:
    return f"{size / 1e9:,.2f} GB"


async def report_sizes(connection: asyncpg.Connection, predictions: int, report: Report) -> None:
    database = await connection.fetchval("SELECT pg_database_size(current_database())")
    table = await store_size(connection)
    per_million = 1_000_000 / predictions
    report.add("database size", _gb(database))
    report.add(
        "per 1,000,000 predictions: database / predictions (7 indexes)",
        f"{database * per_million / 1e6:,.0f} MB / {table * per_million / 1e6:,.0f} MB",
    )


def settings(url: str, data: Path, interval: PartitionInterval) -> Settings:
    return quality.measuring_settings(url, data, partition_interval=interval.value, job_workers=0)


@asynccontextmanager
async def service(config: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the ASGI app, in process, its lifespan running."""
    app = create_app(config, database_url=config.database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http


async def post(http: httpx.AsyncClient, document: str, **variables: Any) -> dict[str, Any]:
    """The answer's data; SystemExit on errors."""
    response = await http.post("/graphql", json={"query": document, "variables": variables})
    body = response.json()
    if "errors" in body:
        raise SystemExit(f"{document.split()[:3]}: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


async def timed_query(
    http: httpx.AsyncClient, document: str, runs: int
) -> tuple[float, float, dict[str, Any]]:
    """Median and minimum ms of `runs` runs after two warm-ups, and the last answer."""
    times = []
    data: dict[str, Any] = {}
    for attempt in range(runs + 2):
        started = time.perf_counter()
        data = await post(http, document)
        if attempt >= 2:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), data


def _window(since: datetime | None, until: datetime | None) -> str:
    bounds = [
        f'{name}: "{moment.isoformat()}"'
        for name, moment in (("createdAfter", since), ("createdBefore", until))
        if moment is not None
    ]
    return ", ".join([f'model: "{MODEL}"', *bounds])


def audit_page(since: datetime | None = None, until: datetime | None = None) -> str:
    return f"""{{ predictions(first: 50, filter: {{{_window(since, until)}}}) {{
      nodes {{ id label confidence latencyMs createdAt caller }}
      pageInfo {{ hasNextPage endCursor }} }} }}"""


def stats(since: datetime | None = None, until: datetime | None = None) -> str:
    return f"""{{ predictionStats(filter: {{{_window(since, until)}}}) {{
      count groups(by: [LABEL]) {{ label count }} }} }}"""


async def measure_reads(http: httpx.AsyncClient, span: Span, runs: int, report: Report) -> None:
    day = (span.now - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    after_day = day + timedelta(days=1)
    cases = {
        "audit page: newest 50 of one model": ("audit", audit_page()),
        "audit page: one model, one day": ("audit", audit_page(day, after_day)),
        "predictionStats (count, groups by LABEL): one model, whole history": ("stats", stats()),
        "predictionStats (count, groups by LABEL): one model, one day": (
            "stats",
            stats(day, after_day),
        ),
    }
    for name, (kind, document) in cases.items():
        median, fastest, _ = await timed_query(http, document, runs)
        goal = GOAL_READ[kind]
        met = median <= float(goal.split()[1])
        report.add(
            name,
            f"{median:.1f} ms median, {fastest:.1f} min ({runs} runs)",
            f"{goal}: {'met' if met else 'NOT met'}",
        )


def _random_features(rng: random.Random) -> dict[str, float]:
    return {name: round(rng.uniform(low, high), 1) for name, (low, high) in IRIS_RANGES.items()}


async def write(
    http: httpx.AsyncClient,
    number: int,
    stop: asyncio.Event,
    writes: list[Write],
    stored: list[str],
) -> None:
    """Store predictions one request at a time until `stop`, their ids in `stored`; every
    other writer sends an idempotency key with each (the service then claims it in
    idempotency_records too)."""
    rng = random.Random(number)
    kind = "keyed" if number % 2 else "plain"
    sent = 0
    while not stop.is_set():
        sent += 1
        key = f"scale-{number}-{sent}" if kind == "keyed" else None
        started = time.perf_counter()
        data = (await post(http, WRITE, features=_random_features(rng), key=key))[
            "createPrediction"
        ]
        seconds = time.perf_counter() - started
        if data["userErrors"]:
            raise SystemExit(f"createPrediction: {data['userErrors']}")
        writes.append(Write(started, seconds, kind))
        stored.append(data["prediction"]["id"])


async def record(
    http: httpx.AsyncClient, stop: asyncio.Event, writes: list[Write], stored: list[str]
) -> None:
    """Record an outcome for the newest prediction stored and not yet labelled, one request at
    a time, until `stop`."""
    while not stop.is_set():
        if not stored:
            await asyncio.sleep(0.001)
            continue
        started = time.perf_counter()
        data = (await post(http, RECORD, id=stored.pop()))["recordOutcomes"]
        seconds = time.perf_counter() - started
        if data["userErrors"]:
            raise SystemExit(f"recordOutcomes: {data['userErrors']}")
        writes.append(Write(started, seconds, "outcome"))


def latencies(writes: list[Write]) -> str:
    """Count, rate, p50, p99 and max of the requests' times."""
    if not writes:
        return "no request"
    times = sorted(w.seconds * 1000 for w in writes)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    span = max(w.ended for w in writes) - min(w.started for w in writes)
    return (
        f"{len(times):,} requests ({len(times) / span:,.0f}/s): p50 {statistics.median(times):.1f}"
        f" ms, p99 {p99:.1f} ms, max {times[-1]:.1f} ms"
    )


async def prune_under_writes(
    http: httpx.AsyncClient,
    config: Settings,
    span: Span,
    writers: int,
    outcome_writers: int,
    baseline_s: float,
    report: Report,
) -> None:
    """Prune the oldest PRUNED_DAYS days as `modelql store prune --retention-days N` does
    while `writers` clients store predictions and `outcome_writers` record outcomes of them;
    the requests' times before and during it."""
    libpq = libpq_url(config.database_url)
    connection = await asyncpg.connect(libpq)
    try:
        rows_before = await connection.fetchval("SELECT count(*) FROM predictions")
        doomed = await connection.fetchval(
            "SELECT count(*) FROM predictions WHERE created_at < $1", span.cut
        )
        size_before = await store_size(connection)
        database_before = await connection.fetchval("SELECT pg_database_size(current_database())")
        stop = asyncio.Event()
        writes: list[Write] = []
        stored: list[str] = []
        tasks = [
            *(
                asyncio.create_task(write(http, number, stop, writes, stored))
                for number in range(writers)
            ),
            *(
                asyncio.create_task(record(http, stop, writes, stored))
                for _ in range(outcome_writers)
            ),
        ]
        await asyncio.sleep(WARM_UP_S)
        activity, watched = Activity(), asyncio.Event()
        watcher = asyncio.create_task(activity.watch(libpq, watched))
        baseline_from = time.perf_counter()
        await asyncio.sleep(baseline_s)
        retention_days = (datetime.now(UTC) - span.cut).days
        activity.pruning = True
        prune_from = time.perf_counter()
        dropped = await store_maintenance(config, config.database_url).prune(
            timedelta(days=retention_days)
        )
        prune_to = time.perf_counter()
        watched.set()
        await watcher
        size_after = await store_size(connection)
        database_after = await connection.fetchval("SELECT pg_database_size(current_database())")
        stop.set()
        await asyncio.gather(*tasks)
        rows_after = await connection.fetchval("SELECT count(*) FROM predictions")
    finally:
        await connection.close()
    if any(partition.upper > span.cut for partition in dropped):
        raise SystemExit(f"the prune dropped past {span.cut}: {dropped}")
    report.add(
        f"prune (`--retention-days {retention_days}`): {len(dropped)} partitions, "
        f"{(span.cut - span.start).days} days, {doomed:,} predictions",
        f"{prune_to - prune_from:.2f} s",
        "seconds",
    )
    report.add(
        "predictions' partitions (pg_total_relation_size), before -> after",
        f"{_gb(size_before)} -> {_gb(size_after)}",
        "freed at once",
    )
    report.add("database size, before -> after", f"{_gb(database_before)} -> {_gb(database_after)}")
    predicted = sum(w.kind != "outcome" for w in writes)
    report.add(
        "rows before -> after (pruned, stored by the writers meanwhile)",
        f"{rows_before:,} -> {rows_after:,} (-{doomed:,}, +{predicted:,})",
        "after = before - pruned + stored",
    )
    before = [w for w in writes if w.started >= baseline_from and w.ended <= prune_from]
    during = [w for w in writes if w.started < prune_to and w.ended > prune_from]
    clients = {"plain": writers - writers // 2, "keyed": writers // 2, "outcome": outcome_writers}
    for kind, name in KINDS.items():
        mine = [w for w in during if w.kind == kind]
        worst = max((w.seconds for w in mine), default=0.0) * 1000
        report.add(
            f"{name}, {clients[kind]} clients, {baseline_s:.0f} s before",
            latencies([w for w in before if w.kind == kind]),
        )
        report.add(
            f"{name}, {clients[kind]} clients, overlapping the prune",
            latencies(mine),
            f"no writer blocked > 100 ms: {'met' if worst <= 100 else 'NOT met'}",
        )
    report.add(
        f"statements seen (pg_stat_activity every {WATCH_EVERY_S * 1000:.0f} ms)", "longest seen"
    )
    activity.before.report(report, "before the prune", 3)
    activity.during.report(report, "during the prune", 8)
    if rows_after != rows_before - doomed + predicted:
        raise SystemExit("rows after the prune do not add up")


async def run(options: argparse.Namespace, url: str, data: Path) -> Report:
    interval = PartitionInterval(options.interval)
    span = Span.planned(datetime.now(UTC), options.days, interval)
    labelled = options.predictions // 100 if options.labelled is None else options.labelled
    report = Report()
    report.add(
        "predictions loaded",
        f"{options.predictions:,} over {span.days:.1f} days ({span.start:%Y-%m-%d %H:%M} to "
        f"{span.now:%Y-%m-%d %H:%M} UTC), partitions by {interval.value}",
    )
    await prepare(url, data, span, interval, options.predictions, labelled, report)
    connection = await asyncpg.connect(libpq_url(url))
    try:
        await report_sizes(connection, options.predictions, report)
        stored = await connection.fetchval(
            "SELECT count(*) FROM predictions p JOIN models m ON m.id = p.model_id "
            "WHERE m.name = $1 AND p.created_at >= $2 AND p.created_at < $3",
            MODEL,
            span.start,
            span.cut,
        )
    finally:
        await connection.close()
    config = settings(url, data, interval)
    pruned_window = stats(span.start, span.cut)
    async with service(config) as http:
        await measure_reads(http, span, options.runs, report)
        _, _, before = await timed_query(http, pruned_window, 1)
        await prune_under_writes(
            http,
            config,
            span,
            options.writers,
            options.outcome_writers,
            options.baseline,
            report,
        )
        median, _, after = await timed_query(http, pruned_window, options.runs)
        gone = await post(http, audit_page(span.start, span.cut))
    counts = [answer["predictionStats"]["count"] for answer in (before, after)]
    report.add(
        "predictionStats over the pruned 30 days, one model: rows stored before; count before "
        "-> after (roll-ups kept)",
        f"{stored:,}; {counts[0]:,} -> {counts[1]:,} in {median:.1f} ms; "
        f"{len(gone['predictions']['nodes'])} rows left in that window",
        f"same count: {'met' if stored == counts[0] == counts[1] else 'NOT met'}",
    )
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument(
        "--days", type=int, default=40, help=f"At least this many (> {PRUNED_DAYS})."
    )
    parser.add_argument("--interval", choices=[i.value for i in PartitionInterval], default="week")
    parser.add_argument("--labelled", type=int, help="Predictions with an outcome (default 1%%).")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--writers", type=int, default=4, help="Concurrent createPrediction clients."
    )
    parser.add_argument(
        "--outcome-writers",
        type=int,
        default=1,
        help="Concurrent recordOutcomes clients (labelling what the writers stored).",
    )
    parser.add_argument(
        "--baseline", type=float, default=10.0, help="Seconds of writes before the prune."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    options = parser.parse_args()
    if options.days <= PRUNED_DAYS:
        parser.error(f"--days must exceed {PRUNED_DAYS}")
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"mqscale_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(libpq_url(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    print(f"Database {name}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="mqscale") as data:
            report = await run(options, url, Path(data))
    finally:
        if not options.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"\n{report.markdown()}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
