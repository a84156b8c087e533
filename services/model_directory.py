"""Every model of the catalogue held in memory, so that model lists and look-ups by id or name
answer with no SQL, exactly as the catalogue repository's queries would."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from modelql.persistence.catalogue_repository import ModelFilter
from modelql.persistence.tables import Model

MODELS_KEPT = 10_000
"""Above this many models the directory is not kept and every list is a query."""


@dataclass(frozen=True, slots=True)
class ModelDirectory:
    """The models one read saw, in the database's name order (its collation, which Python's
    string order does not reproduce), with where each name stands in it."""

    rows: tuple[Model, ...]
    position: dict[str, int]
    by_id: dict[uuid.UUID, Model]
    plain_text: bool
    """Every name and description is ASCII, so Python's case folding is PostgreSQL's ILIKE."""
    complete: bool
    """False when the catalogue holds more than MODELS_KEPT models: nothing is answered."""
    loaded_at: float
    """Monotonic time the read started."""

    @classmethod
    def of(cls, rows: Sequence[Model], loaded_at: float) -> ModelDirectory:
        """The directory of `rows`, read in name order with at most one more than kept."""
        if len(rows) > MODELS_KEPT:
            return cls((), {}, {}, False, False, loaded_at)
        return cls(
            rows=tuple(rows),
            position={row.name: index for index, row in enumerate(rows)},
            by_id={row.id: row for row in rows},
            plain_text=all(
                row.name.isascii() and (row.description or "").isascii() for row in rows
            ),
            complete=True,
            loaded_at=loaded_at,
        )

    def page(self, *, limit: int, after_name: str | None, where: ModelFilter) -> list[Model] | None:
        """`list_models`'s answer, or None when memory cannot give it exactly: a cursor naming
        a model that is gone (its place in the collation is unknown), a search where case
        folding could differ from PostgreSQL's, or a NUL character (an error of the query's)."""
        if not self.complete:
            return None
        start = 0
        if after_name is not None:
            if after_name not in self.position:
                return None
            start = self.position[after_name] + 1
        search = where.search.lower() if where.search else None
        if search is not None and not (self.plain_text and search.isascii()):
            return None
        if "\x00" in (where.tag or "") + (search or ""):
            return None  # PostgreSQL refuses the text: the query reports it as bad input
        found: list[Model] = []
        for row in self.rows[start:]:
            if len(found) == limit:
                break
            if where.limit is not None and not where.limit.allows(row.name):
                continue
            if where.task is not None and row.task != where.task:
                continue
            if where.tag is not None and where.tag not in row.tags:
                continue
            if search is not None and not (
                search in row.name.lower() or search in (row.description or "").lower()
            ):
                continue
            found.append(row)
        return found

    def by_name(self, names: Sequence[str]) -> dict[str, Model]:
        return {name: self.rows[self.position[name]] for name in names if name in self.position}

    def by_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Model]:
        return {model_id: self.by_id[model_id] for model_id in ids if model_id in self.by_id}
