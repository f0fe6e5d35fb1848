"""Fuzz: malformed and mutated diffs get a clean verdict, never an unexpected exception."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.guard import check_patch
from harness.guard.rules import path_problem
from harness.policy import GuardConfig

MakeRepo = Callable[..., Path]
CFG = GuardConfig()
BASE = {
    "pkg/mod.py": "".join(f"value_{i} = {i}\n" for i in range(40)),
    "tests/test_mod.py": "def test_a():\n    assert 1\n",
    "pyproject.toml": '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n',
}
GOOD = (
    "diff --git a/pkg/mod.py b/pkg/mod.py\n--- a/pkg/mod.py\n+++ b/pkg/mod.py\n"
    "@@ -10,7 +10,7 @@\n value_9 = 9\n value_10 = 10\n value_11 = 11\n-value_12 = 12\n"
    "+value_12 = 13\n value_13 = 13\n value_14 = 14\n value_15 = 15\n"
    "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n"
)
TOKENS = [
    "@@",
    "@@ -1 +1 @@",
    "--- a/",
    "+++ b/",
    "/dev/null",
    "\n",
    "\\ No newline at end of file",
    "diff --git a/x b/y",
    "rename from ",
    "new file mode 100755",
    "Binary files",
    "```",
    "\r\n",
    "\x00",
    "\t",
    "+",
    "-",
    " ",
    "../",
    ".git/",
    "é",
    "\ufeff",
    "@@ -0,0 +0,0 @@",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = GOOD.split("\n")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert", "cut", "token", "flip"]))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines.append(draw(st.sampled_from(TOKENS)))
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=30)))
        elif op == "cut":
            k = draw(st.integers(0, max(0, len(lines[i]))))
            lines[i] = lines[i][:k]
        elif op == "token":
            k = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:k] + draw(st.sampled_from(TOKENS)) + lines[i][k:]
        else:
            if lines[i]:
                lines[i] = draw(st.sampled_from("+- \\@x")) + lines[i][1:]
    return "\n".join(lines)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(text=st.one_of(mutated(), st.text(max_size=300)))
def test_mutated_diffs_never_crash(make_repo: MakeRepo, text: str) -> None:
    repo = _repo(make_repo)
    v = check_patch(text, repo, CFG)
    assert v.accepted or v.violations
    event("accepted" if v.accepted else v.violations[0].rule)
    if v.accepted:
        # Whatever was accepted is a real, self-consistent diff of the tree.
        proc = subprocess.run(
            ["git", "apply", "--check", "-"], cwd=repo, input=v.diff.encode(), capture_output=True
        )
        assert proc.returncode == 0, (v.diff, proc.stderr)
        # git's own count of the rendered diff (an added line may itself start with "++").
        numstat = subprocess.run(
            ["git", "apply", "--numstat", "-"], cwd=repo, input=v.diff.encode(), capture_output=True
        ).stdout.decode()
        counted = [row.split("\t")[:2] for row in numstat.splitlines()]
        assert sum(int(a) + int(r) for a, r in counted) == sum(f.added + f.removed for f in v.files)


_REPOS: dict[int, Path] = {}


def _repo(make_repo: MakeRepo) -> Path:
    # One repository per test function run: hypothesis calls the body many times.
    key = id(make_repo)
    if key not in _REPOS:
        _REPOS[key] = make_repo(BASE)
    return _REPOS[key]


LONG = "n" * 300
HOSTILE = [
    "a\x00b.py",
    f"{LONG}.py",
    f"pkg/{LONG}/m.py",
    "pkg/" + "é" * 130 + ".py",  # 260 bytes in UTF-8, under 255 characters
    "../outside.py",
    "pkg/../../outside.py",
    "/etc/passwd",
    "C:/x.py",
    ".git/x",
    "pkg/.git/config",
    "pkg/mod.py/x.py",  # through an existing file
    "a\x01b.py",
    "a\x1bb.py",
    "a\x7fb.py",
    "pkg/\ud800.py",  # a lone surrogate: no file system can encode it
    "pkg/\u202e.py",
    "pkg/é.py",
    "pkg/日本.py",
    "pkg/naïve test.py",
]
ACCEPTABLE = {"pkg/é.py", "pkg/日本.py", "pkg/naïve test.py"}


@pytest.mark.parametrize("path", HOSTILE)
@pytest.mark.parametrize("kind", ["new", "edit", "delete", "rename"])
def test_hostile_paths_get_a_clean_verdict(make_repo: MakeRepo, path: str, kind: str) -> None:
    repo = make_repo(BASE)
    patch = {
        "new": f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x = 1\n",
        "edit": f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-value_0 = 0\n+value_0 = 1\n",
        "delete": f"--- a/{path}\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n",
        "rename": f"diff --git a/pkg/mod.py b/{path}\nrename from pkg/mod.py\nrename to {path}\n",
    }[kind]
    v = check_patch(patch, repo, CFG)
    if path in ACCEPTABLE and kind in ("new", "rename"):
        assert v.accepted, v.violations
    else:
        assert not v.accepted and v.violations
    if path not in ACCEPTABLE and kind in ("new", "rename"):
        assert v.violations[0].rule == "paths", v.violations


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("a\x00b.py", "NUL byte"),
        ("a\x01b.py", "character U+0001"),
        ("pkg/\u202e.py", "character U+202E"),
        ("pkg/\ud800.py", "character U+D800"),
        (f"{LONG}.py", "over 255 bytes"),
        (f"pkg/{LONG}/m.py", "over 255 bytes"),
    ],
)
def test_path_problem_names_the_reason(path: str, why: str) -> None:
    problem = path_problem(path)
    assert problem is not None and why in problem
    assert "\n" not in problem and "\x00" not in problem
