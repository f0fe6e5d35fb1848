"""The loop end to end: scripted model, real git, real gates (ruff + pytest only, for speed)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.context import numbered
from harness.errors import GitError
from harness.loop import Loop, RunOptions
from harness.outcome import RunSummary
from harness.policy import parse_policy
from harness.providers.base import Provider
from harness.providers.builtin import BuiltinProvider
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events, recorded_responses
from harness.steps import parse_steps
from tests.conftest import git, other_gates_off

STEPS = """# STEPS test

## BLOCK 1 — Ruff to 0

- Fix the ruff findings in `pkg/`.

**Gate:**
```bash
ruff check pkg
```

## Guardrails

- ≤20 lines/file.
- Append results to `docs/audits/CLAUDE_PROGRESS.md`.
"""

# Other tests append keys to POLICY's last table, [loop]: the gates go first.
POLICY = (
    other_gates_off("ruff", "pytest")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[gates.pytest]
cov = ["pkg"]
args = ["-q"]
[guard]
forbidden = ["docs/audits/CLAUDE_PROGRESS.md"]
# The scripted provider's source patches would be judged by the mutation layer ('auto'); these
# tests drive the loop, the layer has its own (tests/test_guard_mutation*.py).
[guard.mutation]
source_patches = false
[loop]
max_iterations = 1
test_stability_runs = 2
# These tests drive the revert machinery: harmful patches must land to be found and reverted.
# Per-patch verification, which refuses them at landing, is tested in test_loop_reverts.py.
verify_patches = false
"""
)

FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n",
    "tests/test_calc.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
    "docs/audits/CLAUDE_PROGRESS.md": "# Progress\n",
}

REMOVE_OS = """--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1 @@
-import os
 import sys
"""
REMOVE_SYS = """--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,3 +1,2 @@
 import os
-import sys

"""
BREAK_ADD = """--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -5,2 +5,2 @@
 def add(a, b):
-    return a + b
+    return a - b
"""
NOQA = """--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1,2 @@
-import os
+import os  # noqa: F401
 import sys
"""


def plan() -> dict[str, Any]:
    return {"phase": "plan", "tool": "submit_plan", "input": {"summary": "remove unused imports"}}


def todos(*ids: str) -> dict[str, Any]:
    items = [{"id": i, "title": f"item {i}", "files": ["pkg/calc.py"], "gate": "ruff"} for i in ids]
    return {"phase": "todo", "tool": "submit_todos", "input": {"items": items}}


def patch(item: str, diff: str) -> dict[str, Any]:
    return {"phase": "execute", "tool": "propose_patch", "input": {"item_id": item, "diff": diff}}


@pytest.fixture
def run_loop(
    make_repo: Callable[..., Path], tmp_path: Path
) -> Callable[..., tuple[RunSummary, Path]]:
    def _run(
        responses: list[dict[str, Any]], files: dict[str, str] | None = None, policy: str = POLICY
    ):
        repo = make_repo(files or FILES)
        opts = options(repo, ScriptedProvider.from_responses(responses), policy=policy)
        return Loop(opts).run(), repo

    return _run


def options(
    repo: Path,
    provider: Provider,
    steps: str = STEPS,
    policy: str = POLICY,
    runs_dir: Path | None = None,
) -> RunOptions:
    return RunOptions(
        steps=parse_steps(steps, "steps.md"),
        steps_text=steps,
        repo=repo,
        policy=parse_policy(policy),
        policy_text=policy,
        policy_path=None,
        provider=provider,
        runs_dir=runs_dir or repo.parent / "runs",
    )


def branch_file(repo: Path, branch: str, path: str) -> str:
    return git(repo, "show", f"{branch}:{path}")


