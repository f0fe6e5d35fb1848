"""The harness holds itself to its own gates: ruff, mypy --strict and bandit on our own code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_ruff_clean() -> None:
    for args in (
        ("ruff", "check", "harness", "tests", "bench"),
        ("ruff", "format", "--check", "harness", "tests", "bench"),
    ):
        proc = tool(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict_clean() -> None:
    proc = tool("mypy", "harness")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_bandit_clean() -> None:
    proc = tool("bandit", "-q", "-r", "harness", "-c", "pyproject.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
