"""The models an API key is limited to: exact names or glob patterns (`*` any run of
characters, `?` one), matched on the whole name, case-sensitively."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

PATTERN = re.compile(r"[a-z0-9*?][a-z0-9._*?-]{0,99}")
"""A model name (see registration's MODEL_NAME) in which `*` and `?` may stand for characters."""


class ModelLimitError(ValueError):
    """A pattern that cannot name a model."""


@dataclass(frozen=True)
class ModelLimit:
    """A key's model list; a key without one (None where a limit is expected) reaches all."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ModelLimit:
        """`fraud-*,iris-classifier` -> the limit; a pattern no model name could match is
        refused."""
        patterns = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        bad = [pattern for pattern in patterns if not PATTERN.fullmatch(pattern)]
        if bad or not patterns:
            raise ModelLimitError(
                "Models must be a comma-separated list of model names or patterns (lowercase "
                f"letters, digits, '.', '_', '-', with '*' and '?'); got {text!r}."
            )
        return cls(patterns)

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile("|".join(_regex(pattern) for pattern in self.patterns))

    def allows(self, name: str) -> bool:
        """Whether the model of this name is within the limit."""
        return self._regex.fullmatch(name) is not None

    def like_patterns(self) -> list[str]:
        """The patterns as SQL LIKE patterns, with `\\` as the escape character."""
        return [_like(pattern) for pattern in self.patterns]

    @property
    def key(self) -> str:
        """A stable text of the limit (answers cached per limit key on it)."""
        return ",".join(sorted(self.patterns))


def _regex(pattern: str) -> str:
    return "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def allows(limit: ModelLimit | None, name: str) -> bool:
    """Whether a caller limited by `limit` (None: not limited) reaches the model `name`."""
    return limit is None or limit.allows(name)
