"""Per-request context: identity, the shared read session and the DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext

from graph.limits import Limits
from graph.loaders import Loaders
from graph.request_database import RequestDatabase
from services.inference import ModelCache


@dataclass(frozen=True)
class GraphDependencies:
    """What resolvers need from the application, built once at start-up."""

    sessionmaker: async_sessionmaker[AsyncSession]
    model_cache: ModelCache
    limits: Limits


class GraphContext(BaseContext):
    """Typed Strawberry context; resolvers read dependencies, identity and loaders from it."""

    def __init__(
        self, dependencies: GraphDependencies, *, request_id: str, caller: str | None
    ) -> None:
        super().__init__()
        self.dependencies = dependencies
        self.request_id = request_id
        self.caller = caller
        self.db = RequestDatabase(dependencies.sessionmaker)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.db)

    @property
    def limits(self) -> Limits:
        return self.dependencies.limits
