"""Answers to queries kept per process: keyed by the normalised document, the operation, the
variables, the caller's scopes and model limit (one key's answer never serves a key limited
otherwise); valid while the generations of the datasets the document reads have not moved
(`answer_dependencies`), for at most a time-to-live. An answer that carried errors is never
kept. Concurrent misses of one key share one execution. With a shared layer (Redis), a miss in
memory looks there before executing, and what it executes is shared."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson
from cachetools import LRUCache
from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationType,
    get_operation_ast,
    print_ast,
    print_schema,
)
from strawberry.types import ExecutionResult

from modelql.graph.answer_dependencies import datasets_read
from modelql.graph.documents import Prepared
from modelql.services.generations import Dataset, Generations, Stamp
from modelql.services.shared_answers import Found, SharedAnswers

Data = dict[str, Any]


class CacheObserver(Protocol):
    def looked_up(self, outcome: str, layer: str) -> None:
        """In `memory`: `hit`, `miss` or `shared` (a concurrent miss's execution answered it);
        in `redis` (after a miss in memory): `hit`, `miss` or `unavailable`."""

    def resized(self, entries: int, size_bytes: int) -> None: ...


@dataclass(frozen=True)
class CachePlan:
    """What a query document's answers depend on, worked out once per query text."""

    digest: str
    datasets: tuple[Dataset, ...]
    operation_name: str | None
    """The operation's name in the document (for the request's log line)."""


@dataclass(frozen=True)
class _Answer:
    data: Data
    stamp: Stamp
    size: int
    expires_at: float
    """Monotonic seconds."""


Key = tuple[str, str, frozenset[str], str | None]


class ResponseCache:
    """A size-bounded LRU of query answers (bytes of their JSON encoding)."""

    def __init__(
        self,
        *,
        schema: GraphQLSchema,
        prepare: Callable[[str, GraphQLSchema], Prepared],
        generations: Generations,
        max_bytes: int,
        ttl_s: float,
        plan_cache_size: int,
        observer: CacheObserver | None = None,
        shared: SharedAnswers | None = None,
    ) -> None:
        self._schema = schema
        self._prepare = prepare
        self._generations = generations
        self._ttl_s = ttl_s
        self._answers: LRUCache[Key, _Answer] = LRUCache(max_bytes, getsizeof=_size_of)
        self._in_flight: dict[Key, tuple[Stamp, asyncio.Future[Data | None]]] = {}
        self._observer = observer
        self._plans = lru_cache(maxsize=plan_cache_size)(self._plan)
        self._shared = shared
        self._schema_digest = hashlib.sha256(print_schema(schema).encode()).hexdigest()

    def plan(self, query: str, operation_name: object) -> CachePlan | None:
        """As `_plan`; None for an operation name that is not a string (the general path
        refuses it)."""
        if not isinstance(operation_name, str | None):
            return None
        return self._plans(query, operation_name)

    def _plan(self, query: str, operation_name: str | None) -> CachePlan | None:
        """None for what is never kept: mutations, subscriptions, invalid documents."""
        try:
            document, errors = self._prepare(query, self._schema)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        if errors or operation is None or operation.operation is not OperationType.QUERY:
            return None
        normalised = f"{operation_name or ''}\n{print_ast(document)}"
        return CachePlan(
            digest=hashlib.sha256(normalised.encode()).hexdigest(),
            datasets=datasets_read(self._schema, document),
            operation_name=operation.name.value if operation.name else None,
        )

    async def answer(
        self,
        plan: CachePlan,
        variables: Mapping[str, object] | None,
        scopes: frozenset[str],
        limit: str | None,
        execute: Callable[[], Awaitable[ExecutionResult]],
    ) -> ExecutionResult:
        """The kept answer when it is current, else `execute()`'s (kept when error-free);
        `limit` is the text of the caller's model limit (None: every model)."""
        canonical = _canonical(variables)
        if canonical is None:
            self._observe("miss")
            return await execute()
        key: Key = (plan.digest, canonical, scopes, limit)
        answer = self._answers.get(key)
        if answer is not None and self._current(plan.datasets, answer.stamp, answer.expires_at):
            self._observe("hit")
            return ExecutionResult(data=answer.data, errors=None)
        shared = self._in_flight.get(key)
        if shared is not None and self._current(
            plan.datasets, shared[0], shared[0].read_at + self._ttl_s
        ):
            data = await asyncio.shield(shared[1])
            if data is not None:
                self._observe("shared")
                return ExecutionResult(data=data, errors=None)
        self._observe("miss")
        return await self._execute(key, plan, execute)

    async def _execute(
        self, key: Key, plan: CachePlan, execute: Callable[[], Awaitable[ExecutionResult]]
    ) -> ExecutionResult:
        stamp = self._generations.stamp(plan.datasets)
        future: asyncio.Future[Data | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (stamp, future)
        data: Data | None = None
        try:
            shared_key = self._shared_key(key) if self._shared is not None else ""
            found = await self._from_shared(shared_key, plan)
            if found is not None and found.answer is not None:
                data = orjson.loads(found.answer)
                size = len(found.answer) + len(key[0]) + len(key[1])
                self._keep(key, _Answer(data, stamp, size, time.monotonic() + found.ttl_s))
                return ExecutionResult(data=data, errors=None)
            result = await execute()
            data = result.data
            encoded = _encoded(data) if not result.errors else None
            if encoded is not None and data is not None:
                size = len(encoded) + len(key[0]) + len(key[1])
                self._keep(key, _Answer(data, stamp, size, stamp.read_at + self._ttl_s))
                future.set_result(data)  # waiters need not wait for Redis
                if found is not None and self._generations.current(plan.datasets, stamp):
                    await self._to_shared(shared_key, found.generations, encoded, stamp)
            return result
        finally:
            if not future.done():
                future.set_result(data)
            if self._in_flight.get(key, (None, None))[1] is future:
                del self._in_flight[key]

    def _shared_key(self, key: Key) -> str:
        """The key among replicas: the memory key (model limit included) and the schema
        (replicas of another release never share answers)."""
        scopes = ",".join(sorted(key[2]))
        limit = "*" if key[3] is None else f"only:{key[3]}"
        text = f"{self._schema_digest}\n{key[0]}\n{key[1]}\n{scopes}\n{limit}"
        return hashlib.sha256(text.encode()).hexdigest()

    async def _from_shared(self, shared_key: str, plan: CachePlan) -> Found | None:
        if self._shared is None:
            return None
        found = await self._shared.look_up(shared_key, plan.datasets)
        outcome = "unavailable" if found is None else "miss" if found.answer is None else "hit"
        self._observe(outcome, "redis")
        return found

    async def _to_shared(
        self, shared_key: str, generations: str, encoded: bytes, stamp: Stamp
    ) -> None:
        if self._shared is not None:
            await self._shared.keep(
                shared_key, generations, encoded, time.monotonic() - stamp.read_at
            )

    def _keep(self, key: Key, answer: _Answer) -> None:
        if answer.size > self._answers.maxsize:
            return
        self._answers[key] = answer
        if self._observer is not None:
            self._observer.resized(len(self._answers), int(self._answers.currsize))

    def _current(self, datasets: tuple[Dataset, ...], stamp: Stamp, expires_at: float) -> bool:
        return time.monotonic() < expires_at and self._generations.current(datasets, stamp)

    def _observe(self, outcome: str, layer: str = "memory") -> None:
        if self._observer is not None:
            self._observer.looked_up(outcome, layer)


def _size_of(answer: _Answer) -> int:
    return answer.size


def _encoded(data: Data | None) -> bytes | None:
    """The JSON answer; None when there is none or orjson refuses it (nested past its depth
    limit: the endpoint's encoder falls back to the standard one, and such an answer is not
    kept)."""
    if data is None:
        return None
    try:
        return orjson.dumps(data)
    except TypeError:
        return None


def _canonical(variables: Mapping[str, object] | None) -> str | None:
    """The variables as sorted JSON; NaN and infinities kept apart from null. None when they
    nest too deeply to encode (such a request is executed, never kept nor shared)."""
    try:
        return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
    except RecursionError:
        return None
