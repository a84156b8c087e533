"""The real Redis on 127.0.0.1:6379 for shared-cache tests (the `cache_prefix` fixture, in
conftest.py, gives each test a key prefix of its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=0.5)


def keys_under(prefix: str) -> list[bytes]:
    return list(client().scan_iter(match=f"{prefix}*", count=1000))


@contextmanager
def unique_prefix() -> Iterator[str]:
    """A Redis key prefix no other test uses, every key under it removed afterwards; skips,
    saying why, when Redis does not answer on 127.0.0.1:6379."""
    redis_client = client()
    try:
        redis_client.ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis answering on 127.0.0.1:6379 ({error!r})")
    prefix = f"modelql-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        stale = keys_under(prefix)
        if stale:
            redis_client.delete(*stale)
        redis_client.close()
