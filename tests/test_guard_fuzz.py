"""Fuzz: malformed and mutated diffs get a clean verdict, never an unexpected exception."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.guard import check_patch
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
        assert sum(f.added + f.removed for f in v.files) == sum(
            1 for ln in v.diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")
        )


_REPOS: dict[int, Path] = {}


def _repo(make_repo: MakeRepo) -> Path:
    # One repository per test function run: hypothesis calls the body many times.
    key = id(make_repo)
    if key not in _REPOS:
        _REPOS[key] = make_repo(BASE)
    return _REPOS[key]
