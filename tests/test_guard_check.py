"""check_patch end to end on real git repositories: repairs, placement, atomicity."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import GitError
from harness.guard import check_patch, extract_diff
from harness.guard.check import _PathRefused, _Tree
from harness.policy import GuardConfig

from .conftest import git

MakeRepo = Callable[..., Path]
BODY = "".join(f"line{i}\n" for i in range(1, 30))
CFG = GuardConfig()


def git_diff_of(repo: Path, edits: dict[str, str | None]) -> str:
    """A real `git diff` for the edits, then the repo is put back."""
    for rel, text in edits.items():
        if text is None:
            (repo / rel).unlink()
        else:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached")
    git(repo, "reset", "-q", "--hard", "HEAD")
    return diff


def snapshot(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--untracked-files=all") + git(
        repo, "rev-parse", "HEAD"
    )


def test_real_git_diff_is_accepted_unrepaired(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY})
    diff = git_diff_of(repo, {"a.py": BODY.replace("line12\n", "LINE12\n")})
    before = snapshot(repo)
    v = check_patch(diff, repo, CFG)
    assert v.accepted and not v.repaired, v.violations
    assert [(f.path, f.added, f.removed) for f in v.files] == [("a.py", 1, 1)]
    assert v.contents["a.py"] == BODY.replace("line12\n", "LINE12\n").encode()
    assert v.diff == diff.replace("index ", "").split("\n", 1)[0] + "\n" + v.diff.split("\n", 1)[1]
    assert snapshot(repo) == before


def test_wrong_counts_and_line_numbers_are_repaired(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY})
    patch = (
        "--- a/a.py\n+++ b/a.py\n@@ -40,9 +40,2 @@\n line10\n line11\n-line12\n+LINE12\n line13\n"
    )
    v = check_patch(patch, repo, CFG)
    assert v.accepted and v.repaired
    assert any("counts corrected" in r for r in v.repairs)
    assert any("moved to line 10" in r for r in v.repairs)
    assert v.contents["a.py"] == BODY.replace("line12\n", "LINE12\n").encode()


def test_fenced_block_in_prose_and_crlf_patch(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY})
    patch = (
        "I will fix it.\r\n```diff\r\n--- a/a.py\r\n+++ b/a.py\r\n@@ -2,3 +2,3 @@\r\n"
        " line2\r\n-line3\r\n+LINE3\r\n line4\r\n```\r\nThanks"
    )
    v = check_patch(patch, repo, CFG)
    assert v.accepted and v.repaired
    assert v.contents["a.py"] == BODY.replace("line3\n", "LINE3\n").encode()


def test_crlf_file_keeps_its_line_endings(make_repo: MakeRepo) -> None:
    text = "a\r\nb\r\nc\r\n"
    repo = make_repo({"README": "r\n"})
    (repo / "w.txt").write_bytes(text.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "crlf")
    v = check_patch("--- a/w.txt\n+++ b/w.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c", repo, CFG)
    assert v.accepted
    assert v.contents["w.txt"] == b"a\r\nB\r\nc\r\n"


def test_ambiguous_context_is_rejected_with_line_numbers(make_repo: MakeRepo) -> None:
    text = "x = 1\ny = 2\n\n" * 3
    repo = make_repo({"d.py": text})
    patch = "--- a/d.py\n+++ b/d.py\n@@ -50,2 +50,2 @@\n x = 1\n-y = 2\n+y = 3\n"
    v = check_patch(patch, repo, CFG)
    assert not v.accepted
    (viol,) = v.violations
    assert viol.rule == "locate" and "3 times" in viol.message and "1, 4, 7" in viol.message


def test_stated_position_disambiguates_repeated_context(make_repo: MakeRepo) -> None:
    text = "x = 1\ny = 2\n\n" * 3
    repo = make_repo({"d.py": text})
    patch = "--- a/d.py\n+++ b/d.py\n@@ -4,2 +4,2 @@\n x = 1\n-y = 2\n+y = 3\n"
    v = check_patch(patch, repo, CFG)
    assert v.accepted
    assert v.contents["d.py"] == (b"x = 1\ny = 2\n\nx = 1\ny = 3\n\nx = 1\ny = 2\n\n")


def test_missing_context_names_closest_lines(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY})
    patch = "--- a/a.py\n+++ b/a.py\n@@ -10,3 +10,3 @@\n line10\n-line11 extra\n+LINE11\n line12\n"
    v = check_patch(patch, repo, CFG)
    assert not v.accepted
    msg = v.violations[0].message
    assert (
        "hunk 1 of a.py" in msg
        and "'line11 extra'" in msg
        and "'line11'" in msg
        and "line 11" in msg
    )


def test_whitespace_tolerant_match_keeps_file_context(make_repo: MakeRepo) -> None:
    repo = make_repo({"w.py": "def f():\n    a  =  1\n    return a\n"})
    patch = (
        "--- a/w.py\n+++ b/w.py\n@@ -1,3 +1,3 @@\n"
        " def f():\n-    a = 1\n+    a = 2\n     return a\n"
    )
    v = check_patch(patch, repo, CFG)
    assert v.accepted and any("ignoring whitespace" in r for r in v.repairs)
    assert v.contents["w.py"] == b"def f():\n    a = 2\n    return a\n"


IF_BLOCK = "def f(x):\n    a = 0\n    if x:\n        a = 1\n    return a\n"


def test_whitespace_tolerant_match_reindents_added_lines(make_repo: MakeRepo) -> None:
    repo = make_repo({"w.py": IF_BLOCK})
    # The model dropped one level of indentation on every line; kept as sent, `b = 2` would
    # leave the `if` body.
    for sent in ("", "  ", "      "):
        patch = (
            "--- a/w.py\n+++ b/w.py\n@@ -3,3 +3,4 @@\n"
            f" {sent}if x:\n-{sent}    a = 1\n+{sent}    a = 1\n+{sent}    b = 2\n {sent}return a\n"
        )
        v = check_patch(patch, repo, CFG)
        assert v.accepted, (sent, v.violations)
        want = IF_BLOCK.replace("        a = 1\n", "        a = 1\n        b = 2\n")
        assert v.contents["w.py"] == want.encode(), sent


def test_whitespace_tolerant_match_with_uneven_indentation_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"w.py": IF_BLOCK})
    uneven = (
        "--- a/w.py\n+++ b/w.py\n@@ -3,3 +3,4 @@\n"
        "     if x:\n-    a = 1\n+    a = 1\n+    b = 2\n     return a\n"
    )
    v = check_patch(uneven, repo, CFG)
    assert [x.rule for x in v.violations] == ["locate"]
    assert "copy the indentation exactly" in v.violations[0].message
    mixed = "--- a/w.py\n+++ b/w.py\n@@ -1,2 +1,2 @@\n def f(x):\n-  a = 0\n+  a = 5\n"
    v = check_patch(mixed, repo, CFG)
    assert [x.rule for x in v.violations] == ["locate"]


def test_all_or_nothing_one_bad_hunk_rejects_everything(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY, "b.py": BODY})
    patch = (
        "--- a/a.py\n+++ b/a.py\n@@ -2,3 +2,3 @@\n line2\n-line3\n+X\n line4\n"
        "--- a/b.py\n+++ b/b.py\n@@ -2,3 +2,3 @@\n line2\n-nope\n+X\n line4\n"
    )
    v = check_patch(patch, repo, CFG)
    assert not v.accepted
    assert [x.rule for x in v.violations] == ["locate"]


def test_new_deleted_and_renamed_files(make_repo: MakeRepo) -> None:
    repo = make_repo({"old.py": "a\nb\n", "gone.py": "x\n", "keep.py": "k\n"})
    git(repo, "mv", "old.py", "new.py")
    git(repo, "commit", "-qm", "x")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    # Build one real git diff containing a rename with a change, a deletion and a creation.
    (repo / "old.py").rename(repo / "new.py")
    (repo / "new.py").write_text("a\nB\n")
    (repo / "gone.py").unlink()
    (repo / "made.py").write_text("hello\n")
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached", "-M")
    git(repo, "reset", "-q", "--hard", "HEAD")
    git(repo, "clean", "-fdq")
    v = check_patch(diff, repo, CFG)
    assert v.accepted, v.violations
    assert v.contents == {
        "old.py": None,
        "new.py": b"a\nB\n",
        "gone.py": None,
        "made.py": b"hello\n",
    }
    numstat = git(repo, "diff", "--numstat", "HEAD", "--", ".")  # nothing yet: repo untouched
    assert numstat == ""
    stats = {f.path: (f.added, f.removed) for f in v.files}
    assert stats == {"new.py": (1, 1), "gone.py": (0, 1), "made.py": (1, 0)}


def test_new_file_that_exists_and_missing_file(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "a\n"})
    v = check_patch("--- /dev/null\n+++ b/a.py\n@@ -0,0 +1 @@\n+a\n", repo, CFG)
    assert not v.accepted and "already exists" in v.violations[0].message
    v = check_patch("--- a/zz.py\n+++ b/zz.py\n@@ -1 +1 @@\n-a\n+b\n", repo, CFG)
    assert not v.accepted and "does not exist" in v.violations[0].message


def test_trailing_newline_markers(make_repo: MakeRepo) -> None:
    repo = make_repo({"n.txt": "a\nb"})
    diff = git_diff_of(repo, {"n.txt": "a\nb\nc\n"})
    v = check_patch(diff, repo, CFG)
    assert v.accepted and v.contents["n.txt"] == b"a\nb\nc\n"
    # No marker at all: the file keeps having no final newline.
    v = check_patch("--- a/n.txt\n+++ b/n.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+B", repo, CFG)
    assert v.accepted and v.contents["n.txt"] == b"a\nB"


def test_garbage_is_a_clean_parse_rejection(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "a\n"})
    for text in (
        "",
        "just prose",
        "@@ -1 +1 @@\n-a\n+b\n",
        "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n a\n",
    ):
        v = check_patch(text, repo, CFG)
        assert not v.accepted and v.violations, text


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(GitError):
        check_patch("--- a/x\n+++ b/x\n", tmp_path, CFG)


def test_extract_diff_from_tool_input() -> None:
    raw = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert extract_diff(raw) == raw
    assert extract_diff("Sure:\n```patch\n" + raw + "```\n") == raw
    assert extract_diff("Some text\n" + raw) == raw


def test_applied_diff_is_git_appliable(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": BODY})
    patch = "--- a.py\n+++ a.py\n@@ -1,1 +1,1 @@\n line20\n-line21\n+LINE21\n+extra\n line22"
    v = check_patch(patch, repo, CFG)
    assert v.accepted
    subprocess.run(["git", "apply", "--check", "-"], cwd=repo, input=v.diff, text=True, check=True)


@pytest.mark.parametrize(
    "diff",
    [
        "--- /dev/null\n+++ b/README.md/x.py\n@@ -0,0 +1 @@\n+x = 1\n",
        "--- a/README.md/x.py\n+++ b/README.md/x.py\n@@ -1 +1 @@\n-x\n+y\n",
    ],
)
def test_path_through_a_file_is_refused_not_a_crash(make_repo: MakeRepo, diff: str) -> None:
    repo = make_repo({"README.md": "hi\n"})
    verdict = check_patch(diff, repo, GuardConfig())
    assert not verdict.accepted
    assert [str(v) for v in verdict.violations] == [
        "paths: README.md/x.py: a parent of this path is a file, not a directory"
    ]


@pytest.mark.parametrize("path", ["n" * 300 + ".py", "pkg/" + "n" * 300 + "/m.py"])
def test_disk_lookups_the_os_refuses_are_path_refusals(make_repo: MakeRepo, path: str) -> None:
    # Below path_problem: the tree reader itself turns every OS refusal into a verdict.
    tree = _Tree(make_repo({"pkg/m.py": "x\n"}))
    with pytest.raises(_PathRefused, match="cannot be read"):
        tree.read(path)
