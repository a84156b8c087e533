"""Code style is part of the build: ruff format and ruff lint must be clean, and mypy --strict
on the packages pyproject.toml's [tool.mypy] names."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "arguments", [["format", "--check", "."], ["check", "."]], ids=["format", "lint"]
)
def test_ruff_is_clean(arguments: list[str]):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _lay_out_as_installed(tree: Path) -> None:
    """The package under `tree` as it installs, in symbolic links: [tool.setuptools.package-dir]
    maps `modelql.services` to services/ and so on, through an editable-install finder that
    mypy cannot see (it reads only the folders on the search path)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(folders.items()):
        target = tree.joinpath(*package.split("."))
        if any(other.startswith(f"{package}.") for other in folders):
            target.mkdir(parents=True)
            for entry in (ROOT / folder).iterdir():
                (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(ROOT / folder, target_is_directory=True)


def test_mypy_strict_is_clean(tmp_path: Path):
    """With a new cache, as in CI; a path in the output such as modelql/services/feed.py is
    services/feed.py in the repository."""
    tree = tmp_path / "installed"
    _lay_out_as_installed(tree)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