def test_good_patches_land_and_user_checkout_is_untouched(make_repo, tmp_path) -> None:
    repo = make_repo(FILES)
    (repo / "pkg/calc.py").write_text("# user's uncommitted edit\n")
    (repo / "scratch.txt").write_text("untracked\n")
    head_before = git(repo, "rev-parse", "HEAD")
    status_before = git(repo, "status", "--porcelain")
    opts = options(
        repo,
        ScriptedProvider.from_responses(
            [
                plan(),
                todos("T1", "T2"),
                patch("T1", REMOVE_OS),
                patch(
                    "T2",
                    REMOVE_SYS.replace(
                        "@@ -1,3 +1,2 @@\n import os\n-import sys\n",
                        "@@ -1,2 +1,1 @@\n-import sys\n",
                    ),
                ),
            ]
        ),
    )
    summary = Loop(opts).run()
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == status_before
    assert (repo / "pkg/calc.py").read_text() == "# user's uncommitted edit\n"
    block = summary.blocks[0]
    assert block.status == "goal_met", block
    assert len(block.commits) == 2
    assert "import" not in branch_file(repo, summary.branch, "pkg/calc.py")
    assert summary.summary["ruff_stable_ok"] is True
    log = git(repo, "log", "--format=%B", summary.branch)
    assert f"Harness-Run: {summary.run_id}" in log and "Harness-Item: T1" in log
    assert "Harness-Ruff: 2 -> 1 (changed files)" in log
    progress = branch_file(repo, summary.branch, "docs/audits/CLAUDE_PROGRESS.md")
    assert "block 1" in progress and "goal_met" in progress


def test_breaking_patch_is_reverted_and_good_one_stays(run_loop) -> None:
    summary, repo = run_loop(
        [plan(), todos("T1", "T2"), patch("T1", REMOVE_OS), patch("T2", BREAK_ADD)]
    )
    block = summary.blocks[0]
    assert len(block.reverted) == 1
    assert len(block.commits) == 1
    text = branch_file(repo, summary.branch, "pkg/calc.py")
    assert "return a + b" in text and "import os" not in text
    assert summary.summary["pytest"]["failed"] == 0
    kinds = [e["kind"] for e in read_events(Path(summary.run_dir))]
    assert "reverted" in kinds and "regressions" in kinds


def test_rejected_patch_is_retried_with_reasons(run_loop) -> None:
    summary, _ = run_loop([plan(), todos("T1"), patch("T1", NOQA), patch("T1", REMOVE_OS)])
    events = read_events(Path(summary.run_dir))
    verdicts = [e for e in events if e["kind"] == "verdict"]
    assert [v["accepted"] for v in verdicts] == [False, True]
    assert any("noqa" in v["message"].lower() for v in verdicts[0]["violations"])
    requests = [e for e in events if e["kind"] == "model_request" and e["phase"] == "execute"]
    assert "noqa" in json.dumps(requests[-1]["messages"]).lower()
    assert len(summary.blocks[0].commits) == 1


def test_an_item_the_model_skips_is_said_on_the_console_with_its_reason(make_repo) -> None:
    said: list[str] = []
    skip = {"item_id": "T1", "action": "skip", "explanation": "no fix applies"}
    responses = [plan(), todos("T1", "T2"), {"phase": "execute", "tool": "propose_patch",
                 "input": skip}, patch("T2", REMOVE_OS)]  # fmt: skip
    opts = options(make_repo(FILES), ScriptedProvider.from_responses(responses))
    Loop(dataclasses.replace(opts, progress=said.append)).run()
    at = said.index(next(m for m in said if m.startswith("  [T1]")))
    assert said[at + 1] == "    skipped: no fix applies"
    assert said[at + 2].startswith("  [T2]")


def test_invalid_todo_output_is_sent_back(run_loop) -> None:
    bad = {"phase": "todo", "tool": "submit_todos", "input": {"items": [{"id": "has space"}]}}
    summary, _ = run_loop([plan(), bad, todos("T1"), patch("T1", REMOVE_OS)])
    events = read_events(Path(summary.run_dir))
    assert [e["phase"] for e in events if e["kind"] == "invalid_output"] == ["todo"]
    assert len(summary.blocks[0].commits) == 1


def test_record_is_complete(run_loop) -> None:
    summary, _ = run_loop([plan(), todos("T1"), patch("T1", REMOVE_OS)])
    run_dir = Path(summary.run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["exit_code"] in (0, 1) and manifest["finished"]
    assert manifest["provider"] == "scripted"
    assert json.loads((run_dir / "summary.json").read_text())["run_id"] == summary.run_id
    assert list((run_dir / "patches").glob("*.diff"))
    kinds = [e["kind"] for e in read_events(run_dir)]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"model_request", "model_response", "verdict", "applied", "gates"} <= set(kinds)


COVERAGE_STEPS = """# STEPS coverage

## BLOCK 1 — Coverage Expansion

- Add tests for `pkg/calc.py`.

**Gate:**
```bash
pytest --cov=pkg --cov-fail-under=95 -q
```

## BLOCK 2 — Lint, and keep the marker away

**Gate:**
```bash
ruff check pkg
test ! -e pkg/forbidden.txt
```
"""

