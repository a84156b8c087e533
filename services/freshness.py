"""When something cached may still be served: what moves (aliases, splits, API keys) is
invalidated by notifications, and trusted for a short bound only while they cannot arrive."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Freshness:
    """An answer read at `read_at` (monotonic seconds, taken before the read) is fresh when no
    invalidation came after it and either the listener has been connected since before it or
    it is younger than `max_staleness_s`."""

    def __init__(
        self, *, max_staleness_s: float, listening_since: Callable[[], float | None]
    ) -> None:
        self._max_staleness_s = max_staleness_s
        self._listening_since = listening_since
        self._invalidated_at = -math.inf

    @classmethod
    def never(cls) -> Freshness:
        """Nothing cached is trusted (one-shot tools that read each route once)."""
        return cls(max_staleness_s=0.0, listening_since=lambda: None)

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def invalidate(self) -> None:
        self._invalidated_at = time.monotonic()

    def fresh(self, read_at: float) -> bool:
        if read_at <= self._invalidated_at:
            return False
        since = self._listening_since()
        if since is not None and read_at >= since:
            return True
        return time.monotonic() - read_at < self._max_staleness_s
