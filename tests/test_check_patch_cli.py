"""`harness check-patch` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import git

MakeRepo = Callable[..., Path]
PATCH = "--- a/lukhas/a.py\n+++ b/lukhas/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "check-patch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_accepted_json_from_stdin(make_repo: MakeRepo) -> None:
    repo = make_repo({"lukhas/a.py": "x = 1\n"})
    proc = run("--repo", str(repo), "--json", "-", stdin=PATCH)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    layers = out.pop("layers")
    assert out == {
        "accepted": True,
        "repaired": False,
        "files": [{"path": "lukhas/a.py", "added": 1, "removed": 1}],
        "violations": [],
    }
    # It says which layers it ran, and that the test-running ones are not among them.
    assert [(x["layer"], x["ran"]) for x in layers] == [
        ("static", True),
        ("secrets", True),
        ("behaviour", False),
        ("mutation", False),
        ("review", False),
    ]
    assert git(repo, "status", "--porcelain") == ""


STEPS = "# S\n\n## BLOCK 1 — Coverage to >=60%\n\nRun: `pytest --cov=lukhas --cov-fail-under=60`\n"


def test_rejected_by_block_lane_exits_1(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"lukhas/a.py": "x = 1\n"})
    patch = tmp_path / "p.diff"
    patch.write_text(PATCH)
    script = tmp_path / "STEPS.md"
    script.write_text(STEPS)
    # Without the script, block 1 is just a number: no lanes follow from it.
    assert run("--repo", str(repo), "--block", "1", str(patch)).returncode == 0
    proc = run("--repo", str(repo), "--block", "1", "--steps", str(script), "--json", str(patch))
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["accepted"] is False
    assert out["violations"][0]["rule"] == "paths"
    human = run("--repo", str(repo), "--block", "1", "--steps", str(script), str(patch))
    assert human.returncode == 1 and "outside this block's lanes" in human.stdout


def test_usage_and_io_errors_exit_2(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": "x\n"})
    missing = run("--repo", str(repo), str(tmp_path / "nope.diff"))
    assert missing.returncode == 2 and "cannot read patch" in missing.stderr
    not_repo = run("--repo", str(tmp_path), "-", stdin=PATCH)
    assert not_repo.returncode == 2 and "not a git repository" in not_repo.stderr
    bad_policy = tmp_path / "p.toml"
    bad_policy.write_text("[guard]\nnonsense = 1\n")
    proc = run("--repo", str(repo), "--policy", str(bad_policy), "-", stdin=PATCH)
    assert proc.returncode == 2 and "unknown key" in proc.stderr
