"""DataLoaders built per request: each batches its keys into one service call (one statement)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from graph.request_database import RequestDatabase
from persistence import tables
from services import audit, catalogue

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

PageKey = tuple[uuid.UUID, int, int | None]
"""(model id, page size + 1, exclusive upper bound on the version number)."""


def _mapping_loader(
    db: RequestDatabase,
    fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: Callable[[], V | None] = lambda: None,
) -> DataLoader[K, V | None]:
    async def load(keys: list[K]) -> list[V | None]:
        found = await db.run(lambda session: fetch(session, keys))
        return [found.get(key, default()) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """Every relation a list can fan out to, batched for the lifetime of one request."""

    def __init__(self, db: RequestDatabase) -> None:
        self.model_by_id = _mapping_loader(db, catalogue.models_by_id)
        self.model_by_name = _mapping_loader(db, catalogue.models_by_name)
        self.version_by_id = _mapping_loader(db, catalogue.versions_by_id)
        self.version_by_number = _mapping_loader(db, catalogue.versions_by_number)
        self.version_by_alias = _mapping_loader(db, catalogue.versions_by_alias)
        self.default_version = _mapping_loader(db, catalogue.default_versions)
        self.aliases_by_model = _mapping_loader(db, catalogue.aliases_for_models, list)
        self.alias_names_by_version = _mapping_loader(db, catalogue.alias_names_for_versions, list)
        self.alias_events_by_model = _mapping_loader(db, catalogue.alias_events_for_models, list)
        self.training_arguments = _mapping_loader(
            db, catalogue.training_arguments_for_versions, list
        )
        self.metrics = _mapping_loader(db, catalogue.metrics_for_versions, list)
        self.prediction_by_id = _mapping_loader(db, audit.predictions_by_id)
        self.versions_page: DataLoader[PageKey, list[tables.ModelVersion]] = DataLoader(
            load_fn=lambda keys: self._load_version_pages(db, keys)
        )

    @staticmethod
    async def _load_version_pages(
        db: RequestDatabase, keys: list[PageKey]
    ) -> list[list[tables.ModelVersion]]:
        """One statement per distinct (page size, cursor) pair, whatever the number of models."""
        by_page: dict[tuple[int, int | None], list[uuid.UUID]] = defaultdict(list)
        for model_id, limit, before in keys:
            by_page[(limit, before)].append(model_id)
        pages: dict[PageKey, list[tables.ModelVersion]] = {}
        for (limit, before), model_ids in by_page.items():
            found = await db.run(
                lambda session, ids=model_ids, limit=limit, before=before: (
                    catalogue.versions_page_for_models(
                        session, ids, limit=limit, before_number=before
                    )
                )
            )
            for model_id in model_ids:
                pages[(model_id, limit, before)] = found.get(model_id, [])
        return [pages[key] for key in keys]
