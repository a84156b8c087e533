"""Request budgets per API key: a default and per-key overrides, counted in memory or in Redis
(where replicas share them), over a moving window."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from modelql.services.errors import DomainError

logger = logging.getLogger(__name__)


class RateError(DomainError):
    """A rate that cannot be parsed, e.g. `5 per sec`."""


def parse_rate(text: str) -> RateLimitItem:
    """`100/second`, `5/minute`, `1000 per hour` -> a limit; RateError otherwise."""
    try:
        return parse(text)
    except ValueError:
        raise RateError(
            f"Rate {text!r} is not understood; write it like 100/second, 20/minute or 1000/hour."
        ) from None


def _async_storage_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    """Counts each key's requests; `retry_after` says how long a refused key must wait."""

    def __init__(self, storage_uri: str, *, default: str | None) -> None:
        options: dict[str, str] = {"implementation": "redispy"} if "redis" in storage_uri else {}
        self._storage = storage_from_string(_async_storage_uri(storage_uri), **options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._default = parse_rate(default) if default else None
        self._overrides: dict[str, RateLimitItem] = {}

    def _item(self, rate: str | None) -> RateLimitItem | None:
        if rate is None:
            return self._default
        if rate not in self._overrides:
            self._overrides[rate] = parse_rate(rate)
        return self._overrides[rate]

    async def retry_after(self, key_name: str, rate: str | None) -> int | None:
        """Count one request of `key_name` (whose own rate, if any, replaces the default);
        None when within budget, else the whole seconds until one more request is allowed.
        When the storage cannot be reached, requests are let through (and a warning logged)."""
        item = self._item(rate)
        if item is None:
            return None
        try:
            if await self._limiter.hit(item, key_name):
                return None
            stats = await self._limiter.get_window_stats(item, key_name)
        except Exception as error:
            logger.warning("rate limit storage unavailable, not limiting: %r", error)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))
