"""The inference cache: each version's outputs for the rows it already scored, so that a repeated
input skips the estimator (it is still stored as a prediction like any other).

Keyed by the version and the canonical feature vector: the row as the estimator is given it
(after validation and coercion, in signature order), float cells by their exact bits, so that
5 and 5.0 share an entry and 0.0 and -0.0 do not. One LRU bound for the whole process."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np
from cachetools import LRUCache

from modelql.models.cacheability import InferenceProfile
from modelql.models.predictor import RowScore

MIN_CALL_S = 0.0005
"""A version is cached only when one estimator call costs at least this (half a millisecond,
more than the rest of a createPrediction costs the process): below it, skipping a call saves
less than every request pays for its key and lookup."""


def worth_caching(profile: InferenceProfile) -> bool:
    """The rule, per version: its estimator scores each row on its own (so a cached output is
    what the estimator gives for that row in any batch, to the bit), and a call is costly."""
    return profile.row_wise and profile.call_s is not None and profile.call_s >= MIN_CALL_S


def row_keys(matrix: np.ndarray) -> list[Hashable]:
    """Each row's canonical key: its float64 bytes, or a tuple of its cells (floats by their
    bits) when the matrix holds objects."""
    if matrix.dtype == np.float64:
        data = np.ascontiguousarray(matrix).tobytes()
        width = matrix.shape[1] * 8
        return [data[start : start + width] for start in range(0, len(data), width)]
    return [tuple(_cell_key(cell) for cell in row) for row in matrix.tolist()]


def _cell_key(cell: object) -> Hashable:
    if isinstance(cell, float):
        return struct.pack("<d", cell)
    assert cell is None or isinstance(cell, str)
    return cell


class InferenceCacheObserver(Protocol):
    """Where the cache reports its lookups and size (Prometheus in the service)."""

    def looked_up(self, hits: int, misses: int) -> None: ...

    def resized(self, rows: int) -> None: ...


class InferenceCache:
    """Scored rows by (version id, row key), the least recently used dropped beyond
    `max_rows`. Used on the event loop only."""

    def __init__(self, max_rows: int, observer: InferenceCacheObserver | None = None) -> None:
        self._rows: LRUCache[tuple[uuid.UUID, Hashable], RowScore] = LRUCache(maxsize=max_rows)
        self._observer = observer

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, version_id: uuid.UUID, keys: Sequence[Hashable]) -> list[RowScore | None]:
        """Each key's scored row, or None."""
        rows = self._rows
        found = [rows.get((version_id, key)) for key in keys]
        if self._observer is not None:
            misses = found.count(None)
            self._observer.looked_up(len(found) - misses, misses)
        return found

    def put(
        self, version_id: uuid.UUID, keys: Sequence[Hashable], scored: Sequence[RowScore]
    ) -> None:
        for key, row in zip(keys, scored, strict=True):
            self._rows[(version_id, key)] = row
        if self._observer is not None:
            self._observer.resized(len(self._rows))
