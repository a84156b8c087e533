"""Request limits the graph layer enforces, taken from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from graph.errors import ClientError, ErrorCode


@dataclass(frozen=True)
class Limits:
    max_page_size: int = 100
    max_batch_size: int = 1_000

    def page_size(self, first: int | None, *, default: int, argument: str = "first") -> int:
        """The validated `first` argument of a connection; null means its default."""
        if first is None:
            return min(default, self.max_page_size)
        if first < 0:
            raise ClientError(
                f"Argument `{argument}` must be zero or more, got {first}.",
                ErrorCode.BAD_USER_INPUT,
                argument=argument,
            )
        if first > self.max_page_size:
            raise ClientError(
                f"Argument `{argument}` must be at most {self.max_page_size}, got {first}.",
                ErrorCode.PAGE_SIZE_EXCEEDED,
                argument=argument,
                maximum=self.max_page_size,
            )
        return first
