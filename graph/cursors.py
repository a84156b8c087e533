"""Opaque Relay cursors: base64url of a small JSON array tagged with the connection kind."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from modelql.graph.errors import bad_input


def encode_cursor(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    kind: str, cursor: str, *, types: tuple[type, ...], argument: str = "after"
) -> list[Any]:
    """The values in a cursor made by `encode_cursor(kind, ...)`, of the given types; else an
    error naming the argument."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded: object = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    if not (
        isinstance(decoded, list)
        and len(decoded) == len(types) + 1
        and decoded[0] == kind
        and all(
            isinstance(value, expected) and not isinstance(value, bool)
            for value, expected in zip(decoded[1:], types, strict=True)
        )
    ):
        raise bad_input(
            f"Argument `{argument}` is not a valid cursor for this connection: {cursor!r}. "
            "Pass a cursor returned by this connection's pageInfo.endCursor or edges.cursor.",
            argument,
        )
    return decoded[1:]
