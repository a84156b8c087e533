"""A key limited to models: a model outside its limit is, to that key, a model that does not
exist (same error, same message, so names do not leak)."""

from __future__ import annotations

from modelql.persistence.model_limit import ModelLimit, allows
from modelql.services.errors import ErrorCode, UserInputError

__all__ = ["ModelLimit", "check_model", "unknown_model"]


def unknown_model(name: str, path: tuple[str, ...] = ("model",)) -> UserInputError:
    """The error for a model name that names no model."""
    return UserInputError.single(path, ErrorCode.MODEL_NOT_FOUND, f"No model is named {name!r}.")


def check_model(limit: ModelLimit | None, name: str, path: tuple[str, ...] = ("model",)) -> None:
    """Raise `unknown_model` when `name` is outside the caller's limit."""
    if not allows(limit, name):
        raise unknown_model(name, path)
