"""No regression stays on the branch (issue 8): the traps seen on real projects, an interacting
pair, an order-dependent test failure, and a reverted change proposed again. Scripted model,
real git, real ruff and pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.loop import Loop
from harness.outcome import RunSummary
from harness.providers.scripted import ScriptedProvider
from tests.conftest import git, other_gates_off
from tests.test_loop import options, plan

STEPS = """# STEPS

## BLOCK 1 — Ruff to 0

Run: `ruff check pkg`
"""

POLICY = (
    "detect = false\n"
    + other_gates_off("ruff", "pytest")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F"]
[gates.pytest]
args = ["-q"]
# These tests drive reverts; the mutation layer ('auto' judges the scripted provider's source
# patches) has its own tests.
[guard.mutation]
source_patches = false
[loop]
max_iterations = 2
verify_patches = false
"""
)
VERIFIED = POLICY.replace("verify_patches = false", "verify_patches = true")


def todos(*items: tuple[str, str]) -> dict[str, Any]:
    listed = [{"id": i, "title": t, "files": ["pkg/mod.py"], "gate": "ruff"} for i, t in items]
    return {"phase": "todo", "tool": "submit_todos", "input": {"items": listed}}


def patch(item: str, diff: str) -> dict[str, Any]:
    return {"phase": "execute", "tool": "propose_patch", "input": {"item_id": item, "diff": diff}}


def run(
    make_repo: Callable[..., Path],
    files: dict[str, str],
    responses: list[dict[str, Any]],
    policy: str = POLICY,
) -> tuple[RunSummary, Path]:
    repo = make_repo(files)
    opts = options(repo, ScriptedProvider.from_responses(responses), steps=STEPS, policy=policy)
    return Loop(opts).run(), repo


def tip_test_summary(repo: Path, branch: str) -> str:
    """The branch tip's own test run, done by hand in a fresh worktree."""
    tip = repo.parent / "tip"
    git(repo, "worktree", "add", "-q", str(tip), branch)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tip,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tip), "PATH": "/usr/bin:/bin"},
    )
    return proc.stdout.strip().splitlines()[-1]


def events(summary: RunSummary) -> list[dict[str, Any]]:
    text = (Path(summary.run_dir) / "events.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


TRAPS = {
    "pkg/__init__.py": "",
    "pkg/mod.py": (
        "import os\n"
        "from collections import OrderedDict\n"
        "\n"
        "\n"
        "class A:\n"
        '    __slots__ = ("b", "a")\n'
        "\n"
        "\n"
        'LABEL = f"plain"\n'
    ),
    "tests/test_mod.py": (
        "from pkg.mod import A, OrderedDict\n\n\n"
        "def test_slots_order():\n"
        '    assert A.__slots__ == ("b", "a")\n\n\n'
        "def test_reexport():\n"
        "    assert OrderedDict() == {}\n"
    ),
}
DROP_OS = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,2 +1 @@\n-import os\n from collections import OrderedDict\n"  # noqa: E501
SORT_SLOTS = (
    "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -5,2 +5,2 @@\n class A:\n"
    '-    __slots__ = ("b", "a")\n+    __slots__ = ("a", "b")\n'
)
DROP_REEXPORT = (
    "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -2,3 +2,2 @@\n"
    "-from collections import OrderedDict\n \n \n"
)
TRAP_TODOS = todos(
    ("T1", "ruff F401 os"),
    ("T2", "ruff RUF023 slots"),
    ("T3", "ruff F401 OrderedDict"),
    ("T4", "ruff F541 LABEL"),
)


def skip(item: str) -> dict[str, Any]:
    answer = {"item_id": item, "action": "skip"}
    return {"phase": "execute", "tool": "propose_patch", "input": answer}


PLAIN_STRING = (
    '--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -9 +9 @@\n-LABEL = f"plain"\n+LABEL = "plain"\n'
)


def test_the_slots_and_reexport_traps_end_with_green_tests_and_innocent_fixes_kept(
    make_repo: Callable[..., Path],
) -> None:
    """Without per-patch verification: the gates find the harm, delta debugging the culprits."""
    responses = [
        plan(),
        TRAP_TODOS,
        patch("T1", DROP_OS),
        patch("T2", SORT_SLOTS),
        patch("T3", DROP_REEXPORT),
        patch("T4", PLAIN_STRING),
        # Iteration 2: the model proposes the reverted slots change again.
        plan(),
        todos(("T5", "ruff RUF023 slots again")),
        patch("T5", SORT_SLOTS),
        patch("T5", SORT_SLOTS.replace("@@ -5,2 +5,2 @@", "@@ -4,2 +4,2 @@")),
        skip("T5"),
    ]
    summary, repo = run(make_repo, TRAPS, responses)
    block = summary.blocks[0]
    titles = sorted(r.title for r in block.reverts)
    assert titles == ["harness: ruff F401 OrderedDict", "harness: ruff RUF023 slots"], block
    assert all(r.how == "culprit" for r in block.reverts)
    assert not [r for r in block.regressions if not r.flaky]
    tip = git(repo, "show", f"{summary.branch}:pkg/mod.py")
    assert "import os" not in tip and 'LABEL = "plain"' in tip  # the innocent fixes stayed
    assert '("b", "a")' in tip and "OrderedDict" in tip  # the harmful ones are gone
    assert tip_test_summary(repo, summary.branch).startswith("2 passed")
    again = [e for e in events(summary) if e["kind"] == "refused_again"]
    assert len(again) == 2 and "reverted" in again[0]["reason"]  # refused, with the reason
    assert block.status != "provider_error"


PAIR = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "import os\nX = 1\nY = 1\n",  # a finding keeps the block working
    "tests/test_pair.py": (
        "from pkg.mod import X, Y\n\n\ndef test_not_both():\n    assert not (X == 2 and Y == 2)\n"
    ),
}


