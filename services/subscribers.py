"""Open subscriptions: each a bounded queue that ends the subscription when it overflows, and
a registry that caps them per API key and ends those whose key was revoked."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from modelql.services.api_keys import KeyCache
from modelql.services.errors import DomainError

T = TypeVar("T")


class SubscriptionEndedError(DomainError):
    """The server ended a subscription; `code` says why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Subscriber(Generic[T]):
    """One open subscription: messages wait in a queue of at most `capacity`; one more ends
    the subscription (the queue is dropped), so a slow reader never holds more than that."""

    def __init__(
        self,
        *,
        select: Callable[[Any], T | None],
        capacity: int,
        caller: str | None = None,
        credential: str | None = None,
    ) -> None:
        self.select = select
        """This subscriber's part of an event, None when its filter selects nothing."""
        self.caller = caller
        self.credential = credential
        self._capacity = capacity
        self._queue: deque[T] = deque()
        self._ready = asyncio.Event()
        self.ended: SubscriptionEndedError | None = None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def offer(self, message: T) -> None:
        if self.ended is not None:
            return
        if len(self._queue) >= self._capacity:
            self.end(
                SubscriptionEndedError(
                    f"This subscription fell more than {self._capacity} messages behind and "
                    "was ended; read faster, narrow the filter, or subscribe again and catch "
                    "up with the `predictions` query.",
                    "SUBSCRIBER_TOO_SLOW",
                )
            )
            return
        self._queue.append(message)
        self._ready.set()

    def end(self, error: SubscriptionEndedError) -> None:
        """End the subscription: its reader gets `error` instead of what was waiting."""
        if self.ended is not None:
            return
        self.ended = error
        self._queue.clear()
        self._ready.set()

    async def messages(self) -> AsyncIterator[T]:
        """Messages in order; raises the reason the subscription ended."""
        while True:
            await self._ready.wait()
            if self.ended is not None:
                raise self.ended
            message = self._queue.popleft()
            if not self._queue:
                self._ready.clear()
            yield message


class Subscriptions:
    """Every subscription open in this process, by caller."""

    def __init__(self, *, max_per_key: int) -> None:
        self._max_per_key = max_per_key
        self._open: set[Subscriber[Any]] = set()

    def __len__(self) -> int:
        """Subscriptions open and not ended (an ended one may wait for its socket to unblock)."""
        return sum(1 for subscriber in self._open if subscriber.ended is None)

    @contextmanager
    def opened(self, subscriber: Subscriber[T]) -> Iterator[Subscriber[T]]:
        """Register a subscriber for the duration of the block, refusing one too many."""
        if subscriber.caller is not None:
            held = sum(
                1
                for other in self._open
                if other.caller == subscriber.caller and other.ended is None
            )
            if held >= self._max_per_key:
                raise SubscriptionEndedError(
                    f"This API key already holds {held} open subscriptions on this server, "
                    f"the most allowed; end one first.",
                    "SUBSCRIPTION_LIMIT",
                )
        self._open.add(subscriber)
        try:
            yield subscriber
        finally:
            self._open.discard(subscriber)

    async def end_revoked(self, keys: KeyCache, caller: str | None = None) -> None:
        """Check again the keys of `caller`'s subscriptions (None: everyone's), ending those
        whose key no longer authenticates."""
        for subscriber in list(self._open):
            if subscriber.credential is None or caller not in (None, subscriber.caller):
                continue
            if await keys.authenticate(subscriber.credential) is None:
                subscriber.end(
                    SubscriptionEndedError(
                        "The API key of this subscription was revoked.", "UNAUTHENTICATED"
                    )
                )
