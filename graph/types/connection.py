"""One generic Relay connection (`ModelConnection`, `PredictionConnection`, ...) for every list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from modelql.graph.paging import Page

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")


@strawberry.type(description="Relay pagination state of a connection page.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def _edge_cursor(root: Edge[Any]) -> str:
    """Made only when asked for: most pages are read through `nodes`."""
    return root.cursor_of(root.row)


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: NodeT
    row: strawberry.Private[Any]
    cursor_of: strawberry.Private[Callable[[Any], str]]


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, page: Page[RowT], node: Callable[[RowT], NodeT]) -> Connection[NodeT]:
        """The connection of a page, each row turned into its node type by `node`."""
        rows = page.rows
        return cls(
            edges=[Edge(node=node(row), row=row, cursor_of=page.cursor) for row in rows],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursor(rows[0]) if rows else None,
                end_cursor=page.cursor(rows[-1]) if rows else None,
            ),
        )
