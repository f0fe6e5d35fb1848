"""Per-patch coverage: a patch that takes coverage away from the tests that run its file is
refused at landing with the file and line; one that keeps it lands; where coverage cannot be
judged nothing is judged. Real repositories, real pytest-cov in the test venv."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.gates.runner import run_gates
from harness.policy import Policy, parse_policy
from harness.verify import Verifier

from .conftest import git, other_gates_off, replace_in_file
from .test_loop import plan
from .test_loop_reverts import VERIFIED, events, patch, run, skip, todos

MOD = """\
def grade(x: int) -> str:
    if x > 10:
        return "big"
    return "small"


def label(x: int) -> str:
    return "n=%d" % x


def unused(x: int) -> int:
    return x + 1
"""

# A test that passes whichever way `grade` goes: only coverage can tell that its branch no
# longer runs.
FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": MOD,
    "tests/__init__.py": "",
    "tests/test_grade.py": "from pkg.mod import grade\n\n\ndef test_grade():\n"
    '    assert grade(20) in ("big", "small")\n    assert grade(1) == "small"\n',
    "tests/test_label.py": "from pkg.mod import label\n\n\ndef test_label():\n"
    '    assert label(3) == "n=3"\n',
}

GRADE = "tests/test_grade.py::test_grade"
LABEL = "tests/test_label.py::test_label"


def _policy(cov: bool = True) -> Policy:
    table = '[gates.pytest]\npaths = ["tests"]\n' + ('cov = ["pkg"]\n' if cov else "")
    return parse_policy(table + other_gates_off("pytest"))


@contextmanager
def _verifier(repo: Path, cov: bool = True) -> Iterator[Verifier]:
    policy = _policy(cov)
    baseline = run_gates(repo, policy, use_cache=False)
    with Verifier(repo, policy, ["pytest"], baseline) as verifier:
        verifier.start()
        yield verifier


def test_a_patch_that_makes_a_covered_line_unreachable_is_refused_with_its_line(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo) as v:
        replace_in_file(repo, "pkg/mod.py", "if x > 10:", "if x > 100:")
        check = v.check(["pkg/mod.py"])
        after = (repo / "pkg/mod.py").read_text()
    assert check.selection == "selected" and check.tests_run == [GRADE]
    assert not check.ok and check.coverage_judged
    assert check.reasons == [
        "coverage: pkg/mod.py:3 was covered by its tests at the block's start and is not now"
    ]
    assert check.coverage_lost == ["pkg/mod.py:3"]
    # One run with the patch, one without it to confirm the loss; the patch is back in place.
    assert check.pytest_runs == 2
    assert "x > 100" in after
    # The run without the patch is not one the behaviour layer judges.
    assert [r.ids for r in v.runs] == [[GRADE]]


def test_a_changed_hunk_with_more_statements_its_tests_do_not_run_is_refused(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo) as v:
        replace_in_file(
            repo,
            "pkg/mod.py",
            '        return "big"\n',
            '        if x > 1000:\n            return "huge"\n        return "big"\n',
        )
        check = v.check(["pkg/mod.py"])
    assert not check.ok and check.coverage_judged
    assert check.reasons == [
        "coverage: pkg/mod.py:3-4 (changed) has 1 statement(s) its tests do not run, "
        "0 before the patch"
    ]


def test_an_innocent_rewrite_of_a_covered_line_lands_at_the_cost_of_one_run(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo) as v:
        replace_in_file(repo, "pkg/mod.py", 'return "n=%d" % x', 'return f"n={x}"')
        check = v.check(["pkg/mod.py"])
    assert check.ok and check.coverage_judged and check.reasons == []
    assert check.tests_run == [LABEL]
    # Nothing the map says its tests ran went missing: no run without the patch was needed.
    assert check.pytest_runs == 1
    assert v.runs[0].coverage is not None and list(v.runs[0].coverage) == ["pkg/mod.py"]


STATEFUL = """\
_seen: list[int] = []


def remember(x: int) -> str:
    if _seen:
        return "again"
    _seen.append(x)
    return "first"
