"""Shared fixtures: real git repositories in tmp_path, pinned identities, no network."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

PINNED = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live", action="store_true", help="run tests that call the real API")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--live") and os.environ.get("ANTHROPIC_API_KEY"):
        return
    skip = pytest.mark.skip(reason="live API test: pass --live and set ANTHROPIC_API_KEY")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _pinned_git(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Test\n\temail = test@example.invalid\n"
    )
    monkeypatch.setenv("HOME", str(home))
    for key, value in PINNED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture(autouse=True)
def _private_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads or writes the real user cache: each gets its own, empty."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("harness-cache")))
    monkeypatch.delenv("HARNESS_CACHE_MAX_MB", raising=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def replace_in_file(root: Path, rel: str, old: str, new: str) -> None:
    """Edit a file of a test repository in place; the text to replace must be there."""
    target = root / rel
    text = target.read_text()
    assert old in text, f"{old!r} is not in {rel}"
    target.write_text(text.replace(old, new))


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """make_repo({"path": "text", ...}, name="repo") -> a committed git repo."""

    def _make(files: dict[str, str], name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        write_files(root, files)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "initial")
        return root

    return _make


GATE_NAMES = ("ruff", "mypy", "pytest", "bandit", "imports", "secrets")


def other_gates_off(*enabled: str) -> str:
    """Policy TOML turning off every gate not named, so a test pays only for the tools it uses.
    The test writes the tables of the gates it keeps."""
    return "".join(f"\n[gates.{g}]\nenabled = false\n" for g in GATE_NAMES if g not in enabled)
