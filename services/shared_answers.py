"""Query answers shared by replicas through Redis (`MODELQL_CACHE_URL`). An answer is stored
under its key and the shared generations of what it read, for no longer than the freshness
bound: a moved generation makes it unreachable at once, and an answer whose change was never
announced (Redis unreachable when it moved) expires within the bound anyway. Redis slow or
down costs one short timeout, then nothing for a while: the caller answers from memory."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from modelql.services.generations import Dataset

logger = logging.getLogger(__name__)

FRESHNESS_BOUND_S = 1.0
"""Longest a shared answer lives after the generations it was stored under were taken."""
MIN_TTL_MS = 10
"""An answer with less life left than this is not worth storing."""
WARN_EVERY_S = 60.0
"""Outages closer together than this (a flapping link, a saturated event loop) log one warning."""

T = TypeVar("T")

_LOOK_UP = """
local parts = {}
for i, value in ipairs(redis.call('MGET', unpack(KEYS))) do parts[i] = value or '0' end
local generations = table.concat(parts, '.')
local key = ARGV[1] .. ':' .. generations
local answer = redis.call('GET', key)
if not answer then return {generations, false, 0} end
return {generations, answer, redis.call('PTTL', key)}
"""

_SIZE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local entries, bytes = 0, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  entries = entries + 1
  bytes = bytes + tonumber(string.match(member, '^(%d+)|'))
end
return {entries, bytes}
"""


class SharedObserver(Protocol):
    def failed(self) -> None:
        """A call to Redis failed or timed out."""


@dataclass(frozen=True)
class Found:
    """What a look-up found: the shared generations now, and the answer kept under them."""

    generations: str
    answer: bytes | None
    ttl_s: float
    """The answer's life left."""


class SharedAnswers:
    """Answers and generations in Redis under `prefix`; every call bounded by `timeout_s`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_s: float,
        retry_after_s: float = 1.0,
        observer: SharedObserver | None = None,
    ) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s
        self._observer = observer
        self._look_up = self._redis.register_script(_LOOK_UP)
        self._size = self._redis.register_script(_SIZE)
        self._down_until = 0.0
        self._down = False
        self._warned_at = -math.inf
        self._dirty: set[Dataset] = set()
        self._announcing: asyncio.Task[None] | None = None

    def _answer_key(self, key: str) -> str:
        return f"{self._prefix}a:{key}"

    async def look_up(self, key: str, datasets: Iterable[Dataset]) -> Found | None:
        """The current generations of `datasets` and the answer kept for `key` under them;
        None when Redis does not answer."""
        counters = [self._generation_key(d) for d in datasets] or [self._prefix + "g:"]
        reply = await self._call(lambda: self._look_up(keys=counters, args=[self._answer_key(key)]))
        if reply is None:
            return None
        generations, answer, ttl_ms = reply
        return Found(generations.decode(), answer or None, int(ttl_ms) / 1000)

    async def keep(self, key: str, generations: str, answer: bytes, age_s: float) -> None:
        """Store `answer`, read `age_s` ago under `generations`, for what is left of the bound."""
        ttl_ms = int((FRESHNESS_BOUND_S - age_s) * 1000)
        if ttl_ms < MIN_TTL_MS:
            return
        stored = f"{self._answer_key(key)}:{generations}"
        now_ms = int(time.time() * 1000)

        async def store() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(stored, answer, px=ttl_ms)
                index = self._index_key  # what `size` reads; pruned here, gone once idle
                pipe.zremrangebyscore(index, "-inf", now_ms)
                pipe.zadd(index, {f"{len(answer)}|{stored}": now_ms + ttl_ms})
                pipe.pexpire(index, int(FRESHNESS_BOUND_S * 1000))
                await pipe.execute()

        await self._call(store)

    def changed(self, datasets: Iterable[Dataset]) -> None:
        """Move the shared generations of `datasets` (soon, coalesced, in the background)."""
        self._dirty.update(datasets)
        if self._announcing is not None and not self._announcing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a one-shot tool): the bound covers it
        self._announcing = loop.create_task(self._announce())

    async def _announce(self) -> None:
        while self._dirty:
            datasets = sorted(self._dirty)
            self._dirty.clear()
            await self._call(functools.partial(self._move, datasets))

    async def _move(self, datasets: list[Dataset]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for dataset in datasets:
                pipe.incr(self._generation_key(dataset))
            await pipe.execute()

    async def size(self) -> tuple[int, int] | None:
        """Answers stored and not expired, and their bytes; None when Redis does not answer."""
        reply = await self._call(
            lambda: self._size(keys=[self._index_key], args=[int(time.time() * 1000)])
        )
        return None if reply is None else (int(reply[0]), int(reply[1]))

    async def close(self) -> None:
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)
        await self._redis.aclose()

    @property
    def _index_key(self) -> str:
        return f"{self._prefix}index"

    def _generation_key(self, dataset: Dataset) -> str:
        return f"{self._prefix}g:{dataset.value}"

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call()`'s result; None, at once, while Redis is taken to be down, or when it fails
        (then Redis is left alone for `retry_after_s`; the first failure of an outage is
        logged, at most once a minute)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await call()
        except Exception as error:  # whatever it is, the request is answered without Redis
            self._down_until = time.monotonic() + self._retry_after_s
            if self._observer is not None:
                self._observer.failed()
            if not self._down:
                self._down = True
                if time.monotonic() - self._warned_at >= WARN_EVERY_S:
                    self._warned_at = time.monotonic()
                    logger.warning(
                        "shared response cache unavailable, answering from memory: %r", error
                    )
            return None
        if self._down:
            self._down = False
            logger.info("shared response cache reachable again")
        return result
