"""Alert changes fanned out to this process's subscribers: each ALERTS_CHANNEL notification
(from any replica) names the rules that changed; a subscriber that falls behind by more than
its queue is ended rather than slowing the others."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from modelql.services.subscribers import SubscriptionEndedError


class AlertChanges:
    def __init__(self, *, queue_size: int) -> None:
        self._queue_size = queue_size
        self._queues: set[asyncio.Queue[frozenset[str] | None]] = set()

    def publish(self, payload: str) -> None:
        """Listener callback: the payload is the changed rules' ids, comma-separated."""
        ids = frozenset(part for part in payload.split(",") if part)
        if not ids:
            return
        for queue in list(self._queues):
            try:
                queue.put_nowait(ids)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        """The ids of the rules changed, one set per notification, until cancelled."""
        queue: asyncio.Queue[frozenset[str] | None] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            while True:
                ids = await queue.get()
                if ids is None:
                    raise SubscriptionEndedError("Fell behind the alerts.", "SUBSCRIBER_TOO_SLOW")
                yield ids
        finally:
            self._queues.discard(queue)