def test_an_interacting_pair_loses_one_commit_not_both(make_repo: Callable[..., Path]) -> None:
    set_x = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -2 +2 @@\n-X = 1\n+X = 2\n"
    set_y = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -3 +3 @@\n-Y = 1\n+Y = 2\n"
    responses = [plan(), todos(("T1", "set X"), ("T2", "set Y")), patch("T1", set_x)]
    responses += [patch("T2", set_y), plan(), todos()]
    summary, repo = run(make_repo, PAIR, responses)
    block = summary.blocks[0]
    assert [r.title for r in block.reverts] == ["harness: set Y"]  # it completes the pair
    assert len(block.commits) == 1
    assert git(repo, "show", f"{summary.branch}:pkg/mod.py") == "import os\nX = 2\nY = 1\n"
    assert tip_test_summary(repo, summary.branch).startswith("1 passed")


ORDER = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "import os\n\nSEEN = []\n\n\ndef register(name):\n    return name\n",
    "tests/test_1_fill.py": "from pkg import mod\n\n\ndef test_fill():\n    mod.register('x')\n",
    "tests/test_2_empty.py": (
        "from pkg import mod\n\n\ndef test_empty():\n    assert mod.SEEN == []\n"
    ),
}

# register() starts remembering names: test_empty, run after test_fill, then sees one.
REMEMBER = (
    "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -6,2 +6,3 @@\n def register(name):\n"
    "+    SEEN.append(name)\n     return name\n"
)


def test_an_order_dependent_failure_is_a_regression_not_a_flake(
    make_repo: Callable[..., Path],
) -> None:
    responses = [plan(), todos(("T1", "remember names")), patch("T1", REMEMBER)]
    responses += [plan(), todos()]
    summary, repo = run(make_repo, ORDER, responses)
    block = summary.blocks[0]
    assert [r.title for r in block.reverts] == ["harness: remember names"], block
    because = block.reverts[0].because[0]
    assert "test_empty" in because and "order-dependent" in because
    assert "SEEN.append" not in git(repo, "show", f"{summary.branch}:pkg/mod.py")
    reruns = [e for e in events(summary) if e["kind"] == "start_rerun"]
    assert len(reruns) == 2  # measured at the block's start, not assumed


def test_with_verification_the_traps_are_refused_at_landing_alone(
    make_repo: Callable[..., Path],
) -> None:
    responses = [
        plan(),
        TRAP_TODOS,
        patch("T1", DROP_OS),
        patch("T2", SORT_SLOTS),
        skip("T2"),
        patch("T3", DROP_REEXPORT),
        skip("T3"),
        patch("T4", PLAIN_STRING),
        plan(),
        todos(("T5", "ruff RUF023 slots again")),
        patch("T5", SORT_SLOTS),
        skip("T5"),
    ]
    summary, repo = run(make_repo, TRAPS, responses, policy=VERIFIED)
    block = summary.blocks[0]
    assert block.reverts == [] and block.rejected >= 3, block  # refused alone, nothing reverted
    assert len(block.commits) == 2
    tip = git(repo, "show", f"{summary.branch}:pkg/mod.py")
    assert "import os" not in tip and 'LABEL = "plain"' in tip
    assert '("b", "a")' in tip and "OrderedDict" in tip
    assert tip_test_summary(repo, summary.branch).startswith("2 passed")
    checks = [e for e in events(summary) if e["kind"] == "patch_check"]
    refused = [c for c in checks if not c["ok"]]
    assert len(refused) == 2, checks  # each harmful patch, alone
    again = [e for e in events(summary) if e["kind"] == "refused_again"]
    assert again and "refused at landing" in again[0]["reason"]


def test_refusals_a_reverted_culprit_may_have_caused_are_forgotten(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(TRAPS)
    loop = Loop(options(repo, ScriptedProvider.from_responses([]), steps=STEPS, policy=POLICY))
    loop._pids = {"early": "k0"}
    loop.remember("k-before", ["pkg/a.py"], "before", "refused at landing: x", refused=True)
    loop._pids["culprit"] = "k1"
    loop.remember("k-after", ["pkg/b.py"], "after", "refused at landing: y", refused=True)
    loop.remember("k-rev", ["pkg/c.py"], "reverted one", "reverted: z")
    loop.forget_refusals_after("culprit")
    assert [a["patch_id"] for a in loop.avoid] == ["k-before", "k-rev"]
    loop.rec.close()


def test_when_the_full_gates_overrule_the_per_patch_check_it_is_recorded(
    make_repo: Callable[..., Path],
) -> None:
    # Only test_fill runs register(); the check passes; the full run's order breaks test_empty.
    responses = [plan(), todos(("T1", "remember names")), patch("T1", REMEMBER)]
    responses += [plan(), todos()]
    summary, _repo = run(make_repo, ORDER, responses, policy=VERIFIED)
    block = summary.blocks[0]
    assert [r.title for r in block.reverts] == ["harness: remember names"], block
    kinds = [e["kind"] for e in events(summary)]
    assert "patch_check" in kinds and "verify_disagreed" in kinds
