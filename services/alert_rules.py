"""Alert rules: created (checked first: nothing stored on bad input), listed, switched on or
off and deleted; each change announced on the alerts channel at COMMIT."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import alert_repository as repo
from modelql.persistence.model_limit import allows
from modelql.persistence.notifications import notify
from modelql.persistence.tables import AlertDelivery, AlertRule
from modelql.services.errors import ErrorCode, FieldProblem, UserInputError
from modelql.services.model_access import ModelLimit


class Signal(StrEnum):
    VOLUME = "VOLUME"
    LATENCY_P50 = "LATENCY_P50"
    LATENCY_P95 = "LATENCY_P95"
    LATENCY_P99 = "LATENCY_P99"
    ACCURACY = "ACCURACY"
    MAE = "MAE"
    DRIFT = "DRIFT"
    ERROR_RATE = "ERROR_RATE"


class Comparison(StrEnum):
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"


TASK_ONLY = {Signal.ACCURACY: "CLASSIFICATION", Signal.MAE: "REGRESSION"}


def holds(comparison: str, value: float, threshold: float) -> bool:
    """Whether `value comparison threshold`."""
    match comparison:
        case Comparison.GT:
            return value > threshold
        case Comparison.GTE:
            return value >= threshold
        case Comparison.LT:
            return value < threshold
        case _:
            return value <= threshold


@dataclass(frozen=True)
class AlertRuleInput:
    name: str
    model: str
    signal: Signal
    comparison: Comparison
    threshold: float
    window_s: float
    for_s: float
    version: int | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class CreatedRule:
    rule: AlertRule
    secret: str
    """Shown once: the key of the rule's webhook signatures."""


async def _webhook_problem(url: str, allow_private: bool) -> str | None:
    """Why the URL cannot be a webhook; None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "A webhook URL must be http(s) with a host."
    if allow_private:
        return None
    try:
        found = await asyncio.to_thread(socket.getaddrinfo, parts.hostname, parts.port or 80)
    except (OSError, UnicodeError):
        return f"The webhook host {parts.hostname!r} does not resolve."
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global:
            return f"The webhook host resolves to a non-public address ({ip})."
    return None


class AlertRules:
    """The use cases on rules; `allow_private` lets webhooks reach loopback/private hosts."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        allow_private: bool,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._allow_private = allow_private
        self._changed = changed
        """Called after each COMMIT of a change (moves the store's generation)."""

    async def create(self, given: AlertRuleInput, limit: ModelLimit | None = None) -> CreatedRule:
        """A rule on a model within the caller's `limit` (another is a model that does not
        exist)."""
        problems = []
        if not math.isfinite(given.threshold):
            problems.append(
                FieldProblem(("threshold",), ErrorCode.INVALID_THRESHOLD, "Not a finite number.")
            )
        for path, seconds in (("window", given.window_s), ("for", given.for_s)):
            if not math.isfinite(seconds) or seconds < 0 or (path == "window" and seconds == 0):
                problems.append(
                    FieldProblem((path,), ErrorCode.INVALID_DURATION, f"Bad {path} duration.")
                )
        if given.webhook_url is not None:
            why = await _webhook_problem(given.webhook_url, self._allow_private)
            if why is not None:
                problems.append(FieldProblem(("webhookUrl",), ErrorCode.INVALID_WEBHOOK, why))
        async with self._sessionmaker() as session, session.begin():
            found = await repo.model(session, given.model) if allows(limit, given.model) else None
            version = None
            if found is None:
                problems.append(
                    FieldProblem(("model",), ErrorCode.MODEL_NOT_FOUND, "No such model.")
                )
            else:
                needs = TASK_ONLY.get(given.signal)
                if needs is not None and needs != found.task:
                    problems.append(
                        FieldProblem(
                            ("signal",),
                            ErrorCode.UNSUPPORTED_SIGNAL,
                            f"{given.signal} needs a {needs.lower()} model.",
                        )
                    )
                if given.version is not None:
                    version = await repo.version_id(session, found.id, given.version)
                    if version is None:
                        problems.append(
                            FieldProblem(
                                ("version",), ErrorCode.VERSION_NOT_FOUND, "No such version."
                            )
                        )
            if problems or found is None:
                raise UserInputError(problems)
            secret = secrets.token_urlsafe(32)
            rule = await repo.add_rule(
                session,
                AlertRule(
                    id=uuid.uuid4(),
                    name=given.name,
                    model_id=found.id,
                    version_id=version,
                    signal=str(given.signal),
                    comparison=str(given.comparison),
                    threshold=given.threshold,
                    window_s=given.window_s,
                    for_s=given.for_s,
                    webhook_url=given.webhook_url,
                    secret=secret,
                    state="ok",
                ),
            )
            await notify(session, repo.ALERTS_CHANNEL, str(rule.id))
        self._changed()
        return CreatedRule(rule, secret)

    async def set_enabled(
        self, rule_id: uuid.UUID, enabled: bool, limit: ModelLimit | None = None
    ) -> AlertRule:
        async with self._sessionmaker() as session, session.begin():
            found = await repo.rule(session, rule_id)
            if found is None or not await _reachable(session, found, limit):
                raise _not_found()
            found.enabled = enabled
            if not enabled:
                found.state, found.pending_since = "ok", None
            await notify(session, repo.ALERTS_CHANNEL, str(rule_id))
        self._changed()
        return found

    async def delete(self, rule_id: uuid.UUID, limit: ModelLimit | None = None) -> None:
        async with self._sessionmaker() as session, session.begin():
            found = await repo.rule(session, rule_id)
            if found is None or not await _reachable(session, found, limit):
                raise _not_found()
            if not await repo.delete_rule(session, rule_id):
                raise _not_found()
            await notify(session, repo.ALERTS_CHANNEL, str(rule_id))

    async def rules(self, limit: ModelLimit | None = None) -> list[AlertRule]:
        """Every rule, oldest first; only those on models within `limit` when given."""
        async with self._sessionmaker() as session:
            if limit is None:
                return await repo.rules(session)
            named = await repo.rules_with_models(session)
        return [rule for rule, name in named if limit.allows(name)]

    async def watched(self) -> list[tuple[AlertRule, str]]:
        """Every rule with its model's name (for /metrics)."""
        async with self._sessionmaker() as session:
            return await repo.rules_with_models(session)

    async def deliveries(self, rule_id: uuid.UUID | None, limit: int) -> list[AlertDelivery]:
        async with self._sessionmaker() as session:
            return await repo.deliveries(session, rule_id, limit)


async def _reachable(session: AsyncSession, rule: AlertRule, limit: ModelLimit | None) -> bool:
    """Whether the rule's model is within the caller's limit."""
    if limit is None:
        return True
    name = await repo.model_name(session, rule.model_id)
    return name is not None and limit.allows(name)


def _not_found() -> UserInputError:
    return UserInputError.single(("id",), ErrorCode.ALERT_RULE_NOT_FOUND, "No such alert rule.")
