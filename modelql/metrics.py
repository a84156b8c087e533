"""Prometheus metrics: requests, predictions, inference, the connection pool, the model cache, the
inference cache and rate limiting; one process or, under `serve --workers N`, prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set by the CLI, before any worker imports this
module)."""

from __future__ import annotations

import os
import re
from collections.abc import Sized

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from modelql.graph.request_log import RequestLog
from modelql.persistence.tables import AlertRule
from modelql.services.model_access import ModelLimit

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 200  # distinct names kept as labels per process; later ones are "other"
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

REQUESTS = Histogram(
    "modelql_graphql_request_duration_seconds",
    "GraphQL requests by operation type, operation name and outcome, with their latency.",
    ["operation_type", "operation_name", "outcome"],
)
RATE_LIMITED = Counter(
    "modelql_rate_limited_requests", "Requests refused because their key was over its budget."
)
PREDICTIONS_STORED = Counter(
    "modelql_predictions_stored", "Predictions stored, by model and version.", ["model", "version"]
)
PREDICTIONS_REJECTED = Counter(
    "modelql_predictions_rejected",
    "Prediction instances refused (user errors), by model and version (empty when unresolved).",
    ["model", "version"],
)
INFERENCE_SECONDS = Histogram(
    "modelql_inference_duration_seconds", "Time of one estimator call (one batch)."
)
INFERENCE_BATCH_SIZE = Histogram(
    "modelql_inference_batch_size",
    "Rows scored by one estimator call.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
POOL_IN_USE = Gauge(
    "modelql_db_pool_connections_in_use",
    "Database connections checked out of the pool (summed over live workers; sampled after "
    "each request and at each scrape).",
    multiprocess_mode="livesum",
)
MODEL_CACHE_SIZE = Gauge(
    "modelql_model_cache_versions",
    "Model versions loaded in memory (the largest cache among workers).",
    multiprocess_mode="max",
)
INFERENCE_CACHE_LOOKUPS = Counter(
    "modelql_inference_cache_lookups",
    "Rows looked up in the inference cache (versions worth caching only), by outcome: hit "
    "(the estimator skipped them) or miss (scored, then kept).",
    ["outcome"],
)
INFERENCE_CACHE_ROWS = Gauge(
    "modelql_inference_cache_rows",
    "Scored rows kept by the inference cache (summed over live workers).",
    multiprocess_mode="livesum",
)
SHADOW_ROWS = Counter(
    "modelql_shadow_rows",
    "Primary rows handed to shadow scoring, by outcome: stored (shadow answers stored, one per "
    "shadow version), shed (the queue was full: not scored), lost (a storing failure, or "
    "unscored at shutdown).",
    ["outcome"],
)
SHADOW_QUEUE_ROWS = Gauge(
    "modelql_shadow_queue_rows",
    "Primary rows waiting for shadow scoring (summed over live workers).",
    multiprocess_mode="livesum",
)

RESPONSE_CACHE_LOOKUPS = Counter(
    "modelql_response_cache_lookups",
    "Cacheable queries by layer and outcome. memory: hit (a kept answer), shared (a concurrent "
    "miss's execution answered it) or miss; redis (after a miss in memory): hit, miss "
    "(executed) or unavailable (Redis failed or is left alone after a failure: executed).",
    ["layer", "outcome"],
)
RESPONSE_CACHE_ERRORS = Counter(
    "modelql_response_cache_errors",
    "Calls to the shared cache that failed or timed out, by layer.",
    ["layer"],
)
RESPONSE_CACHE_ENTRIES = Gauge(
    "modelql_response_cache_entries",
    "Answers kept in memory (summed over live workers).",
    multiprocess_mode="livesum",
)
RESPONSE_CACHE_BYTES = Gauge(
    "modelql_response_cache_bytes",
    "JSON bytes of the answers kept in memory (summed over live workers).",
    multiprocess_mode="livesum",
)
SHARED_CACHE_ENTRIES = Gauge(
    "modelql_response_cache_shared_entries",
    "Answers kept in Redis by every replica, not yet expired (read at scrape).",
    multiprocess_mode="mostrecent",
)
SHARED_CACHE_BYTES = Gauge(
    "modelql_response_cache_shared_bytes",
    "JSON bytes of the answers kept in Redis (read at scrape).",
    multiprocess_mode="mostrecent",
)


class PrometheusCacheMetrics:
    """What the response cache reports: each lookup, its size after each change, and the
    shared layer's failures."""

    def __init__(self) -> None:
        self._lookups = {
            (layer, outcome): RESPONSE_CACHE_LOOKUPS.labels(layer=layer, outcome=outcome)
            for layer, outcomes in (
                ("memory", ("hit", "shared", "miss")),
                ("redis", ("hit", "miss", "unavailable")),
            )
            for outcome in outcomes
        }
        self._failures = RESPONSE_CACHE_ERRORS.labels(layer="redis")

    def looked_up(self, outcome: str, layer: str) -> None:
        self._lookups[layer, outcome].inc()

    def resized(self, entries: int, size_bytes: int) -> None:
        RESPONSE_CACHE_ENTRIES.set(entries)
        RESPONSE_CACHE_BYTES.set(size_bytes)

    def failed(self) -> None:
        self._failures.inc()


class PrometheusInferenceCacheMetrics:
    """What the inference cache reports: its hits and misses, and its size after each change."""

    def __init__(self) -> None:
        self._hits = INFERENCE_CACHE_LOOKUPS.labels(outcome="hit")
        self._misses = INFERENCE_CACHE_LOOKUPS.labels(outcome="miss")

    def looked_up(self, hits: int, misses: int) -> None:
        if hits:
            self._hits.inc(hits)
        if misses:
            self._misses.inc(misses)

    def resized(self, rows: int) -> None:
        INFERENCE_CACHE_ROWS.set(rows)


class PrometheusShadowMetrics:
    """What shadow scoring reports: rows stored, shed or lost, and the queue's length."""

    def shadow_rows(self, outcome: str, count: int) -> None:
        if count:
            SHADOW_ROWS.labels(outcome=outcome).inc(count)

    def shadow_queue(self, rows: int) -> None:
        SHADOW_QUEUE_ROWS.set(rows)


class PrometheusPredictionMetrics:
    """What the prediction pipeline reports: stored and rejected predictions, inference."""

    def stored(self, model: str, version: int, count: int) -> None:
        PREDICTIONS_STORED.labels(model=model, version=str(version)).inc(count)

    def rejected(self, model: str, version: int | None, count: int) -> None:
        label = "" if version is None else str(version)
        PREDICTIONS_REJECTED.labels(model=model, version=label).inc(count)

    def inference(self, seconds: float, batch_size: int) -> None:
        INFERENCE_SECONDS.observe(seconds)
        INFERENCE_BATCH_SIZE.observe(batch_size)


class RequestMetrics:
    """Observes each GraphQL request once, where its log line is written; client-chosen
    operation names are kept only while they are few and well-formed (bounded labels)."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._series: dict[tuple[str, str, str], Histogram] = {}
        """REQUESTS' series by labels (looking one up costs more than observing)."""

    def observe(self, scope: Scope, log: RequestLog, outcome: str, seconds: float) -> None:
        runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
        if runtime is not None:
            sample(runtime.engine, runtime.model_cache)
        if outcome == "rate_limited":
            RATE_LIMITED.inc()
        if not scope["path"].startswith("/graphql"):
            return
        labels = (log.operation_type or "none", self._label(log.operation_name), outcome)
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = REQUESTS.labels(*labels)
        series.observe(seconds)

    def _label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if _OPERATION_NAME.fullmatch(name) and len(self._names) < MAX_OPERATION_NAMES:
            self._names.add(name)
            return name
        return "other"


def sample(engine: AsyncEngine, model_cache: Sized) -> None:
    """Set this process's gauges: sampled after each request and at each scrape, so every
    worker's file holds its latest values for the multiprocess collector."""
    pool = engine.sync_engine.pool
    POOL_IN_USE.set(pool.checkedout() if isinstance(pool, QueuePool) else 0)
    MODEL_CACHE_SIZE.set(len(model_cache))


def process_exiting() -> None:
    """In multiprocess mode, drop this worker's live gauges (pool in use) from the sums."""
    if MULTIPROCESS_ENV in os.environ:
        multiprocess.mark_process_dead(os.getpid())


def exposition() -> bytes:
    """Every metric in the Prometheus text format, over all workers in multiprocess mode."""
    if MULTIPROCESS_ENV not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


ALERT_STATES = ("ok", "pending", "firing", "resolved")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alert_series(rules: list[tuple[AlertRule, str]]) -> bytes:
    """The alert rules' series as last evaluated (read from the database, so the same from
    every replica and worker): the value each rule watches and its state."""
    lines = [
        "# HELP modelql_alert_rule_value The series an alert rule watches, as last evaluated.",
        "# TYPE modelql_alert_rule_value gauge",
    ]
    states = [
        "# HELP modelql_alert_rule_state 1 for the alert rule's current state, else 0.",
        "# TYPE modelql_alert_rule_state gauge",
    ]
    for rule, model in rules:
        labels = f'rule="{_label(rule.name)}",model="{_label(model)}",signal="{rule.signal}"'
        if rule.last_value is not None:
            lines.append(f"modelql_alert_rule_value{{{labels}}} {rule.last_value!r}")
        states.extend(
            f'modelql_alert_rule_state{{{labels},state="{state}"}} {int(rule.state == state)}'
            for state in ALERT_STATES
        )
    return ("\n".join(lines + states) + "\n").encode()


MODEL_LABEL = re.compile(r'[{,]model="((?:[^"\\]|\\.)*)"')


def within(text: bytes, limit: ModelLimit) -> bytes:
    """The exposition without the samples labelled with a model outside `limit`."""
    kept = []
    for line in text.decode().splitlines():
        found = MODEL_LABEL.search(line) if not line.startswith("#") else None
        if found is None or limit.allows(found.group(1)):  # model names need no escaping
            kept.append(line)
    return ("\n".join(kept) + "\n").encode()


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics. No key is needed; a presented Bearer key is checked (401 when unknown),
    and a key limited to models sees only the series of its models (and those of no model)."""
    runtime = getattr(request.app.state, "runtime", None)
    body = b""
    limit: ModelLimit | None = None
    if runtime is not None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            caller = await runtime.graph_dependencies.keys.authenticate(key.strip())
            if caller is None:
                return Response("Unknown or revoked API key.\n", status_code=401)
            limit = caller.models
        sample(runtime.engine, runtime.model_cache)
        shared = getattr(request.app.state, "shared_answers", None)
        size = await shared.size() if shared is not None else None
        if size is not None:
            SHARED_CACHE_ENTRIES.set(size[0])
            SHARED_CACHE_BYTES.set(size[1])
        body = alert_series(await runtime.graph_dependencies.alert_rules.watched())
    text = exposition() + body
    return Response(within(text, limit) if limit else text, media_type=CONTENT_TYPE_LATEST)