"""


def test_a_line_covered_only_thanks_to_another_test_is_not_held_against_the_patch(
    make_repo: Callable[..., Path],
) -> None:
    # test_b reaches "again" only because test_a ran first; alone it does not, with or
    # without the patch. The map suspects a loss, the run without the patch clears it.
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/state.py": STATEFUL,
            "tests/__init__.py": "",
            "tests/test_state.py": "from pkg.state import remember\n\n\n"
            'def test_a():\n    assert remember(1) in ("first", "again")\n\n\n'
            'def test_b():\n    assert remember(2) in ("first", "again")\n',
        }
    )
    with _verifier(repo) as v:
        replace_in_file(repo, "pkg/state.py", 'return "again"', 'return "again" + ""')
        check = v.check(["pkg/state.py"])
    assert check.tests_run == ["tests/test_state.py::test_b"]
    assert check.ok and check.coverage_judged and check.reasons == []
    assert check.pytest_runs == 2


def test_coverage_is_not_judged_without_data_or_without_a_coverage_gate(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            **FILES,
            "pkg/other.py": "def other() -> int:\n    return 1\n",
            "scripts/tool.py": "def tool() -> int:\n    return 1\n",
        }
    )
    with _verifier(repo) as v:
        # No test runs it: no test is selected, so there is no run to measure.
        replace_in_file(repo, "pkg/other.py", "return 1", "return 2")
        unrun = v.check(["pkg/other.py"])
        git(repo, "checkout", "-q", "--", ".")
        # Outside every package coverage walks: no data at all, so the whole suite runs.
        replace_in_file(repo, "scripts/tool.py", "return 1", "return 2")
        unmapped = v.check(["scripts/tool.py"])
    git(repo, "checkout", "-q", "--", ".")
    with _verifier(repo, cov=False) as v:
        replace_in_file(repo, "pkg/mod.py", "if x > 10:", "if x > 100:")
        no_gate = v.check(["pkg/mod.py"])
    assert unrun.ok and unrun.selection == "none" and not unrun.coverage_judged
    assert unmapped.ok and unmapped.selection == "all" and not unmapped.coverage_judged
    assert "scripts/tool.py has no coverage data" in unmapped.why
    assert "coverage not judged: the whole suite ran" in unmapped.why
    assert no_gate.ok and not no_gate.coverage_judged and no_gate.pytest_runs == 1
    assert (
        "coverage not judged: the block's pytest gate measured no coverage at its start"
        in no_gate.why
    )


LOOP_FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "import os\n\n\ndef total(a, b):\n    out = a + b\n    if a > 0:\n"
    "        out = out + 0\n    return out\n",
    "tests/__init__.py": "",
    "tests/test_mod.py": "from pkg.mod import total\n\n\ndef test_total():\n"
    "    assert total(2, 3) == 5\n",
}
# The test still passes, but line 7 no longer runs: coverage falls, which the full gates would
# find only at the iteration's end, and then by bisecting the iteration's commits.
UNREACHABLE = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -6 +6 @@\n-    if a > 0:\n+    if a > 100:\n"
DROP_OS = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,3 +1,2 @@\n-import os\n \n \n"


def test_in_a_run_the_patch_that_loses_coverage_is_refused_at_landing_and_nothing_bisected(
    make_repo: Callable[..., Path],
) -> None:
    policy = VERIFIED.replace(
        '[gates.pytest]\nargs = ["-q"]\n', '[gates.pytest]\nargs = ["-q"]\ncov = ["pkg"]\n'
    )
    assert 'cov = ["pkg"]' in policy
    responses = [
        plan(),
        todos(("T1", "ruff PLR2004 magic value"), ("T2", "ruff F401 os")),
        patch("T1", UNREACHABLE),
        skip("T1"),
        patch("T2", DROP_OS),
        plan(),
        todos(),
    ]
    summary, repo = run(make_repo, LOOP_FILES, responses, policy=policy)
    block = summary.blocks[0]
    assert block.reverts == [], block
    assert len(block.commits) == 1
    tip = git(repo, "show", f"{summary.branch}:pkg/mod.py")
    assert "import os" not in tip and "if a > 0:" in tip
    checks = [e for e in events(summary) if e["kind"] == "patch_check"]
    refused = [c for c in checks if not c["ok"]]
    assert [c["reasons"] for c in refused] == [
        ["coverage: pkg/mod.py:7 was covered by its tests at the block's start and is not now"]
    ], checks
    assert "verify_disagreed" not in [e["kind"] for e in events(summary)]


def test_hunks_inside_one_statement_are_judged_together(
    make_repo: Callable[..., Path],
) -> None:
    # A reorder inside a tuple is cut by `git diff -U0` into a removal and a pure insertion;
    # judged alone, the insertion's empty old side counted the whole statement as new (attrs
    # 21.4.0: RUF023's sort of a `__slots__` refused for a first line no test ran, before or after).
    from harness.verify import _PatchedFile

    head = 'SLOTS = (\n    "b",\n    "a",\n    "c",\n)\n\n\ndef f():\n    return SLOTS\n'
    repo = make_repo({"pkg/__init__.py": "", "pkg/slots.py": head})
    replace_in_file(repo, "pkg/slots.py", '"b",\n    "a",', '"a",\n    "b",')
    spans = _PatchedFile.read(repo, "pkg/slots.py").spans()
    assert [(sorted(old), sorted(new)) for old, new, _ in spans] == [
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    ]
    # A new statement added between two others is new on its own, as before.
    replace_in_file(repo, "pkg/slots.py", "def f():\n", "X = 1\n\n\ndef f():\n")
    spans = _PatchedFile.read(repo, "pkg/slots.py").spans()
    assert ([], [8, 9, 10]) in [(sorted(old), sorted(new)) for old, new, _ in spans]