COVERAGE_POLICY = POLICY.replace("max_iterations = 1", "max_iterations = 1\nmax_patch_attempts = 1")
COVERAGE_POLICY += '\n[blocks.1]\nlanes = ["tests/**"]\n'

CALC = "import os\n\n\ndef add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


def new_test(name: str, body: str) -> str:
    lines = body.splitlines()
    return f"--- /dev/null\n+++ b/tests/{name}.py\n@@ -0,0 +1,{len(lines)} @@\n" + "".join(
        f"+{line}\n" for line in lines
    )


NETWORK_TEST = new_test(
    "test_net",
    "import socket\n\n\ndef test_net():\n    s = socket.socket()\n    try:\n"
    "        s.connect(('127.0.0.1', 1))\n    except ConnectionRefusedError:\n"
    "        pass\n    finally:\n        s.close()\n    assert s.family == socket.AF_INET\n",
)
USELESS_TEST = new_test(
    "test_again", "from pkg.calc import add\n\n\ndef test_add_again():\n    assert add(1, 1) == 2\n"
)
GOOD_TEST = new_test(
    "test_sub", "from pkg.calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"
)
MARKER = "--- /dev/null\n+++ b/pkg/forbidden.txt\n@@ -0,0 +1 @@\n+x\n"


def test_new_tests_are_kept_only_if_stable_offline_and_raising_coverage(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    files = {**FILES, "pkg/calc.py": CALC}
    repo = make_repo(files)
    items = [
        {"id": i, "title": i, "files": [f"tests/{i}.py"], "gate": "pytest"}
        for i in ("test_net", "test_again", "test_sub")
    ]
    responses = [
        plan(),
        {"phase": "todo", "tool": "submit_todos", "input": {"items": items}},
        patch("test_net", NETWORK_TEST),
        patch("test_again", USELESS_TEST),
        patch("test_sub", GOOD_TEST),
        plan(),
        todos("R1", "M1"),
        patch("R1", "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,2 +1 @@\n-import os\n \n"),
        patch("M1", MARKER),
    ]
    opts = options(
        repo,
        ScriptedProvider.from_responses(responses),
        steps=COVERAGE_STEPS,
        policy=COVERAGE_POLICY,
    )
    summary = Loop(opts).run()
    first, second = summary.blocks
    events = read_events(Path(summary.run_dir))
    filters = [e for e in events if e["kind"] == "test_filter"]
    reasons = " ".join(r for e in filters for r in e["reasons"])
    assert [e["ok"] for e in filters] == [False, False, True]
    assert "network" in reasons and "coverage did not rise" in reasons
    assert len(first.commits) == 1
    kept = git(repo, "log", "-1", "--format=%B", first.commits[0])
    assert "Harness-Tests: 1 -> 2" in kept and "Harness-Coverage:" in kept
    assert git(repo, "ls-tree", "--name-only", summary.branch, "tests/").split() == [
        "tests/test_calc.py",
        "tests/test_sub.py",
    ]
    # Block 2 has a plain command gate; the patch that breaks it is reverted, the other stays.
    assert second.gates == ["command:test ! -e pkg/forbidden.txt", "ruff"]
    assert len(second.commits) == 1 and len(second.reverted) == 1, second
    assert second.status == "goal_met"


# It runs sub() (coverage rises), is stable and offline, and the static layer has no rule for
# its spelling: only the mutation layer sees that its assert never runs.
VACUOUS_TEST = new_test(
    "test_sub",
    "from pkg.calc import sub\n\n\ndef test_sub():\n    got = sub(3, 1)\n"
    "    if got == 'never':\n        assert got == 2\n",
)


def test_a_run_refuses_a_vacuous_test_by_its_mutants_and_keeps_a_real_one(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({**FILES, "pkg/calc.py": CALC})
    items = [
        {"id": i, "title": f"test sub {i}", "files": ["tests/test_sub.py"], "gate": "pytest"}
        for i in ("S1", "S2")
    ]
    responses = [
        plan(),
        {"phase": "todo", "tool": "submit_todos", "input": {"items": items}},
        patch("S1", VACUOUS_TEST),
        patch("S2", GOOD_TEST),
    ]
    opts = options(
        repo,
        ScriptedProvider.from_responses(responses),
        steps=COVERAGE_STEPS.split("## BLOCK 2")[0],
        policy=COVERAGE_POLICY,
    )
    summary = Loop(opts).run()
    events = read_events(Path(summary.run_dir))
    judged = [e for e in events if e["kind"] == "mutation"]
    assert [e["accepted"] for e in judged] == [False, True]
    assert [v["rule"] for v in judged[0]["violations"]] == ["mutation.kills_nothing"]
    assert judged[1]["tried"] > 0
    (kept,) = summary.blocks[0].commits
    trailer = git(repo, "log", "-1", "--format=%B", kept).split("Harness-Mutation: ", 1)[1]
    # Each mutant counted once: "N of M mutant(s) caught by its checks", N at most M.
    caught, tried = (int(n) for n in trailer.split(" mutant", 1)[0].split(" of "))
    assert 0 < caught <= tried == judged[1]["tried"]
    assert "assert sub(3, 1) == 2" in branch_file(repo, summary.branch, "tests/test_sub.py")


def test_a_fix_to_an_existing_test_need_not_raise_coverage(make_repo: Callable[..., Path]) -> None:
    files = {**FILES, "tests/test_calc.py": "import os\n" + FILES["tests/test_calc.py"]}
    repo = make_repo(files)
    fix = (
        "--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n"
        "@@ -1,2 +1 @@\n-import os\n from pkg.calc import add\n"
    )
    item = {"id": "L1", "title": "F401 in tests", "files": ["tests/test_calc.py"], "gate": "ruff"}
    responses = [plan(), {"phase": "todo", "tool": "submit_todos", "input": {"items": [item]}}]
    opts = options(
        repo,
        ScriptedProvider.from_responses([*responses, patch("L1", fix)]),
        steps=COVERAGE_STEPS.split("## BLOCK 2")[0].replace(
            "```bash\n", "```bash\nruff check pkg tests\n"
        ),
        policy=COVERAGE_POLICY,
    )
    summary = Loop(opts).run()
    assert len(summary.blocks[0].commits) == 1, summary.blocks[0]
    assert "import os" not in branch_file(repo, summary.branch, "tests/test_calc.py")


def test_record_re_drives_the_run_without_the_model(run_loop, tmp_path: Path) -> None:
    first, repo = run_loop(
        [plan(), todos("T1", "T2"), patch("T1", REMOVE_OS), patch("T2", BREAK_ADD)]
    )
    replayed = recorded_responses(Path(first.run_dir))
    assert [r["phase"] for r in replayed] == ["plan", "todo", "execute", "execute"]
    opts = options(repo, ScriptedProvider(Path(first.run_dir)), runs_dir=tmp_path / "replay-runs")
    second = Loop(opts).run()
    assert second.branch != first.branch
    # Same patches kept and reverted; only the progress log's timestamps differ.
    assert git(repo, "diff", first.branch, second.branch, "--", ".", ":!docs/audits") == ""
    assert [len(b.commits) for b in second.blocks] == [len(b.commits) for b in first.blocks]
    assert [len(b.reverted) for b in second.blocks] == [len(b.reverted) for b in first.blocks]


def test_provider_failure_stops_cleanly_with_a_complete_record(run_loop) -> None:
    # The script runs out after T1: the provider fails on T2, as a budget or outage would.
    summary, repo = run_loop([plan(), todos("T1", "T2"), patch("T1", REMOVE_OS)])
    assert summary.stopped and "T2" not in summary.stopped
    assert summary.exit_code == 4
    block = summary.blocks[0]
    assert block.status == "provider_error" and len(block.commits) == 1
    assert "import os" not in branch_file(repo, summary.branch, "pkg/calc.py")
    run_dir = Path(summary.run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["stopped"] == summary.stopped
    assert json.loads((run_dir / "manifest.json").read_text())["exit_code"] == 4
    assert read_events(run_dir)[-1]["kind"] == "run_finished"


TWO_FUNCS = (
    "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n\n\n"
    "def sub(a, b):\n    return a - b\n"
)
TWO_TESTS = (
    "from pkg.calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n"
)
BREAK_SUB = (
    "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -9,2 +9,2 @@\n"
    " def sub(a, b):\n-    return a - b\n+    return a + b\n"
)
DROP_SYS = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -2,2 +2 @@\n-import sys\n \n"


def test_only_the_culprits_are_reverted_not_commits_on_top_of_them(run_loop) -> None:
    files = {**FILES, "pkg/calc.py": TWO_FUNCS, "tests/test_calc.py": TWO_TESTS}
    summary, repo = run_loop(
        [
            plan(),
            todos("T1", "T2", "T3", "T4"),
            patch("T1", REMOVE_OS),
            patch("T2", BREAK_ADD),
            patch("T3", DROP_SYS),  # innocent, but sits on top of T2
            patch("T4", BREAK_SUB),
        ],
        files,
    )
    block = summary.blocks[0]
    log = git(repo, "log", "--format=%H %s", summary.branch)
    subject = {sha: line.split(" ", 1)[1] for line in log.splitlines() for sha in [line[:40]]}
    assert sorted(subject[c] for c in block.reverted) == ["harness: item T2", "harness: item T4"]
    assert sorted(subject[c] for c in block.commits) == ["harness: item T1", "harness: item T3"]
    text = branch_file(repo, summary.branch, "pkg/calc.py")
    assert "import" not in text and "return a + b" in text and "return a - b" in text
    assert summary.summary["pytest"]["failed"] == 0


# Over the default loop.max_read_bytes (60 kB): 1400 functions with identical bodies, two of
# them with the same unused local (F841) far apart, so a hunk of body lines lands only where
# its line number says.
UNUSED = "\n\ndef g{}(x):\n    total = x + 1\n    unused = 2\n    return total\n"
BIG = "import os\n" + "".join(
    UNUSED.format(i)
    if i in (300, 1300)
    else f"\n\ndef f{i}(x):\n    total = x + 1\n    return total\n"
    for i in range(1400)
)


def line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def read(ranges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"phase": "execute", "tool": "read_files", "input": {"ranges": ranges}}


def test_a_large_file_is_shown_as_regions_and_a_patch_on_their_numbers_lands(
    make_repo, tmp_path: Path
) -> None:
    assert len(BIG.encode()) > 60_000
    repo = make_repo({**FILES, "pkg/big.py": BIG})
    near, far = line_of(BIG, "def g300(x):") + 2, line_of(BIG, "def g1300(x):") + 2
    mid = line_of(BIG, "def f800(x):")
    items = [{"id": "T1", "title": "drop unused locals", "files": ["pkg/big.py"], "gate": "ruff"}]
    # Body lines only: they occur twice, so the header's number alone places the hunk.
    diff = (
        f"--- a/pkg/big.py\n+++ b/pkg/big.py\n@@ -{far - 1},3 +{far - 1},2 @@\n"
        "     total = x + 1\n-    unused = 2\n     return total\n"
    )
    provider = ScriptedProvider.from_responses(
        [
            plan(),
            {"phase": "todo", "tool": "submit_todos", "input": {"items": items}},
            read([{"path": "pkg/big.py", "start": mid, "end": mid + 2}]),
            read([{"path": "pkg/big.py", "start": 9000, "end": 9001}]),
            read([{"path": "pkg/big.py", "start": 5, "end": 2}]),
            patch("T1", diff),
        ]
    )
    said: list[str] = []
    opts = options(repo, provider)
    opts.progress = said.append
    summary = Loop(opts).run()

    whole = numbered(BIG).splitlines(True)
    first = provider.requests[2].messages[0].content
    for n in (1, near, far):
        assert whole[n - 1] in first  # the findings' lines, numbered as in the file
    assert whole[mid - 1] not in first and "~~~~~ lines 22-" in first
    assert "pkg/big.py has 7003 lines, 70 kB, too large to show whole" in first
    assert "is too large to show\nwhole and is shown as regions" in first
    assert (
        "    file pkg/big.py (70 kB) is shown to the model as 3 regions around its findings" in said
    )
    # Asked-for lines join the view; bad ranges get one line back each.
    assert whole[mid - 1] in provider.requests[3].messages[0].content
    assert provider.requests[3].messages[-1].content == (
        f"Added pkg/big.py lines {mid}-{mid + 2} to the regions shown."
    )
    assert "as 4 regions around its findings and where asked" in " ".join(said)
    assert provider.requests[4].messages[-1].content == (
        "Not shown: pkg/big.py lines 9000-9001 (lines 9000-9001 are past the end of the file "
        "(7003 lines))."
    )
    invalid = provider.requests[5].messages[-1].content
    assert "ranges.0: Value error, end 2 is before start 5 (1 error(s))" in invalid
    # The hunk written against the shown numbers landed at the far copy, not the near one.
    assert summary.blocks[0].commits
    text = branch_file(repo, summary.branch, "pkg/big.py").splitlines()
    assert text[near - 1] == "    unused = 2" and text[far - 2 : far] == [
        "    total = x + 1",
        "    return total",
    ]


# A module over 60 kB with 25 safe fixes (unused imports) at its top, and two findings far
# below that ruff has no safe fix for.
BIG_FIXABLE = (
    "".join(f"import mod{i}\n" for i in range(25))
    + "".join(f"\n\ndef f{i}(x):\n    total = x + 1\n    return total\n" for i in range(1300))
    + "\n\ndef g(x):\n    if x == None:\n        return 1\n    l = 2\n    return l\n"
)


def test_the_builtin_provider_fixes_a_large_file_within_the_line_limit(make_repo) -> None:
    assert len(BIG_FIXABLE.encode()) > 60_000
    clean = "def add(a, b):\n    return a + b\n"
    repo = make_repo({**FILES, "pkg/calc.py": clean, "pkg/big.py": BIG_FIXABLE})
    policy = POLICY.replace("max_iterations = 1", "max_iterations = 3")
    opts = options(repo, BuiltinProvider(), policy=policy)
    said: list[str] = []
    opts.progress = said.append
    summary = Loop(opts).run()

    out = summary.blocks[0]
    assert len(out.commits) == 3 and out.rejected == 0 and not out.reverted
    # 20 imports, then the last 5, each within the per-file limit; then E711's unsafe fix.
    assert subjects(repo, out.commits) == [
        "harness: ruff E711 in pkg/big.py (1 unsafe fix)",
        "harness: ruff F401 in pkg/big.py (20 of 25 fixes)",
        "harness: ruff F401 in pkg/big.py (5 of 25 fixes)",
    ]
    for sha in out.commits:
        added, removed, path = git(repo, "show", "--numstat", "--format=", sha).split()
        assert path == "pkg/big.py" and int(added) + int(removed) <= 20
    text = branch_file(repo, summary.branch, "pkg/big.py")
    assert "import mod" not in text and "x is None" in text
    assert summary.summary["gates"]["ruff"]["details"]["by_code"] == {"E741": 1}
    # What the plan says it leaves is true of what is left.
    assert out.cannot_do == ["ruff: 1 finding has no automatic fix"]
    assert any(m.startswith("    file pkg/big.py (6") and "regions" in m for m in said)
    assert not any("not shown" in m or "cannot build" in m for m in said)


def test_bad_repository_fails_before_anything_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    opts = options(tmp_path / "plain", ScriptedProvider.from_responses([]))
    with pytest.raises(GitError, match="not a git repository"):
        Loop(opts)
    assert not (tmp_path / "runs").exists()


def subjects(repo: Path, shas: list[str]) -> list[str]:
    return sorted(git(repo, "log", "-1", "--format=%s", sha).strip() for sha in shas)


def test_innocent_commit_on_an_earlier_iterations_culprit_is_kept(run_loop) -> None:
    files = {**FILES, "pkg/calc.py": TWO_FUNCS, "tests/test_calc.py": TWO_TESTS}
    policy = POLICY.replace("max_iterations = 1", "max_iterations = 2")
    summary, repo = run_loop(
        [
            plan(),
            todos("T1", "T2"),
            patch("T1", BREAK_ADD),
            patch("T2", REMOVE_OS),
            plan(),
            todos("T3"),
            patch("T3", BREAK_SUB),
        ],
        files,
        policy=policy,
    )
    block = summary.blocks[0]
    assert subjects(repo, block.reverted) == ["harness: item T1", "harness: item T3"]
    assert subjects(repo, block.commits) == ["harness: item T2"]


def test_a_culprit_whose_revert_conflicts_is_reverted_with_what_builds_on_it(run_loop) -> None:
    touch_def = (
        "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -5,2 +5,2 @@\n-def add(a, b):\n"
        "+def add(a, b):  # sum of two numbers\n     return a - b\n"
    )
    summary, repo = run_loop(
        [plan(), todos("T1", "T2"), patch("T1", BREAK_ADD), patch("T2", touch_def)]
    )
    block = summary.blocks[0]
    assert subjects(repo, block.reverted) == ["harness: item T1", "harness: item T2"]
    assert block.commits == []
    assert "return a + b" in branch_file(repo, summary.branch, "pkg/calc.py")
    assert summary.summary["pytest"]["failed"] == 0


def test_a_failing_test_the_patch_did_not_touch_does_not_block_new_tests(
    make_repo, tmp_path: Path
) -> None:
    files = {
        **FILES,
        "pkg/calc.py": CALC,
        "tests/test_old.py": "def test_known_broken():\n    assert 1 == 2\n",
    }
    repo = make_repo(files)
    items = [{"id": "test_sub", "title": "t", "files": ["tests/test_sub.py"]}]
    provider = ScriptedProvider.from_responses(
        [
            plan(),
            {"phase": "todo", "tool": "submit_todos", "input": {"items": items}},
            patch("test_sub", GOOD_TEST),
        ]
    )
    steps = COVERAGE_STEPS.split("## BLOCK 2")[0]
    summary = Loop(options(repo, provider, steps=steps, policy=COVERAGE_POLICY)).run()
    assert len(summary.blocks[0].commits) == 1, summary.blocks[0]


def test_files_written_by_tests_never_reach_a_commit(run_loop) -> None:
    writer = (
        "from pathlib import Path\n\nfrom pkg.calc import add\n\n\ndef test_add():\n"
        "    Path('test-output.log').write_text('ran')\n    assert add(2, 3) == 5\n"
    )
    summary, repo = run_loop(
        [plan(), todos("T1"), patch("T1", REMOVE_OS)], {**FILES, "tests/test_calc.py": writer}
    )
    assert len(summary.blocks[0].commits) == 1
    tracked = git(repo, "ls-tree", "-r", "--name-only", summary.branch).split()
    assert "test-output.log" not in tracked


def test_the_progress_log_is_created_when_the_repo_has_none(run_loop) -> None:
    files = {k: v for k, v in FILES.items() if not k.startswith("docs/")}
    summary, repo = run_loop([plan(), todos("T1"), patch("T1", REMOVE_OS)], files)
    log = branch_file(repo, summary.branch, "docs/audits/CLAUDE_PROGRESS.md")
    assert "harness block 1" in log


def test_blocks_start_from_the_cache_and_the_progress_log_is_one_commit(make_repo) -> None:
    steps = STEPS.replace(
        "## Guardrails", "## BLOCK 2 — Ruff again\n\n```bash\nruff check pkg\n```\n\n## Guardrails"
    )
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [plan(), todos("T1"), patch("T1", REMOVE_OS), plan(), todos()]
    )
    summary = Loop(options(repo, provider, steps=steps)).run()
    assert [b.number for b in summary.blocks] == [1, 2]
    events = read_events(Path(summary.run_dir))
    runs = {e["label"]: e["results"] for e in events if e["kind"] == "gates"}
    # Block 2 starts on the tree block 1 ended on, and the run ends there too: cached.
    for label in ("block 2 start", "final"):
        assert all(r["cached"] for r in runs[label].values()), label
    subjects = git(repo, "log", "--format=%s", f"main..{summary.branch}").splitlines()
    assert subjects[0] == "harness: progress log for blocks 1, 2"
    assert sum("progress log" in s for s in subjects) == 1
    log = branch_file(repo, summary.branch, "docs/audits/CLAUDE_PROGRESS.md")
    assert log.index("harness block 1") < log.index("harness block 2")


def test_the_builtins_notes_are_true_of_the_blocks_end(make_repo) -> None:
    # Two findings without a fix (E741); F841's unsafe fix takes one of them with its line.
    # The only round's plan counted two: the block's outcome counts what is left at its end.
    mod = "l = 1\n\n\ndef g(x):\n    l = 2\n    return x\n"
    repo = make_repo({**FILES, "pkg/calc.py": mod})
    policy = other_gates_off("ruff") + POLICY[POLICY.index("[gates.ruff]") :].replace(
        '[gates.pytest]\ncov = ["pkg"]\nargs = ["-q"]\n', ""
    )
    summary = Loop(options(repo, BuiltinProvider(), policy=policy)).run()

    out = summary.blocks[0]
    assert subjects(repo, out.commits) == ["harness: ruff F841 in pkg/calc.py (1 unsafe fix)"]
    assert out.status == "iteration_limit"
    assert summary.summary["gates"]["ruff"]["details"]["by_code"] == {"E741": 1}
    assert out.cannot_do == ["ruff: 1 finding has no automatic fix"]
    plans = [e for e in read_events(Path(summary.run_dir)) if e["kind"] == "model_response"]
    assert "ruff: 2 findings have no automatic fix" in json.dumps(plans[0])
