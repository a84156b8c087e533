"""The Relay `Node` interface and opaque global ids ("<Type>:<uuid>", base64url)."""

from __future__ import annotations

import base64
import binascii
import uuid

import strawberry

from modelql.graph.errors import bad_input


@strawberry.interface(description="An object with an opaque global id; `Query.node` finds it.")
class Node:
    id: strawberry.ID


def to_global_id(type_name: str, local_id: uuid.UUID) -> strawberry.ID:
    raw = f"{type_name}:{local_id}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def from_global_id(global_id: str, *, argument: str = "id") -> tuple[str, uuid.UUID]:
    """The type name and local id of a global id; a clear error when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, local = raw.split(":", 1)
        return type_name, uuid.UUID(local)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_input(
            f"Argument `{argument}` is not a valid ModelQL id: {global_id!r}.", argument
        ) from None
