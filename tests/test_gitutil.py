"""gitutil on real repositories: the tree hash, leaving a checkout as it was found, finding the
enclosing repository, run worktrees (and the ones a killed run leaves), run branches."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import GitError
from harness.gitutil import (
    delete_branch,
    left_as_found,
    open_repo,
    prune_stale_worktrees,
    resolve_repo,
    tree_hash,
    worktree,
)
from tests.conftest import git


def test_clean_tree_hashes_as_head(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    assert tree_hash(open_repo(repo)) == git(repo, "rev-parse", "HEAD^{tree}").strip()


@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
def test_edit_hidden_by_index_flag_changes_the_hash(
    make_repo: Callable[..., Path], flag: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n", "b.py": "y = 2\n"})
    clean = tree_hash(open_repo(repo))
    git(repo, "update-index", flag, "a.py")
    (repo / "a.py").write_text("x = 'edited'\n")
    index_before = (repo / ".git" / "index").read_bytes()
    # git itself is fooled: the user's index says nothing changed.
    assert git(repo, "status", "--porcelain") == ""
    assert tree_hash(open_repo(repo)) != clean
    assert (repo / ".git" / "index").read_bytes() == index_before


def test_untracked_file_changes_the_hash_ignored_one_does_not(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"a.py": "x = 1\n", ".gitignore": "gen/\n"})
    clean = tree_hash(open_repo(repo))
    (repo / "gen").mkdir()
    (repo / "gen" / "g.py").write_text("z = 3\n")
    assert tree_hash(open_repo(repo)) == clean
    (repo / "new.py").write_text("z = 3\n")
    assert tree_hash(open_repo(repo)) != clean


def test_left_as_found_removes_only_what_the_run_wrote(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"a.py": "x = 1\n", "b.py": "y = 2\n", ".gitignore": "cache/\n"})
    (repo / "b.py").write_text("y = 'user edit'\n")
    (repo / "mine").mkdir()
    (repo / "mine/keep.txt").write_text("user\n")
    (repo / "cache").mkdir()
    (repo / "cache/old").write_text("user\n")
    with left_as_found(open_repo(repo)):
        (repo / "coverage.xml").write_text("<r/>\n")
        (repo / "htmlcov").mkdir()
        (repo / "htmlcov/index.html").write_text("<html/>\n")
        (repo / "mine/run.log").write_text("run\n")
        (repo / "cache/new").write_text("run\n")
        (repo / "a.py").write_text("x = 'rewritten by a test'\n")
    assert not (repo / "coverage.xml").exists() and not (repo / "htmlcov").exists()
    assert not (repo / "mine/run.log").exists() and not (repo / "cache/new").exists()
    assert (repo / "mine/keep.txt").exists() and (repo / "cache/old").exists()
    assert (repo / "a.py").read_text() == "x = 1\n"
    assert (repo / "b.py").read_text() == "y = 'user edit'\n"


def test_resolve_repo_finds_the_top_level_from_a_subdirectory(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo({"pkg/deep/a.py": "x = 1\n"})
    assert resolve_repo(repo / "pkg" / "deep") == repo
    monkeypatch.chdir(repo / "pkg")
    assert resolve_repo(None) == repo
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(
        GitError, match=re.escape(f"not a git repository (nor inside one): {outside}")
    ):
        resolve_repo(outside)


def _registered(repo: Path) -> list[str]:
    return [
        line.removeprefix("worktree ")
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_a_run_worktree_is_locked_by_its_pid_and_removed_on_exit(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    with worktree(open_repo(repo), "harness/one", "HEAD") as wt:
        listing = git(repo, "worktree", "list", "--porcelain")
        assert f"locked harness pid {os.getpid()}" in listing
    assert not wt.exists() and not wt.parent.exists()
    assert _registered(repo) == [str(repo)]
    assert git(repo, "branch", "--list", "harness/one").strip() == "harness/one"


ENTER_AND_WAIT = """
import sys, time
from harness.gitutil import open_repo, worktree
with worktree(open_repo(sys.argv[1]), "harness/killed", "HEAD") as wt:
    print(wt, flush=True)
    time.sleep(120)
