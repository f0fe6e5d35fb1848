"""A released project as the benches use it: its PyPI sdist committed in a /tmp git repository
(pinned author and date, so the tree hash is the same on every machine) and a venv of its own
with the tools its tests need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

PINNED_GIT = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
TEST_TOOLS = ["pytest==9.2.0", "pytest-cov==7.1.0", "coverage==7.17.5"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **PINNED_GIT},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def prepare_sdist(
    name: str, version: str, repo: Path, venv: Path, *, tools: list[str], editable: bool
) -> None:
    """Download `name==version`'s sdist beside `repo`, unpack it there as one commit, and build
    `venv` with `tools` (and the project installed editable, as a user would have it)."""
    root = repo.parent
    root.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, f"{name}=={version}", "-d", str(root)], check=True)
    shutil.rmtree(repo, ignore_errors=True)
    with tarfile.open(root / f"{name}-{version}.tar.gz") as tar:
        tar.extractall(root, filter="data")
    unpacked = root / f"{name}-{version}"
    if unpacked != repo:
        unpacked.rename(repo)
    git(repo, "init", "-q", "-b", "main")
    # `pip install -e` rewrites the sdist's egg-info; keep it out of the tree under test.
    (repo / ".git" / "info" / "exclude").write_text("*.egg-info/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"sdist {name}-{version}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*vpip, *tools], check=True)
    if editable:
        subprocess.run([*vpip, "--no-deps", "-e", str(repo)], check=True)
