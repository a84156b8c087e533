"""Two `modelql serve` processes on one database and one Redis share cached answers, and no
answer either gives is ever staler than the freshness bound: generated sequences of writes
(predictions, alias moves, outcomes) and reads through either process, each read compared with
an uncached execution of the same query."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from cache_support import (
    ALIASES,
    CATALOGUE,
    LIVE,
    READ_VARIABLES,
    STATS,
    Changes,
    operations,
    post,
    set_production,
)
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from live_support import served_elsewhere
from redis_support import REDIS_URL, unique_prefix
from support import running_app

from modelql.services.shared_answers import FRESHNESS_BOUND_S
from modelql.settings import Settings


@pytest.fixture(scope="module")
def module_prefix() -> Iterator[str]:
    with unique_prefix() as prefix:
        yield prefix


@pytest.fixture(scope="module")
async def processes(
    settings: Settings, demo_catalogue: None, module_prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]]:
    """Two serve processes sharing Redis, and (in this process) one that caches nothing."""
    shared = {"MODELQL_CACHE_URL": REDIS_URL, "MODELQL_CACHE_PREFIX": module_prefix}
    uncached = settings.model_copy(update={"response_cache": False})
    async with (
        served_elsewhere(settings, shared) as first,
        served_elsewhere(settings, shared) as second,
        running_app(uncached) as (_, reference),
        httpx.AsyncClient(base_url=first) as one,
        httpx.AsyncClient(base_url=second) as two,
    ):
        yield one, two, reference


def _redis_hits(metrics: str) -> float:
    series = 'modelql_response_cache_lookups_total{layer="redis",outcome="hit"}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(series))


async def test_one_process_serves_what_the_other_computed(processes):
    one, two, _ = processes
    query = CATALOGUE.replace("algorithm", "algorithm task: algorithm")
    before = _redis_hits((await two.get("/metrics")).text)
    computed = await post(one, query)
    assert await post(two, query) == computed
    assert _redis_hits((await two.get("/metrics")).text) == before + 1


@hypothesis_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=operations(max_size=10))
@example(
    operations=[
        ("read", 0, STATS),
        ("read", 1, STATS),
        ("predict", 0, STATS),
        ("read", 1, STATS),
        ("read", 0, ALIASES),
        ("read", 1, ALIASES),
        ("alias", 0, ALIASES),
        ("read", 1, ALIASES),
        ("outcome", 1, LIVE),
        ("read", 0, LIVE),
    ]
)
async def test_no_answer_from_either_process_is_staler_than_the_bound(processes, operations):
    """A read that differs from the uncached answer is allowed only within the bound after the
    last write (through either process); it then converges."""
    reference = processes[2]
    last_write = time.monotonic()
    changes = Changes()
    try:
        for kind, process, query in operations:
            http = processes[process]
            if await changes.make(kind, http):
                last_write = time.monotonic()
                continue
            expected = await post(reference, query, READ_VARIABLES)
            while (answer := await post(http, query, READ_VARIABLES)) != expected:
                assert time.monotonic() - last_write < FRESHNESS_BOUND_S, (query, answer)
                await asyncio.sleep(0.01)
    finally:
        await set_production(processes[0], 1)
