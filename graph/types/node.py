"""The Relay `Node` interface and opaque global ids ("<Type>:<uuid>", base64url)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence

import numpy as np
import strawberry

from modelql.graph.errors import bad_input


@strawberry.interface(description="An object with an opaque global id; `Query.node` finds it.")
class Node:
    id: strawberry.ID


def to_global_id(type_name: str, local_id: uuid.UUID) -> strawberry.ID:
    raw = f"{type_name}:{local_id}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGIT_COLUMNS = [column for column in range(36) if column not in (8, 13, 18, 23)]
"""Where a UUID's 32 hex digits go in its 36-character text (the rest are dashes)."""
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
_FEWEST_FOR_ARRAYS = 16


def to_global_ids(type_name: str, local_ids: Sequence[uuid.UUID]) -> list[strawberry.ID]:
    """`to_global_id` of each id, in a few array operations instead of a dozen calls per id:
    the UUIDs' texts are written side by side, each after the prefix's bytes that do not
    fill a base64 group of three, and padded to whole groups; one base64 call encodes them
    all, and each id is the prefix's own groups followed by its slice. Short lists go one at
    a time: the arrays cost about 20 µs whatever their size."""
    if len(local_ids) < _FEWEST_FOR_ARRAYS:
        return [to_global_id(type_name, local) for local in local_ids]
    prefix = f"{type_name}:".encode()
    whole = len(prefix) - len(prefix) % 3
    lead = prefix[whole:]
    width = len(lead) + 36
    padded = width + -width % 3
    ids = np.frombuffer(b"".join(local.bytes for local in local_ids), dtype=np.uint8)
    ids = ids.reshape(len(local_ids), 16)
    texts = np.full((len(local_ids), padded), ord("-"), dtype=np.uint8)
    texts[:, : len(lead)] = np.frombuffer(lead, dtype=np.uint8)
    texts[:, width:] = 0
    digits = np.empty((len(local_ids), 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[ids >> 4]
    digits[:, 1::2] = _HEX_DIGITS[ids & 15]
    texts[:, [len(lead) + column for column in _DIGIT_COLUMNS]] = digits
    encoded = binascii.b2a_base64(texts.tobytes(), newline=False).translate(_URL_SAFE).decode()
    head = base64.urlsafe_b64encode(prefix[:whole]).decode()
    step, keep = padded // 3 * 4, -(-width * 4 // 3)
    return [
        strawberry.ID(head + encoded[start : start + keep])
        for start in range(0, len(encoded), step)
    ]


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
