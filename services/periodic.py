"""A background task run over and over: at once, then after each pause; a failing run is
logged and the next one tries again; stopping cancels it wherever it is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("modelql")


class PeriodicTask:
    def __init__(
        self,
        run: Callable[[], Awaitable[None]],
        *,
        pause: Callable[[], float],
        name: str,
        failure: str,
    ) -> None:
        """`pause`: seconds from the end of a run to the next; `failure`: what the log says
        when a run raises."""
        self._run = run
        self._pause = pause
        self._name = name
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        assert self._task is None, f"{self._name} is running already"
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended; nothing when it is not running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self._run()
            except Exception:
                logger.exception(self._failure)
            await asyncio.sleep(self._pause())
