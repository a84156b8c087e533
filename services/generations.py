"""Generations of what answers are read from: a counter per dataset that moves whenever the
dataset may have changed, so that anything derived from it can tell it is out of date."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Dataset(StrEnum):
    CATALOGUE = "catalogue"
    """Models, versions, aliases, traffic splits: changed by registrations and admin moves."""
    STORE = "store"
    """Stored predictions and their outcomes (and the roll-ups written with them)."""


@dataclass(frozen=True)
class Stamp:
    """The generations of the datasets an answer read, taken before it was read."""

    generations: tuple[int, ...]
    read_at: float
    """Monotonic seconds, before the read."""


class Generations:
    """Moved by this process's own commits (before their callers are answered) and by the
    notifications of every other process's; all of them when notifications were lost."""

    def __init__(self, *, listening_since: Callable[[], float | None]) -> None:
        self._values = dict.fromkeys(Dataset, 0)
        self._listening_since = listening_since
        self._followers: list[Callable[[tuple[Dataset, ...]], None]] = []

    def follow(self, moved: Callable[[tuple[Dataset, ...]], None]) -> None:
        """Call `moved` with the datasets of every later change but the store changes this
        process only heard of (to tell other replicas what they may not know yet)."""
        self._followers.append(moved)

    def changed(self, dataset: Dataset, *, heard: bool = False) -> None:
        """`heard`: a notification of another process's store commit (whose maker tells)."""
        self._values[dataset] += 1
        if heard and dataset is Dataset.STORE:
            return
        for moved in self._followers:
            moved((dataset,))

    def everything_changed(self) -> None:
        for dataset in Dataset:
            self._values[dataset] += 1
        for moved in self._followers:
            moved(tuple(Dataset))

    def stamp(self, datasets: Iterable[Dataset]) -> Stamp:
        return Stamp(tuple(self._values[d] for d in datasets), time.monotonic())

    def current(self, datasets: Iterable[Dataset], stamp: Stamp) -> bool:
        """Nothing read under `stamp` has changed since, as far as this process can know: the
        generations are the same and the listener has been connected since before the read.
        While it is down nothing is current: what the read used may itself have been trusted
        for the catalogue's staleness bound (routes, keys), which must not be stretched."""
        if stamp.generations != tuple(self._values[d] for d in datasets):
            return False
        since = self._listening_since()
        return since is not None and stamp.read_at >= since
