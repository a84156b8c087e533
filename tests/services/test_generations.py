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
    assert generations.current(CATALOGUE, catalogue)
    assert not generations.current(BOTH, both)


def test_lost_notifications_end_everything():
    generations = Generations(listening_since=lambda: 0.0)
    stamp = generations.stamp(CATALOGUE)
    generations.everything_changed()
    assert not generations.current(CATALOGUE, stamp)


def test_without_a_listener_nothing_is_current():
    generations = Generations(listening_since=lambda: None)
    assert not generations.current(CATALOGUE, generations.stamp(CATALOGUE))


def test_a_stamp_taken_before_the_listener_connected_is_not_current():
    connected_at: list[float] = []
    generations = Generations(listening_since=lambda: connected_at[0] if connected_at else None)
    stamp = generations.stamp(CATALOGUE)
    time.sleep(0.001)
    connected_at.append(time.monotonic())
    later = generations.stamp(CATALOGUE)
    assert not generations.current(CATALOGUE, stamp)
    assert generations.current(CATALOGUE, later)


def test_followers_hear_of_changes_made_here_catalogue_notices_and_lost_notifications():
    """What tells the other replicas (the shared cache's generations in Redis): a store commit
    another process made and notified is told by that process, not by every listener."""
    generations = Generations(listening_since=lambda: 0.0)
    told: list[tuple[Dataset, ...]] = []
    generations.follow(told.append)
    stamp = generations.stamp((Dataset.STORE,))
    generations.changed(Dataset.STORE, heard=True)
    assert told == [] and not generations.current((Dataset.STORE,), stamp)
    generations.changed(Dataset.STORE)
    generations.changed(Dataset.CATALOGUE, heard=True)
    generations.everything_changed()
    assert told == [(Dataset.STORE,), (Dataset.CATALOGUE,), (Dataset.CATALOGUE, Dataset.STORE)]
