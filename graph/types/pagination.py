"""Relay page info shared by every connection."""

from __future__ import annotations

import strawberry


@strawberry.type(description="Relay pagination state of a connection page.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, cursors: list[str], *, has_next_page: bool, has_previous_page: bool) -> PageInfo:
        return cls(
            has_next_page=has_next_page,
            has_previous_page=has_previous_page,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )
