"""A stamp stays current while nothing it read has changed and change notices can arrive."""

from __future__ import annotations

import time

from modelql.services.generations import Dataset, Generations

CATALOGUE = (Dataset.CATALOGUE,)
BOTH = (Dataset.CATALOGUE, Dataset.STORE)


def test_a_change_ends_what_read_that_dataset_only():
    generations = Generations(listening_since=lambda: 0.0)
    catalogue, both = generations.stamp(CATALOGUE), generations.stamp(BOTH)
    generations.changed(Dataset.STORE)
    assert generations.current(CATALOGUE, catalogue, max_staleness_s=1.0)
    assert not generations.current(BOTH, both, max_staleness_s=1.0)


def test_lost_notifications_end_everything():
    generations = Generations(listening_since=lambda: 0.0)
    stamp = generations.stamp(CATALOGUE)
    generations.everything_changed()
    assert not generations.current(CATALOGUE, stamp, max_staleness_s=1.0)


def test_without_a_listener_a_stamp_is_trusted_for_the_staleness_bound_only():
    generations = Generations(listening_since=lambda: None)
    stamp = generations.stamp(CATALOGUE)
    assert generations.current(CATALOGUE, stamp, max_staleness_s=0.05)
    time.sleep(0.06)
    assert not generations.current(CATALOGUE, stamp, max_staleness_s=0.05)


def test_a_stamp_taken_before_the_listener_connected_is_trusted_for_the_bound_only():
    connected_at: list[float] = []
    generations = Generations(listening_since=lambda: connected_at[0] if connected_at else None)
    stamp = generations.stamp(CATALOGUE)
    connected_at.append(time.monotonic())
    later = generations.stamp(CATALOGUE)
    time.sleep(0.06)
    assert not generations.current(CATALOGUE, stamp, max_staleness_s=0.05)
    assert generations.current(CATALOGUE, later, max_staleness_s=0.05)
