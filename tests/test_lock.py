"""requirements.lock, which the test command installs from, holds every dependency
pyproject.toml names (the test extra's too) at a version pyproject.toml allows, and is what is
installed: a change of dependencies comes with a refreshed lock (README says how)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENTS = [
    Requirement(line)
    for line in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["test"]]
]


def _locked() -> dict[str, Version]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = (re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line) for line in lines)
    return {canonicalize_name(pin[1]): Version(pin[2]) for pin in pins if pin}


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_the_lock_holds_an_allowed_version(requirement: Requirement):
    locked = _locked().get(canonicalize_name(requirement.name))

    assert locked is not None, f"{requirement.name} is not in requirements.lock: refresh it"
    assert locked in requirement.specifier, f"{requirement.name} {locked} is not {requirement}"


def test_what_is_installed_is_what_is_locked():
    installed = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version) for dist in distributions()
    }
    differing = {
        name: f"{installed[name]} installed, {locked} locked"
        for name, locked in _locked().items()
        if name in installed and installed[name] != locked
    }
    assert differing == {}, "install with README's test command (pip install -c requirements.lock)"
