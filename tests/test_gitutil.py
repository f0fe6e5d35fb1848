"""gitutil on real repositories: the tree hash and leaving a checkout as it was found."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gitutil import left_as_found, open_repo, tree_hash
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
