"""The real Redis on 127.0.0.1:6379 for shared-cache tests (the `cache_prefix` fixture, in
conftest.py, gives each test a key prefix of its own)."""

from __future__ import annotations

import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=0.5)


def keys_under(prefix: str) -> list[bytes]:
    return list(client().scan_iter(match=f"{prefix}*", count=1000))
