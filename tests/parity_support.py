"""The harness of the parity tests: generated requests sent to an app with a direct executor
and to one without, from Hypothesis's worker thread onto the test's event loop (where the apps
live), counting how many the direct executor answered itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from unittest.mock import patch

import httpx
from hypothesis import HealthCheck, settings

EXAMPLES = 1_000
"""Generated requests per parity test and run."""

parity_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Executor(Protocol):
    async def execute(self, *args: Any) -> Any: ...


@contextmanager
def answers_counted(executor: type[Executor]) -> Iterator[list[bool]]:
    """Record, per call of `executor.execute`, whether it answered (None: it handed back)."""
    answered: list[bool] = []
    execute = executor.execute

    async def counted(self: Executor, *args: Any) -> Any:
        result = await execute(self, *args)
        answered.append(result is not None)
        return result

    with patch.object(executor, "execute", counted):
        yield answered


def on_loop(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[Coroutine[Any, Any, httpx.Response]], httpx.Response]:
    """Run a request on the test's loop from Hypothesis's thread and wait for its answer."""

    def run(coroutine: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    return run