"""


def test_the_worktree_of_a_killed_run_is_pruned_at_the_next_run(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    child = subprocess.Popen(
        [sys.executable, "-c", ENTER_AND_WAIT, str(repo)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    left = Path(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert left.is_dir() and str(left) in _registered(repo)  # what kill -9 leaves behind

    # A live run's worktree is never touched, only the dead one's.
    with worktree(open_repo(repo), "harness/next", "HEAD") as live:
        assert not left.exists() and not left.parent.exists()
        assert _registered(repo) == [str(repo), str(live)]
        assert prune_stale_worktrees(open_repo(repo)) == []
        assert live.is_dir()
    branches = git(repo, "branch", "--list", "harness/*").split()
    assert branches == ["harness/killed", "harness/next"]  # the killed run's branch is kept


def test_a_stale_worktree_whose_directory_is_gone_is_pruned(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    child = subprocess.Popen(
        [sys.executable, "-c", ENTER_AND_WAIT, str(repo)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    left = Path(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    shutil.rmtree(left.parent)  # a tmp cleaner got there first
    assert prune_stale_worktrees(open_repo(repo)) == [left]
    assert _registered(repo) == [str(repo)]


def test_only_unchecked_out_harness_branches_are_deleted(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    git(repo, "branch", "harness/old")
    git(repo, "branch", "feature")
    sha = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(GitError, match="not a harness branch, not deleting: feature"):
        delete_branch(open_repo(repo), "feature")
    git(repo, "checkout", "-q", "harness/old")
    with pytest.raises(GitError, match="branch is checked out, not deleting: harness/old"):
        delete_branch(open_repo(repo), "harness/old")
    git(repo, "checkout", "-q", "main")
    assert delete_branch(open_repo(repo), "harness/old") == sha
    assert git(repo, "branch", "--list", "harness/*") == ""


def test_change_key_names_the_change_not_where_it_sits(make_repo: Callable[..., Path]) -> None:
    from harness.gitutil import change_key, commit_change_key

    repo = make_repo({"x.py": "import os\nimport sys\n"})
    at1 = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1 @@\n-import os\n import sys\n"
    moved = "--- a/x.py\n+++ b/x.py\n@@ -9,2 +9 @@\n-import os\n import re\n"
    other = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1 @@\n import os\n-import sys\n"
    assert change_key(at1) == change_key(moved) != ""  # line numbers and context do not count
    assert change_key(at1) != change_key(other)
    (repo / "x.py").write_text("import sys\n")
    git(repo, "commit", "-qam", "drop os")
    assert commit_change_key(open_repo(repo), "HEAD") == change_key(at1)


def test_plain_git_answers_as_gitpython_did(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    """harness.gitplain (what `harness gates` uses instead of GitPython) against GitPython's own
    answers: the repository root, its common dir from a linked worktree, the refusals."""
    from harness import gitplain

    repo = make_repo({"a.py": "x = 1\n", "pkg/b.py": "y = 2\n"})
    assert gitplain.repo_root(repo) == repo.resolve()
    assert gitplain.common_dir(repo) == Path(open_repo(repo).common_dir).resolve()
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    assert gitplain.common_dir(linked) == Path(open_repo(linked).common_dir).resolve()
    assert gitplain.common_dir(linked) == (repo / ".git").resolve()
    assert gitplain.tree_hash(linked) == tree_hash(open_repo(repo))
    # GitPython's Repo(path) refuses a directory inside a work tree; so does repo_root.
    with pytest.raises(GitError, match=re.escape(f"not a git repository: {repo / 'pkg'}")):
        gitplain.repo_root(repo / "pkg")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    for ask in (gitplain.repo_root, gitplain.toplevel, resolve_repo):
        with pytest.raises(GitError, match="bare repository not supported"):
            ask(bare)


def test_an_unborn_branch_hashes_its_files(tmp_path: Path) -> None:
    from harness import gitplain

    root = tmp_path / "new"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.py").write_text("x = 1\n")
    empty = git(root, "hash-object", "-t", "tree", "/dev/null").strip()
    assert gitplain.tree_hash(root) not in ("", empty)
    with gitplain.left_as_found(root):
        (root / "report.xml").write_text("<r/>\n")
    assert sorted(p.name for p in root.iterdir()) == [".git", "a.py"]
