"""Per-request context: identity, the shared read session and the DataLoaders."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from modelql.graph.limits import Limits
from modelql.graph.loaders import Loaders
from modelql.graph.request_database import RequestDatabase
from modelql.graph.request_log import RequestLog
from modelql.services.alert_changes import AlertChanges
from modelql.services.alert_rules import AlertRules
from modelql.services.api_keys import Caller, KeyCache, Scope
from modelql.services.catalogue import Catalogue
from modelql.services.catalogue_changes import CatalogueChanges
from modelql.services.comparison import VersionComparisons
from modelql.services.drift import DriftPolicy
from modelql.services.estimated_performance import EstimationPolicy
from modelql.services.feed import LiveFeeds
from modelql.services.model_access import ModelLimit
from modelql.services.outcomes import OutcomeRecorder
from modelql.services.prediction_jobs import PredictionJobs
from modelql.services.predictions import PredictionService
from modelql.services.rate_limits import RateLimiter
from modelql.services.subscribers import SubscriptionEndedError


@dataclass(frozen=True)
class GraphDependencies:
    """What resolvers need from the application, built once at start-up."""

    read_sessionmaker: async_sessionmaker[AsyncSession]
    """Sessions for the request's reads (`create_read_sessionmaker`: no transaction)."""
    catalogue: Catalogue
    predictions: PredictionService
    jobs: PredictionJobs
    outcomes: OutcomeRecorder
    catalogue_changes: CatalogueChanges
    keys: KeyCache
    comparisons: VersionComparisons
    limits: Limits
    feeds: LiveFeeds
    alert_rules: AlertRules
    alert_changes: AlertChanges
    auth_required: bool = False
    rate_limiter: RateLimiter | None = None
    max_batch_size: int = 1_000
    drift_policy: DriftPolicy = field(default_factory=DriftPolicy)
    estimation_policy: EstimationPolicy = field(default_factory=EstimationPolicy)


NO_SCOPES: frozenset[Scope] = frozenset()
EVERY_SCOPE = frozenset(Scope)
"""Without auth (built once: permission checks ask for the scopes once per object)."""


class GraphContext:
    """Typed Strawberry context; resolvers read dependencies, identity and loaders from it."""

    def __init__(
        self,
        dependencies: GraphDependencies,
        *,
        request: HTTPConnection,
        response: Response | None,
        request_id: str,
        caller: Caller | None,
        request_log: RequestLog,
        credential: str | None = None,
    ) -> None:
        self.dependencies = dependencies
        self.request = request
        """The HTTP request, or the WebSocket a subscription lives on."""
        self.response = response
        """The sub-response whose status code and headers the endpoint sends (HTTP only)."""
        self.connection_params: dict[str, Any] | None = None
        """What a WebSocket's `connection_init` carried (Strawberry sets it)."""
        self.request_id = request_id
        self.caller_identity = caller
        self.credential = credential
        """The presented API key (kept to check it again while a subscription is open)."""
        self.request_log = request_log
        self.db = RequestDatabase(dependencies.read_sessionmaker)
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def caller(self) -> str | None:
        """The API key name recorded on predictions; None when auth is off."""
        return self.caller_identity.name if self.caller_identity else None

    @property
    def scopes(self) -> frozenset[Scope]:
        if self.caller_identity is None:
            return NO_SCOPES if self.dependencies.auth_required else EVERY_SCOPE
        return self.caller_identity.scopes

    @property
    def model_limit(self) -> ModelLimit | None:
        """The models the caller's key may reach; None: every model."""
        return self.caller_identity.models if self.caller_identity else None

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(
            self.db,
            self.dependencies.catalogue,
            self.dependencies.drift_policy,
            self.dependencies.estimation_policy,
            limit=self.model_limit,
        )

    @property
    def limits(self) -> Limits:
        return self.dependencies.limits

    async def release(self) -> None:
        """After one subscription message: forget loaded rows and return the connection (a
        WebSocket's context lives as long as the socket)."""
        self.__dict__.pop("loaders", None)
        await self.db.close()

    def end_connection(self, reason: SubscriptionEndedError) -> None:
        """Close this WebSocket shortly after a subscription was ended for `reason`, once the
        error message (sent right after this) is on its way."""
        if isinstance(self.request, WebSocket):
            task = asyncio.create_task(_close_later(self.request, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


CLOSE_DELAY_S = 0.5
CLOSE_CODES = {"SUBSCRIBER_TOO_SLOW": 4008, "UNAUTHENTICATED": 4403}


async def _close_later(websocket: WebSocket, reason: SubscriptionEndedError) -> None:
    await asyncio.sleep(CLOSE_DELAY_S)
    with contextlib.suppress(Exception):
        await websocket.close(CLOSE_CODES.get(reason.code, 4000), str(reason)[:120])
