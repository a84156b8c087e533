"""The garbage collector tuned for a long-running server process.

Python's cyclic collector walks every tracked object of a generation on each collection. A
served process holds hundreds of thousands of long-lived objects from start-up (modules, the
GraphQL schema, scikit-learn models), and a 1,000-prediction batch allocates enough to trigger
full collections that walk all of them: measured under load, about a quarter of the process's
CPU went to the collector. Freezing what start-up built moves it out of every later collection,
and a larger youngest generation collects less often; reference counting still frees almost
everything at once. The price: a start-up object that later becomes part of a reference cycle
(a model evicted from the cache, say) is freed only when the app stops. The setting is
process-wide, so tests, which start many apps in one process, turn it off.
"""

from __future__ import annotations

import gc

YOUNGEST_GENERATION_THRESHOLD = 20_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


def freeze_startup_objects() -> tuple[int, int, int]:
    """Collect once, then leave every surviving object out of later collections; returns the
    thresholds to restore when the app stops."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(YOUNGEST_GENERATION_THRESHOLD, before[1], before[2])
    return before


def thaw(thresholds: tuple[int, int, int]) -> None:
    """Undo `freeze_startup_objects` (the app stopped; the process may go on)."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
