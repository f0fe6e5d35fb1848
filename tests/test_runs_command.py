"""`harness runs` and `harness runs clean` through the real CLI, on records of real runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import git, other_gates_off
from tests.test_loop import FILES, patch, plan, todos


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=cwd,
        # The records' default place is under test, not wherever the environment points.
        env={k: v for k, v in os.environ.items() if k != "HARNESS_RUNS_DIR"},
    )


def steps(gate: str) -> str:
    return (
        f"# STEPS\n\n## BLOCK 1 — Work\n\n- Do it.\n\n**Gate:**\n```bash\n{gate}\n```\n\n"
        "## Guardrails\n\n- Append results to `docs/audits/CLAUDE_PROGRESS.md`.\n"
    )


RUFF_POLICY = (
    '[gates.ruff]\npaths = ["pkg"]\nargs = ["--select", "F"]\n'
    + other_gates_off("ruff")
    + "\n[loop]\nmax_iterations = 1\n"
)
REMOVE_BOTH = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,3 +1 @@\n-import os\n-import sys\n \n"


class Runs:
    """Real runs of `harness run` against one repository, recorded in one directory."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo, self.tmp, self.dir = repo, tmp, tmp / "runs"
        self.n = 0

    def files(self, steps_text: str, policy: str, responses: list[dict[str, Any]]) -> list[str]:
        self.n += 1
        names = [self.tmp / f"{kind}{self.n}" for kind in ("steps", "policy", "script")]
        names[0].write_text(steps_text)
        names[1].write_text(policy)
        names[2].write_text(json.dumps({"responses": responses}))
        return [
            *("run", str(names[0]), "--repo", str(self.repo), "--policy", str(names[1])),
            *("--provider", "scripted", "--script", str(names[2]), "--runs-dir", str(self.dir)),
        ]

    def run(self, steps_text: str, policy: str, responses: list[dict[str, Any]]) -> str:
        before = set(self.dir.iterdir()) if self.dir.exists() else set()
        harness(*self.files(steps_text, policy, responses))
        (new,) = set(self.dir.iterdir()) - before
        return new.name

    def killed(self) -> str:
        """A run killed with SIGKILL while its block's gate runs: unfinished record, stale
        worktree holding its branch."""
        argv = self.files(steps("sleep 60"), other_gates_off(), [])
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *argv], stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("block 1:"):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        (new,) = [
            p
            for p in self.dir.iterdir()
            if json.loads((p / "manifest.json").read_text())["finished"] is None
        ]
        return new.name


def test_runs_lists_and_clean_removes_failed_and_empty_branches_only(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES)
    runs = Runs(repo, tmp_path)
    good = runs.run(
        steps("ruff check pkg"),
        RUFF_POLICY,
        [plan(), todos("T1"), patch("T1", REMOVE_BOTH)],
    )
    failed = runs.run(steps("ruff check pkg"), RUFF_POLICY, [])  # the provider fails: exit 4
    empty = runs.run(steps("true"), other_gates_off(), [])  # goal met before any work
    killed = runs.killed()

    proc = harness("runs", "--runs-dir", str(runs.dir), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["run_id"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {good, failed, empty, killed}
    assert rows[good]["exit_code"] == 0 and rows[good]["finished"]
    assert rows[good]["commits"] == 2 and rows[good]["work_commits"] == 1  # + progress log
    assert rows[failed]["exit_code"] == 4 and rows[failed]["work_commits"] == 0
    assert rows[empty]["exit_code"] == 0 and rows[empty]["commits"] == 1
    assert rows[killed]["finished"] is None and rows[killed]["exit_code"] is None
    assert all(r["branch_exists"] and r["repo"] == str(repo) for r in rows.values())
    assert rows[good]["record"] == str(runs.dir / good)

    text = harness("runs", "--runs-dir", str(runs.dir))
    assert text.returncode == 0 and all(run_id in text.stdout for run_id in rows)

    # The user has the failed run's branch checked out: it stays.
    git(repo, "checkout", "-q", f"harness/{failed}")
    dry = harness("runs", "clean", "--dry-run", "--runs-dir", str(runs.dir), "--json")
    assert dry.returncode == 0, dry.stderr
    plan_ = json.loads(dry.stdout)
    assert plan_["dry_run"] is True
    assert [e["run_id"] for e in plan_["deleted"]] == [empty]
    kept = {e["run_id"]: e["reason"] for e in plan_["kept"]}
    assert kept[failed] == "failed (exit 4), but checked out"
    assert kept[killed] == f"unfinished, resumable: harness resume {runs.dir / killed}"
    branches = git(repo, "branch", "--list", "harness/*").split()
    assert len([b for b in branches if b.startswith("harness/")]) == 4

    git(repo, "checkout", "-q", "main")
    # The killed run is what `harness resume` goes on with: its branch stays unless asked.
    plain = json.loads(harness("runs", "clean", "--runs-dir", str(runs.dir), "--json").stdout)
    assert {e["run_id"] for e in plain["deleted"]} == {failed, empty}
    (resumable,) = plain["kept"]
    assert resumable["run_id"] == killed
    assert resumable["reason"] == f"unfinished, resumable: harness resume {runs.dir / killed}"
    for gone in plain["deleted"]:  # put both back, as the printed sha allows
        git(repo, "branch", gone["branch"], gone["sha"])
    done = harness("runs", "clean", "--resumable", "--runs-dir", str(runs.dir), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    deleted = {e["run_id"]: e for e in result["deleted"]}
    assert set(deleted) == {failed, empty, killed} and result["kept"] == []
    assert deleted[failed]["reason"] == "failed (exit 4)"
    assert deleted[empty]["reason"] == "empty (no commits beyond its base)"
    assert deleted[killed]["reason"] == "unfinished"
    assert git(repo, "branch", "--list", "harness/*").split() == [f"harness/{good}"]
    assert git(repo, "worktree", "list").count("\n") == 1  # the killed run's worktree pruned
    assert all((runs.dir / r / "manifest.json").is_file() for r in rows)  # records kept

    after = json.loads(harness("runs", "--runs-dir", str(runs.dir), "--json").stdout)
    assert {r["run_id"]: r["branch_exists"] for r in after} == {
        good: True,
        failed: False,
        empty: False,
        killed: False,
    }
    assert harness("runs", "clean", "--runs-dir", str(runs.dir)).stdout == "nothing to clean\n"


def test_runs_finds_the_records_of_the_enclosing_repository_from_a_subdirectory(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES)
    (tmp_path / "steps.md").write_text(steps("true"))
    (tmp_path / "policy.toml").write_text(other_gates_off())
    (tmp_path / "script.json").write_text('{"responses": []}')
    run = harness(
        *("run", str(tmp_path / "steps.md"), "--policy", str(tmp_path / "policy.toml")),
        *("--provider", "scripted", "--script", str(tmp_path / "script.json")),
        cwd=repo / "pkg",
    )
    assert run.returncode == 0, run.stderr
    records = repo / ".git" / "harness" / "runs"
    (record,) = records.iterdir()
    proc = harness("runs", "--json", cwd=repo / "tests")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["run_id"] == record.name and row["record"] == str(record)

    other = make_repo({"a.py": "x = 1\n"}, name="other")
    assert json.loads(harness("runs", "--repo", str(other), "--json", cwd=repo).stdout) == []
