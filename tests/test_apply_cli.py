"""`harness apply` end to end: real gates (ruff + pytest) before and after, keep or revert."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import GitError, PatchError, PatchRejected
from harness.guard import apply_verdict, check_patch
from harness.policy import GuardConfig

from .conftest import git, other_gates_off

MakeRepo = Callable[..., Path]
pytestmark = pytest.mark.slow

POLICY = """
name = "apply-test"
detect = false
[gates.ruff]
paths = ["pkg"]
[gates.pytest]
args = ["-q", "-p", "no:cacheprovider"]
""" + other_gates_off("ruff", "pytest")
FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
    "tests/test_calc.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
    ".gitignore": "__pycache__/\n.coverage\n",
}
FIX = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,4 +1,2 @@\n-import os\n-\n \n def add(a, b):\n"
BREAK = (
    "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -4,2 +4,2 @@\n"
    " def add(a, b):\n-    return a + b\n+    return a - b\n"
)


def run(repo: Path, policy: Path, patch: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "apply",
            "--repo",
            str(repo),
            "--policy",
            str(policy),
            *extra,
            "-",
        ],
        input=patch,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def setup(make_repo: MakeRepo, tmp_path: Path) -> tuple[Path, Path]:
    repo = make_repo(FILES)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return repo, policy


def test_improvement_is_kept_with_gate_deltas(setup: tuple[Path, Path]) -> None:
    repo, policy = setup
    head = git(repo, "rev-parse", "HEAD").strip()
    proc = run(repo, policy, FIX, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["kept"] is True and out["files"] == [
        {"path": "pkg/calc.py", "added": 0, "removed": 2}
    ]
    assert git(repo, "rev-parse", "HEAD~1").strip() == head
    msg = git(repo, "log", "-1", "--format=%B")
    assert "Gate-ruff: failed, 1 findings -> passed, 0 findings" in msg
    assert "Gate-pytest: passed, 1 passed/0 failing" in msg
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "show", "--stat", "--format=", "HEAD").count("|") == 1


def test_regression_restores_head_and_tree_exactly(setup: tuple[Path, Path]) -> None:
    repo, policy = setup
    head = git(repo, "rev-parse", "HEAD").strip()
    proc = run(repo, policy, BREAK)
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert "test_broken" in proc.stdout and "reverted" in proc.stderr
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / "pkg/calc.py").read_text() == FILES["pkg/calc.py"]


WRITER = (
    "from pathlib import Path\n\n\n"
    "def test_writes_files():\n"
    "    Path('test-output.log').write_text('run\\n')\n"
    "    Path('logs').mkdir(exist_ok=True)\n"
    "    Path('logs/run.txt').write_text('run\\n')\n"
    "    Path('build').mkdir(exist_ok=True)\n"
    "    Path('build/new.o').write_text('run\\n')\n"
    "    Path('tests/fixture.txt').write_text('overwritten\\n')\n"
)


@pytest.fixture
def writer(make_repo: MakeRepo, tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose test suite writes files into the checkout, tracked and untracked."""
    files = {
        **FILES,
        ".gitignore": "__pycache__/\n.coverage\nbuild/\n*.local\n",
        "tests/test_writer.py": WRITER,
        "tests/fixture.txt": "original\n",
    }
    repo = make_repo(files)
    # What the user already had, ignored by git: it must survive every outcome.
    (repo / "notes.local").write_text("mine\n")
    (repo / "build").mkdir()
    (repo / "build/old.o").write_text("mine\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return repo, policy


def found(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all")


@pytest.mark.parametrize("warm_cache", [False, True])
def test_files_a_test_run_writes_are_not_committed_and_not_left(
    writer: tuple[Path, Path], warm_cache: bool
) -> None:
    repo, policy = writer
    start = found(repo)
    if warm_cache:
        # The "before" gates then come from the cache: only the "after" run writes files.
        gates = [sys.executable, "-m", "harness", "gates", "--repo", str(repo), "--policy"]
        subprocess.run([*gates, str(policy)], capture_output=True, check=False)
        # `harness gates` itself leaves the checkout as it found it.
        assert found(repo) == start
    proc = run(repo, policy, FIX)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["pkg/calc.py"]
    assert found(repo) == start
    assert (repo / "tests/fixture.txt").read_text() == "original\n"
    assert (repo / "notes.local").read_text() == "mine\n"
    assert (repo / "build/old.o").read_text() == "mine\n"
    assert not (repo / "test-output.log").exists() and not (repo / "logs").exists()


def test_regression_leaves_a_writing_suite_checkout_as_found(
    writer: tuple[Path, Path],
) -> None:
    repo, policy = writer
    head, start = git(repo, "rev-parse", "HEAD"), found(repo)
    proc = run(repo, policy, BREAK)
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert git(repo, "rev-parse", "HEAD") == head
    assert found(repo) == start
    assert (repo / "tests/fixture.txt").read_text() == "original\n"
    assert (repo / "notes.local").read_text() == "mine\n"


def test_a_suite_that_rewrites_the_patched_file_commits_nothing(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    rewriter = (
        "from pathlib import Path\n\n\n"
        "def test_rewrites():\n    Path('pkg/calc.py').write_text('x = 1\\n')\n"
    )
    repo = make_repo({**FILES, "tests/test_rewrite.py": rewriter})
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    head, start = git(repo, "rev-parse", "HEAD"), found(repo)
    proc = run(repo, policy, FIX)
    assert proc.returncode == 2 and "changed pkg/calc.py" in proc.stderr, proc.stderr
    assert git(repo, "rev-parse", "HEAD") == head
    assert found(repo) == start
    assert (repo / "pkg/calc.py").read_text() == FILES["pkg/calc.py"]


def test_dirty_tree_is_refused_and_left_alone(setup: tuple[Path, Path]) -> None:
    repo, policy = setup
    (repo / "pkg/calc.py").write_text("dirty\n")
    (repo / "scratch.txt").write_text("mine\n")
    proc = run(repo, policy, FIX)
    assert proc.returncode == 2 and "uncommitted changes" in proc.stderr
    assert (repo / "pkg/calc.py").read_text() == "dirty\n"
    assert (repo / "scratch.txt").read_text() == "mine\n"


def test_after_harness_init_its_untracked_files_are_not_a_dirty_tree(
    make_repo: MakeRepo,
) -> None:
    """The README's order: `harness init`, then `harness apply`. What init wrote is still
    untracked; a refused patch must leave it in place, a kept one must not commit it."""
    repo = make_repo(FILES)
    init = subprocess.run(
        [sys.executable, "-m", "harness", "init", "--repo", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    written = {p: (repo / p).read_text() for p in ("harness.toml", "STEPS.md")}
    apply = [sys.executable, "-m", "harness", "apply", "--repo", str(repo), "--json", "-"]
    broke = subprocess.run(apply, input=BREAK, capture_output=True, text=True, check=False)
    assert broke.returncode == 3 and "regression" in broke.stderr, broke.stderr
    assert {p: (repo / p).read_text() for p in written} == written
    kept = subprocess.run(apply, input=FIX, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stderr + kept.stdout
    assert json.loads(kept.stdout)["kept"] is True
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["pkg/calc.py"]
    assert git(repo, "status", "--porcelain").split() == ["??", "STEPS.md", "??", "harness.toml"]


def test_rejected_patch_exits_1_without_running_gates(setup: tuple[Path, Path]) -> None:
    repo, policy = setup
    head = git(repo, "rev-parse", "HEAD").strip()
    patch = FIX.replace("-import os\n", "-import os  # noqa\n")
    proc = run(repo, policy, patch, "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["violations"][0]["rule"] == "locate"
    assert git(repo, "rev-parse", "HEAD").strip() == head


def test_apply_verdict_api(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n", "b.py": "y = 1\n"})
    cfg = GuardConfig()
    patch = (
        "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
        "--- a/b.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-y = 1\n"
    )
    v = check_patch(patch, repo, cfg)
    assert v.accepted, v.violations
    sha = apply_verdict(repo, v, "change", {"Harness-Item": "T1"})
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert git(repo, "log", "-1", "--format=%B").strip().endswith("Harness-Item: T1")
    assert git(repo, "show", "--numstat", "--format=", "HEAD").split() == [
        "1",
        "1",
        "a.py",
        "0",
        "1",
        "b.py",
    ]
    # The same verdict again: the tree moved on, so it is refused and nothing changes.
    with pytest.raises(PatchError):
        apply_verdict(repo, v, "again")
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    bad = check_patch("--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 2\n+x = 3  # noqa\n", repo, cfg)
    with pytest.raises(PatchRejected) as exc:
        apply_verdict(repo, bad, "no")
    assert exc.value.violations[0].rule == "suppression"
    (repo / "a.py").write_text("dirty\n")
    good = check_patch("--- /dev/null\n+++ b/c.py\n@@ -0,0 +1 @@\n+z\n", repo, cfg)
    assert good.accepted
    with pytest.raises(GitError):
        apply_verdict(repo, good, "dirty")
    assert not (repo / "c.py").exists()
    assert (repo / "a.py").read_text() == "dirty\n"
