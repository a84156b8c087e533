"""Request limits the graph layer enforces, taken from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from modelql.graph.errors import ClientError, ErrorCode


@dataclass(frozen=True)
class Limits:
    max_page_size: int = 100

    def page_size(
        self,
        first: int | None,
        *,
        default: int,
        argument: str = "first",
        maximum: int | None = None,
    ) -> int:
        """The validated `first` argument of a connection (or of a list with its own
        `maximum`); null means its default."""
        largest = self.max_page_size if maximum is None else maximum
        if first is None:
            return min(default, largest)
        if first < 0:
            raise ClientError(
                f"Argument `{argument}` must be zero or more, got {first}.",
                ErrorCode.BAD_USER_INPUT,
                argument=argument,
            )
        if first > largest:
            raise ClientError(
                f"Argument `{argument}` must be at most {largest}, got {first}.",
                ErrorCode.PAGE_SIZE_EXCEEDED,
                argument=argument,
                maximum=largest,
            )
        return first
