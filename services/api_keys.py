"""API keys: created once, stored as a hash, looked up by prefix, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import api_key_repository, catalogue_repository
from modelql.persistence.model_limit import ModelLimit, ModelLimitError
from modelql.persistence.notifications import KEYS_CHANNEL, notify
from modelql.persistence.tables import ApiKey
from modelql.services.errors import DomainError
from modelql.services.freshness import Freshness
from modelql.services.rate_limits import RateError, parse_rate

KEY_PREFIX = "mql"
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class Scope(StrEnum):
    READ = "read"
    PREDICT = "predict"
    AUDIT = "audit"
    ADMIN = "admin"
    FEEDBACK = "feedback"


class ApiKeyError(DomainError):
    """A key request that cannot be honoured (bad name or scopes, unknown key)."""


@dataclass(frozen=True)
class Caller:
    """Who is asking, as established from their key."""

    name: str
    scopes: frozenset[Scope]
    rate_limit: str | None = None  # None: the service's default rate
    models: ModelLimit | None = None  # None: every model


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[Scope]:
    """`read,predict,audit` -> the scopes; unknown names are refused."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in Scope.__members__.values()]
    if unknown or not names:
        raise ApiKeyError(
            f"Scopes must be a comma-separated subset of {', '.join(Scope)}; got {text!r}."
        )
    return frozenset(Scope(name) for name in names)


def parse_models(text: str) -> ModelLimit:
    """`fraud-*,iris-classifier` -> the model limit; a malformed pattern is refused."""
    try:
        return ModelLimit.parse(text)
    except ModelLimitError as error:
        raise ApiKeyError(str(error)) from None


async def create(
    session: AsyncSession,
    *,
    name: str,
    scopes: frozenset[Scope],
    rate_limit: str | None = None,
    models: ModelLimit | None = None,
) -> tuple[ApiKey, str]:
    """A new key (with its own rate, else the default; limited to `models`, else reaching
    every model); the plain key is returned once and never stored."""
    if not KEY_NAME.fullmatch(name):
        raise ApiKeyError(f"Key name {name!r} must be 1-100 letters, digits, '.', '_', '@' or '-'.")
    if rate_limit is not None:
        try:
            parse_rate(rate_limit)
        except RateError as error:
            raise ApiKeyError(str(error)) from None
    if models is not None:
        await _check_matches(session, models)
    if await api_key_repository.name_taken(session, name):
        raise ApiKeyError(f"A key named {name!r} already exists; revoke it or pick another name.")
    prefix = secrets.token_hex(6)
    plain = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_sha256=_digest(plain),
        scopes=sorted(scopes),
        rate_limit=rate_limit,
        models=list(models.patterns) if models is not None else None,
    )
    return await api_key_repository.add(session, row), plain


async def _check_matches(session: AsyncSession, models: ModelLimit) -> None:
    """Refuse a pattern that names no model (a typo would make a key that reaches nothing)."""
    names = await catalogue_repository.model_names(session)
    idle = [p for p in models.patterns if not any(ModelLimit((p,)).allows(n) for n in names)]
    if idle:
        raise ApiKeyError(f"No model matches {', '.join(map(repr, idle))}.")


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list(await api_key_repository.all_by_name(session))


async def revoke(session: AsyncSession, *, name: str) -> None:
    """Revoke a key by name; its next request is refused."""
    if not await api_key_repository.revoke(session, name):
        raise ApiKeyError(f"No active key is named {name!r}.")
    await notify(session, KEYS_CHANNEL, name)


async def authenticate(session: AsyncSession, presented: str) -> Caller | None:
    """The caller a presented key belongs to; None for a malformed, unknown or revoked key."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    row = await api_key_repository.active_by_prefix(session, parts[1])
    expected = row.key_sha256 if row is not None else _digest("")
    matches = hmac.compare_digest(expected, _digest(presented))
    if row is None or not matches:
        return None
    return Caller(
        name=row.name,
        scopes=frozenset(Scope(scope) for scope in row.scopes),
        rate_limit=row.rate_limit,
        models=ModelLimit(tuple(row.models)) if row.models is not None else None,
    )


class KeyCache:
    """Callers by presented key: checked against the database once, then kept while fresh
    (a revocation anywhere notifies every process; unknown keys are never kept)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], freshness: Freshness
    ) -> None:
        self._sessionmaker = sessionmaker
        self._freshness = freshness
        self._callers: dict[str, tuple[Caller, float]] = {}

    async def authenticate(self, presented: str) -> Caller | None:
        digest = _digest(presented)
        cached = self._callers.get(digest)
        if cached is not None and self._freshness.fresh(cached[1]):
            return cached[0]
        read_at = self._freshness.now()
        async with self._sessionmaker() as session:
            caller = await authenticate(session, presented)
        if caller is None:
            self._callers.pop(digest, None)
        else:
            self._callers[digest] = (caller, read_at)
        return caller

    def forget(self) -> None:
        """Drop every cached caller (a key was revoked somewhere)."""
        self._freshness.invalidate()
        self._callers.clear()
