"""The pages every connection shows, and the version a (number, alias) pair names.

Resolvers of the query root and of nested fields call these; they return rows, never GraphQL
types, so that the node types can use them without importing one another."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import strawberry

from modelql.graph.asked_columns import unasked_prediction_columns
from modelql.graph.context import GraphContext
from modelql.graph.cursors import decode_cursor, encode_cursor
from modelql.graph.errors import bad_input
from modelql.persistence import tables
from modelql.services import catalogue, prediction_audit
from modelql.services.errors import UserInputError

Info = strawberry.Info[GraphContext, None]
RowT = TypeVar("RowT")

MODEL_CURSOR = "model"
VERSION_CURSOR = "version"
PREDICTION_CURSOR = "prediction"


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of rows with their cursors, before they become GraphQL types."""

    rows: Sequence[RowT]
    cursor: Callable[[RowT], str]
    """A row's cursor, made only when asked for (most pages show nodes, not edges)."""
    has_next_page: bool
    has_previous_page: bool


def page_of(
    rows: Sequence[RowT], *, size: int, after: str | None, cursor: Callable[[RowT], str]
) -> Page[RowT]:
    """The page of `size` rows out of `rows`, fetched with one extra row to see a next page."""
    return Page(
        rows=rows[:size],
        cursor=cursor,
        has_next_page=len(rows) > size,
        has_previous_page=after is not None,
    )


async def model_page(
    info: Info, first: int | None, after: str | None, where: catalogue.ModelFilter
) -> Page[tables.Model]:
    """Models ordered by name."""
    size = info.context.limits.page_size(first, default=20)
    after_name = decode_cursor(MODEL_CURSOR, after, types=(str,))[0] if after is not None else None
    memory = info.context.dependencies.catalogue
    rows = await info.context.db.run(
        lambda session: memory.model_page(
            session, limit=size + 1, after_name=after_name, where=where
        )
    )
    return page_of(
        rows, size=size, after=after, cursor=lambda row: encode_cursor(MODEL_CURSOR, row.name)
    )


async def version_page(
    info: Info, model_id: uuid.UUID, first: int | None, after: str | None
) -> Page[catalogue.Version]:
    """A model's versions, newest first."""
    size = info.context.limits.page_size(first, default=20)
    before = decode_cursor(VERSION_CURSOR, after, types=(int,))[0] if after is not None else None
    if before is not None and not -(2**31) <= before < 2**31:
        raise bad_input("`after` names no version number (a 32-bit integer).", "after")
    rows = await info.context.loaders.versions_page.load((model_id, size + 1, before))
    return page_of(
        rows, size=size, after=after, cursor=lambda row: encode_cursor(VERSION_CURSOR, row.number)
    )


def _keyset(after: str) -> prediction_audit.Keyset:
    created_at, local_id = decode_cursor(PREDICTION_CURSOR, after, types=(str, str))
    try:
        return datetime.fromisoformat(created_at), uuid.UUID(local_id)
    except (TypeError, ValueError):
        raise bad_input(f"Argument `after` is not a valid cursor: {after!r}.", "after") from None


def _prediction_cursor(row: tables.PredictionRow) -> str:
    return encode_cursor(PREDICTION_CURSOR, row.created_at.isoformat(), str(row.id))


async def prediction_page(
    info: Info, first: int | None, after: str | None, query: prediction_audit.PredictionQuery
) -> Page[tables.PredictionRow]:
    """Predictions newest first, by keyset (created_at, id); never OFFSET. The costly columns
    no prediction of the page asks for are read as null."""
    size = info.context.limits.page_size(first, default=50)
    keyset = _keyset(after) if after is not None else None
    unread = unasked_prediction_columns(info)
    rows = await info.context.db.run(
        lambda session: prediction_audit.prediction_page(
            session, query, limit=size + 1, after=keyset, unread=unread
        )
    )
    return page_of(rows, size=size, after=after, cursor=_prediction_cursor)


async def select_version(
    info: Info, model_id: uuid.UUID, number: int | None, alias: str | None
) -> catalogue.Version | None:
    """The version a (number, alias) pair names by the catalogue's one rule; None when it
    names none (reads answer null where a mutation answers a user error)."""
    route = await info.context.loaders.route_by_model_id.load(model_id)
    if route is None:
        return None
    try:
        version_id = route.choose(number=number, alias=alias).version_id
    except UserInputError:
        return None
    return await info.context.loaders.version_by_id.load(version_id)
