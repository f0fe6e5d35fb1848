"""`harness run` option handling (the loop itself is tested in test_loop.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands.run import parse_blocks, records_dir
from harness.errors import UsageError
from harness.record import read_events
from tests.conftest import git


def test_records_never_go_into_the_target_checkout(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    monkeypatch.chdir(repo)
    assert records_dir(None, repo) == repo / ".git" / "harness" / "runs"
    monkeypatch.chdir(tmp_path)
    assert records_dir(None, repo) == tmp_path / "runs"
    assert records_dir(Path("elsewhere"), repo) == Path("elsewhere")


def test_blocks_option() -> None:
    assert parse_blocks("1, 3") == [1, 3]
    assert parse_blocks(None) is None
    with pytest.raises(UsageError, match="numbers separated by commas"):
        parse_blocks("one")


SEEDLIKE = """# STEPS

## BLOCK 1 — Ruff to 0

Run: `ruff check lukhas`

## BLOCK 2 — Security

Run: `bandit -r lukhas -c bandit.yaml`
"""


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_script_paths_the_repository_lacks_stop_before_anything_is_created(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"src/click/__init__.py": "import os\n", "STEPS.md": SEEDLIKE})
    runs = tmp_path / "runs"
    branches = git(repo, "branch", "--list")
    proc = _harness("run", "STEPS.md", "--repo", str(repo), "--runs-dir", str(runs), cwd=repo)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: error: STEPS.md: block 1 names ruff path 'lukhas'")
    assert "detected packages: src/click" in last and "--path lukhas=src/click" in last
    # Every path the repository lacks at once, each once, with the whole fix to run.
    assert "block 2 names bandit config file 'bandit.yaml'" in last
    assert "run with --path lukhas=src/click --path bandit.yaml= (" in last
    assert not runs.exists()  # no record, no branch, no worktree
    assert git(repo, "branch", "--list") == branches
    assert "harness" not in git(repo, "worktree", "list")


def test_path_option_points_the_script_at_this_repository(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"src/click/__init__.py": "import os\n", "STEPS.md": SEEDLIKE})
    runs = tmp_path / "runs"
    proc = _harness(
        "run", "STEPS.md", "--repo", str(repo), "--runs-dir", str(runs), "--blocks", "1",
        "--path", "lukhas=src/click", "--path", "bandit.yaml=", cwd=repo,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "src/click/**" in proc.stderr  # the lane follows the mapped path
    run_dir = next(runs.iterdir())
    events = read_events(run_dir)
    ruff = next(e for e in events if e["kind"] == "gates")["results"]["ruff"]
    assert ruff["command"][-1] == "src/click"


def test_bad_path_option_is_a_usage_error(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "STEPS.md": SEEDLIKE})
    proc = _harness("run", "STEPS.md", "--repo", str(repo), "--path", "lukhas", cwd=repo)
    assert proc.returncode == 2
    assert "--path takes SCRIPT_PATH=REPO_PATH" in proc.stderr


def test_a_gate_that_cannot_run_at_a_blocks_start_stops_the_run(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    script = (
        "# S\n\n## BLOCK 1 — Ruff\n\nRun: `ruff check pkg`\n\n"
        "## BLOCK 2 — MyPy\n\nRun: `mypy pkg`\n"
    )
    policy = '[gates.ruff]\nconfig = "missing-ruff.toml"\n'
    files = {"pkg/__init__.py": "import os\n", "STEPS.md": script, "harness.toml": policy}
    repo = make_repo(files)
    runs = tmp_path / "runs"
    proc = _harness("run", "STEPS.md", "--repo", str(repo), "--runs-dir", str(runs), cwd=repo)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "block 1: gate ruff could not run at the block's start" in proc.stderr
    assert "missing-ruff.toml" in proc.stderr
    assert "block 2" not in proc.stderr  # it stopped; it did not go on through the blocks
    run_dir = next(runs.iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["exit_code"] == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [b["status"] for b in summary["blocks"]] == ["gate_error"]


def test_missing_metrics_never_crash_the_summary() -> None:
    from harness.commands.run import deltas
    from harness.outcome import BlockOutcome

    block = BlockOutcome(
        number=1,
        title="t",
        gates=["pytest", "ruff"],
        status="gate_error",
        before={"gates": {"coverage": {"status": "failed", "findings": {"percent": None}}}},
        after={"gates": {"ruff": {"status": "error", "findings": None}}},
    )
    assert deltas(block) == "coverage ? -> ?, ruff ? -> error"
