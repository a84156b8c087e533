"""Code style is part of the build: ruff format and ruff lint must be clean."""

from __future__ import annotations

import subprocess
import sys
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
