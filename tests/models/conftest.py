"""Shared fixtures: the demo catalogue is trained once per test session."""

from __future__ import annotations

import pytest

from modelql.models.demo import train_demo
from modelql.models.training import TrainedVersion


@pytest.fixture(scope="session")
def demo_run() -> tuple[list[TrainedVersion], list[str]]:
    """The trained demo versions and the progress steps reported while training them."""
    steps: list[str] = []
    return train_demo(steps.append), steps


@pytest.fixture(scope="session")
def demo_versions(demo_run: tuple[list[TrainedVersion], list[str]]) -> list[TrainedVersion]:
    return demo_run[0]


@pytest.fixture(scope="session")
def catalogue(demo_versions: list[TrainedVersion]) -> dict[str, list[TrainedVersion]]:
    """Demo versions grouped by model name, in version order."""
    grouped: dict[str, list[TrainedVersion]] = {}
    for version in demo_versions:
        grouped.setdefault(version.model_name, []).append(version)
    return grouped
