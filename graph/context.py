"""Per-request context: identity, the shared read session and the DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext

from graph.limits import Limits
from graph.loaders import Loaders
from graph.request_database import RequestDatabase
from graph.request_log import RequestLog
from services.api_keys import Caller, Scope
from services.inference import ModelCache


@dataclass(frozen=True)
class GraphDependencies:
    """What resolvers need from the application, built once at start-up."""

    sessionmaker: async_sessionmaker[AsyncSession]
    model_cache: ModelCache
    limits: Limits
    auth_required: bool = False


class GraphContext(BaseContext):
    """Typed Strawberry context; resolvers read dependencies, identity and loaders from it."""

    def __init__(
        self,
        dependencies: GraphDependencies,
        *,
        request_id: str,
        caller: Caller | None,
        request_log: RequestLog,
    ) -> None:
        super().__init__()
        self.dependencies = dependencies
        self.request_id = request_id
        self.caller_identity = caller
        self.request_log = request_log
        self.db = RequestDatabase(dependencies.sessionmaker)

    @property
    def caller(self) -> str | None:
        """The API key name recorded on predictions; None when auth is off."""
        return self.caller_identity.name if self.caller_identity else None

    @property
    def scopes(self) -> frozenset[Scope]:
        if self.caller_identity is None:
            return frozenset() if self.dependencies.auth_required else frozenset(Scope)
        return self.caller_identity.scopes

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.db)

    @property
    def limits(self) -> Limits:
        return self.dependencies.limits
