"""The mutation layer on real repositories and real pytest: vacuous tests are refused whatever
their spelling, a weakened test is refused for the kills it lost, a real test is accepted, and
the worktree is byte-identical afterwards, also when a mutant hangs or kills the interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.guard.mutation import (
    MutationResult,
    changed_tests,
    check_patch_tests,
    check_tests,
    mutants_of,
)
from harness.policy import Policy, parse_policy

from .conftest import git, other_gates_off

CALC = """\
import os


def add(a, b):
    return a + b


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def positive(x):
    if x > 0:
        return x
    os._exit(3)


def countdown(n):
    while n > 0:
        n -= 1
    return n


def initials(name):
    return name[0].upper() + "."


def checked(x):
    assert x > 0
    return x
"""

TEST_CALC = """\
from pkg.calc import add


def test_add():
    assert add(2, 3) == 5
"""

FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": CALC,
    "tests/__init__.py": "",
    "tests/test_calc.py": TEST_CALC,
}

NEW = "tests/test_new.py"


def _policy(**mutation: object) -> Policy:
    knobs = {"min_timeout_seconds": 5.0, "budget_seconds": 120.0, "max_mutants": 10} | mutation
    table = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in knobs.items()
    )
    return parse_policy(
        f'[gates]\npython = "{sys.executable}"\n'
        '[gates.pytest]\npaths = ["tests"]\ncov = ["pkg"]\n'
        + other_gates_off("pytest")
        + f"[guard.mutation]\n{table}"
    )


def _snapshot(repo: Path) -> dict[str, bytes]:
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


def _judge(
    repo: Path, files: dict[str, str], provider: str | None = None, **mutation: object
) -> MutationResult:
    """Write the patch's files into the worktree (as `harness apply` does before it judges),
    run the layer, and check it left every byte as it found it. `provider`: who wrote the
    patch (None: `harness apply`'s unknown author)."""
    for path, text in files.items():
        (repo / path).write_text(text)
    before = _snapshot(repo)
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    contents: dict[str, bytes | None] = {p: t.encode() for p, t in files.items()}
    result = check_patch_tests(repo, _policy(**mutation), contents, provider=provider)
    assert _snapshot(repo) == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == status
    return result


def _rules(result: MutationResult) -> list[str]:
    assert all(v.layer == "mutation" for v in result.violations)
    return [v.rule for v in result.violations]


def test_a_new_test_with_real_asserts_is_accepted(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    body = (
        "from pkg.calc import clamp\n\n\ndef test_clamp():\n"
        "    assert clamp(5, 0, 3) == 3\n    assert clamp(-1, 0, 3) == 0\n"
        "    assert clamp(2, 0, 3) == 2\n"
    )
    result = _judge(repo, {NEW: body})
    assert result.accepted, result.violations
    assert result.layer.ran and result.layer.layer == "mutation"
    [kills] = result.tests
    assert kills.test == f"{NEW}::test_clamp" and kills.new
    assert kills.tried > 0 and kills.caught == kills.killed == kills.tried
    assert "clamp" in result.layer.why or result.mutants > 0


VACUOUS = {
    "no_asserts": "from pkg.calc import clamp\n\n\ndef test_v():\n    clamp(5, 0, 3)\n",
    "tautology": (
        "from pkg.calc import clamp\n\n\ndef test_v():\n"
        "    result = clamp(5, 0, 3)\n    assert result == result\n"
    ),
    "never_runs": (
        "from pkg.calc import clamp\n\n\ndef test_v():\n"
        "    result = clamp(5, 0, 3)\n    if result == 'never':\n        assert result == 3\n"
    ),
    # Its arithmetic mutant raises TypeError: killed by calling, caught by no check.
    "calls_only": "from pkg.calc import initials\n\n\ndef test_v():\n    initials('ada')\n",
    "skipped_by_getattr": (
        "import pytest\nfrom pkg.calc import clamp\n\n\ndef test_v():\n"
        "    getattr(pytest, 'skip')('later')\n    assert clamp(5, 0, 3) == 3\n"
    ),
    # Its mutants fail the code's own assert: an AssertionError, but not one of the test's.
    "asserts_in_the_code": "from pkg.calc import checked\n\n\ndef test_v():\n    checked(2)\n",
    "mocked_subject": (
        "from pkg import calc\n\n\ndef test_v(monkeypatch):\n"
        "    monkeypatch.setattr(calc, 'clamp', lambda x, lo, hi: 3)\n"
        "    assert calc.clamp(5, 0, 3) == 3\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(VACUOUS))
def test_a_vacuous_test_is_refused_whatever_its_spelling(
    make_repo: Callable[..., Path], kind: str
) -> None:
    repo = make_repo(FILES)
    result = _judge(repo, {NEW: VACUOUS[kind]})
    assert not result.accepted
    assert _rules(result) == ["mutation.kills_nothing"]
    assert result.violations[0].path == NEW
    assert result.tests[0].caught == 0
    if kind in ("calls_only", "asserts_in_the_code"):
        # Killed (the code raised), and still refused: no check of the test failed.
        assert result.tests[0].killed > 0 and result.uncaught


def test_weakening_an_existing_test_lowers_its_score_and_is_refused(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    weak = TEST_CALC.replace("== 5", "is not None")
    result = _judge(repo, {"tests/test_calc.py": weak})
    assert not result.accepted
    assert _rules(result) == ["mutation.score_dropped"]
    [kills] = result.tests
    assert not kills.new and kills.before_caught is not None
    assert kills.caught < kills.before_caught
    assert result.score_before is not None and result.score_after is not None
    assert result.score_after < result.score_before


def test_a_stronger_changed_test_keeps_its_score(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    strong = TEST_CALC + "    assert add(-1, 1) == 0\n"
    result = _judge(repo, {"tests/test_calc.py": strong})
    assert result.accepted, result.violations
    assert result.score_after is not None and result.score_before is not None
    assert result.score_after >= result.score_before


def test_mutants_that_kill_the_interpreter_or_hang_are_killed_and_leave_no_trace(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    body = (
        "from pkg.calc import countdown, positive\n\n\n"
        "def test_positive():\n    assert positive(2) == 2\n\n\n"
        "def test_countdown():\n    assert countdown(3) is not None\n"
    )
    # A new test is run until one of its checks fails: test_countdown's fails only on the
    # return-None mutant, its last, so the hanging one before it runs. _judge checks the
    # worktree is byte-identical afterwards.
    result = _judge(repo, {NEW: body}, min_timeout_seconds=3.0, max_mutants=8)
    assert result.accepted, result.violations
    assert all(k.caught > 0 for k in result.tests)
    # Flipping `x > 0` reaches os._exit(3); `n -= 1` made `n += 1` never ends: both are killed,
    # by the crash and the timeout, not by a check.
    uncaught = " ".join(result.uncaught)
    assert "positive: comparison" in uncaught and "countdown: augmented" in uncaught
    assert not any("positive: comparison" in s or "augmented" in s for s in result.survived)
    assert result.tried == result.mutants and not result.budget_exhausted


def test_the_budget_is_said_and_fails_closed_only_when_the_policy_says_so(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    body = "from pkg.calc import clamp\n\n\ndef test_v():\n    assert clamp(5, 0, 3) == 3\n"
    # A budget smaller than one mutant run's timeout: no mutant runs (on a slow machine, not
    # even the unmutated tests finish), and the record says why.
    open_ = _judge(repo, {NEW: body}, budget_seconds=4.0, min_timeout_seconds=30.0)
    assert open_.accepted and open_.budget_exhausted and open_.tried == 0
    assert "ran out" in open_.layer.why
    assert all(not k.judged for k in open_.tests)
    closed = _judge(
        repo, {NEW: body}, budget_seconds=4.0, min_timeout_seconds=30.0, fail_closed=True
    )
    assert not closed.accepted and _rules(closed) == ["mutation.not_judged"]


def test_the_layer_is_skipped_without_a_changed_test_or_when_off(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    src = _judge(repo, {"pkg/calc.py": CALC.replace("a + b", "b + a")}, source_patches=False)
    assert src.accepted and not src.layer.ran and "no new or changed test" in src.layer.why
    off = _judge(repo, {NEW: VACUOUS["no_asserts"]}, enabled=False)
    assert off.accepted and not off.layer.ran


def test_max_mutants_caps_the_mutants_tried(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    body = "from pkg.calc import clamp\n\n\ndef test_v():\n    assert clamp(5, 0, 3) == 3\n"
    result = _judge(repo, {NEW: body}, max_mutants=2)
    # The first mutant is caught, which decides the verdict: the second is not run.
    assert result.mutants == 2 and result.tried == 1


def test_changed_tests_are_the_added_or_edited_test_functions(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        FILES | {"tests/test_two.py": "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"}
    )
    edited = (
        "def test_a():\n    pass\n\n\ndef test_b():\n    assert 1\n\n\ndef test_c():\n    pass\n"
    )
    assert changed_tests(repo, "HEAD", {"tests/test_two.py": edited}, ["tests/**"]) == [
        "tests/test_two.py::test_b",
        "tests/test_two.py::test_c",
    ]
    # A helper changed: every test of the module may check less.
    helper = "import os\n\n" + edited
    assert len(changed_tests(repo, "HEAD", {"tests/test_two.py": helper}, ["tests/**"])) == 3
    # Source files and deleted files are not tests.
    assert (
        changed_tests(repo, "HEAD", {"pkg/calc.py": CALC, "tests/test_calc.py": None}, ["tests/**"])
        == []
    )


def test_mutants_parse_differ_and_stay_on_the_lines_asked_for() -> None:
    lines = set(range(1, CALC.count("\n") + 1))
    every = mutants_of("pkg/calc.py", CALC, lines)
    operators = {m.operator.split(" ")[0] for m in every}
    assert {"comparison", "arithmetic", "return", "constant", "call", "augmented"} <= operators
    original = ast.dump(ast.parse(CALC))
    for m in every:
        assert ast.dump(ast.parse(m.text)) != original
    only_add = mutants_of("pkg/calc.py", CALC, {5})
    assert only_add and {m.function for m in only_add} == {"add"}
    assert mutants_of("pkg/calc.py", CALC, set()) == []


def test_check_tests_takes_coverage_the_caller_measured(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    body = "from pkg.calc import add, clamp\n\n\ndef test_v():\n"
    body += "    assert add(1, 1) == 2\n    assert clamp(5, 0, 3) == 3\n"
    (repo / NEW).write_text(body)
    ids = [f"{NEW}::test_v"]
    # The lines the caller says the test ran decide which mutants run: add's body only.
    told = check_tests(repo, _policy(), sys.executable, ids, covered={ids[0]: {"pkg/calc.py": {5}}})
    assert told.accepted, told.violations
    assert told.mutants > 0 and told.tests[0].caught == told.tests[0].tried == 1
    assert "1 function(s)" in told.layer.why


def _new_file_patch(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def _apply(repo: Path, policy: Path, patch: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "harness", "apply", "--repo", str(repo), "--json"]
    return subprocess.run(
        [*argv, "--policy", str(policy), "-"],
        input=patch,
        capture_output=True,
        text=True,
        check=False,
    )


def test_harness_apply_refuses_a_vacuous_test_and_keeps_a_real_one(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES | {".gitignore": "__pycache__/\n.coverage\n"})
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'detect = false\n[gates.pytest]\nargs = ["-q"]\n'
        + other_gates_off("pytest")
        + "[guard.mutation]\nmax_mutants = 6\nmin_timeout_seconds = 5.0\n"
    )
    head = git(repo, "rev-parse", "HEAD").strip()
    # The static layer refuses the other spellings by name; this one only the mutants catch.
    proc = _apply(repo, policy, _new_file_patch(NEW, VACUOUS["never_runs"]))
    assert proc.returncode == 1, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["kept"] is False and out["accepted"] is False
    assert [v["rule"] for v in out["violations"]] == ["mutation.kills_nothing"]
    assert {"layer": "mutation", "ran": True}.items() <= out["layers"][-1].items()
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""

    real = "from pkg.calc import add\n\n\ndef test_sum():\n    assert add(2, 2) == 4\n"
    proc = _apply(repo, policy, _new_file_patch(NEW, real))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["kept"] is True and out["layers"][-1]["layer"] == "mutation"
    assert out["layers"][-1]["ran"] is True


def test_a_lint_fix_that_leaves_every_test_as_it_was_changes_no_test(
    make_repo: Callable[..., Path],
) -> None:
    """ruff's I001 (imports sorted) and UP025 (a u"" prefix dropped) on a test module change
    nothing a test checks, so no test of it is "changed" and the mutation layer has nothing to
    judge; an import added or removed still changes every test of the module."""
    before = (
        "import sys\nimport os\n\n\ndef test_a():\n    assert os.sep and sys.argv\n\n\n"
        'def test_b():\n    assert u"x" == "x"\n'
    )
    repo = make_repo(FILES | {"tests/test_lint.py": before})
    fixed = before.replace("import sys\nimport os\n", "import os\nimport sys\n").replace(
        'u"x"', '"x"'
    )
    assert changed_tests(repo, "HEAD", {"tests/test_lint.py": fixed}, ["tests/**"]) == []
    fewer = fixed.replace("import os\nimport sys\n", "import os\nimport sys\nimport re\n")
    assert len(changed_tests(repo, "HEAD", {"tests/test_lint.py": fewer}, ["tests/**"])) == 2


# Imports as toolz 0.12.0's tests wrote them: several names in one statement, unsorted, one
# renamed. ruff's I001 sorts the names and splits the renamed one into its own statement.
UNSORTED_IMPORTS = """\
import os
from collections import defaultdict
from pkg.calc import (clamp, add,
                      initials as ini)


def test_names():
    assert add(1, 2) == 3 and clamp(5, 0, 3) == 3 and ini("ada") == "A."
    assert os.sep and defaultdict
"""


def test_ruffs_own_import_sort_changes_no_test(make_repo: Callable[..., Path]) -> None:
    """toolz 0.12.0, session 5: I001 on 23 files made 49 "changed" tests (152 s of mutants)."""
    repo = make_repo(FILES | {"tests/test_names.py": UNSORTED_IMPORTS})
    sort = ["check", "--no-cache", "--isolated", "--select", "I001", "--fix", "-q"]
    subprocess.run(
        [sys.executable, "-m", "ruff", *sort, "tests/test_names.py"], cwd=repo, check=True
    )
    fixed = (repo / "tests/test_names.py").read_text()
    assert fixed != UNSORTED_IMPORTS and "from pkg.calc import add, clamp\n" in fixed
    assert "from pkg.calc import initials as ini\n" in fixed
    assert changed_tests(repo, "HEAD", {"tests/test_names.py": fixed}, ["tests/**"]) == []
    # A name bound under another alias is a change to every test of the module.
    renamed = fixed.replace("initials as ini", "initials as ini2")
    assert changed_tests(repo, "HEAD", {"tests/test_names.py": renamed}, ["tests/**"]) == [
        "tests/test_names.py::test_names"
    ]


OBJECT_BASES = """\
from pkg.calc import add


class Adder(object):
    def __call__(self, a, b):
        return add(a, b)


class TestAdd(object):
    def test_add(self):
        def helper():
            '''Adds.'''
            pass

        assert Adder()(1, 2) == 3 and helper() is None


def test_local_class():
    class Local(object):
        value = add(2, 2)

    assert Local.value == 4
"""


def test_ruffs_object_base_and_pass_removal_change_no_test(
    make_repo: Callable[..., Path],
) -> None:
    """toolz 0.12.0, session 5: UP004 on 7 files made 69 "changed" tests (159 s of mutants), and
    PIE790's removed `pass` one (100 s)."""
    repo = make_repo(FILES | {"tests/test_bases.py": OBJECT_BASES})
    fix = ["check", "--no-cache", "--isolated", "--select", "UP004,PIE790", "--fix", "-q"]
    subprocess.run(
        [sys.executable, "-m", "ruff", *fix, "tests/test_bases.py"], cwd=repo, check=True
    )
    fixed = (repo / "tests/test_bases.py").read_text()
    assert "(object)" in OBJECT_BASES and "(object)" not in fixed and "pass" not in fixed
    assert changed_tests(repo, "HEAD", {"tests/test_bases.py": fixed}, ["tests/**"]) == []
    # Another base is a change: to the helper (every test) or to the class a test defines.
    other = fixed.replace("class Local:", "class Local(dict):")
    assert changed_tests(repo, "HEAD", {"tests/test_bases.py": other}, ["tests/**"]) == [
        "tests/test_bases.py::test_local_class"
    ]
    helper = fixed.replace("class Adder:", "class Adder(dict):")
    assert len(changed_tests(repo, "HEAD", {"tests/test_bases.py": helper}, ["tests/**"])) == 2


# A test that checks only that a string is not empty: no mutant of add() fails it, before a lint
# fix or after. ruff's UP032 rewrites its `.format()` call into an f-string.
WEAK_FORMAT = """\
from pkg.calc import add


def test_shows_a_sum():
    text = "{} items".format(add(1, 2))
    assert text
"""
STRONG_FORMAT = WEAK_FORMAT.replace("    assert text\n", '    assert text == "3 items"\n')
FORMAT_FILE = "tests/test_format.py"


def _up032(text: str) -> str:
    return text.replace('"{} items".format(add(1, 2))', 'f"{add(1, 2)} items"')


def test_a_lint_fix_to_a_test_that_caught_nothing_before_is_accepted(
    make_repo: Callable[..., Path],
) -> None:
    """toolz 0.12.0 (defect 8): a changed test is held to its old version, not to "catch one";
    a new test in the same patch still must catch one."""
    repo = make_repo(FILES | {FORMAT_FILE: WEAK_FORMAT})
    fixed = _up032(WEAK_FORMAT)
    assert fixed != WEAK_FORMAT
    assert changed_tests(repo, "HEAD", {FORMAT_FILE: fixed}, ["tests/**"]) == [
        f"{FORMAT_FILE}::test_shows_a_sum"
    ]
    result = _judge(repo, {FORMAT_FILE: fixed})
    assert result.accepted, result.violations
    [kills] = result.tests
    assert not kills.new and kills.judged
    assert kills.tried > 0 and kills.caught == 0
    assert kills.before_tried is not None and kills.before_tried > 0 and kills.before_caught == 0
    assert "no less than before" in kills.note
    assert result.score_before == result.score_after == 0.0

    # The same fix beside a new test that catches nothing: only the new test is refused.
    vacuous = '\n\ndef test_new():\n    text = f"{add(2, 2)} items"\n    assert text\n'
    result = _judge(repo, {FORMAT_FILE: fixed + vacuous})
    assert not result.accepted
    assert _rules(result) == ["mutation.kills_nothing"]
    assert f"{FORMAT_FILE}::test_new" in result.violations[0].message
    assert "test_shows_a_sum" not in result.violations[0].message


def test_a_changed_test_that_catches_fewer_than_before_is_refused(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES | {FORMAT_FILE: STRONG_FORMAT})
    # The f-string rewrite, with the check weakened to one that only a None sum fails.
    fewer = _up032(STRONG_FORMAT).replace('== "3 items"', '!= "None items"')
    result = _judge(repo, {FORMAT_FILE: fewer})
    assert not result.accepted
    assert _rules(result) == ["mutation.score_dropped"]
    [kills] = result.tests
    assert kills.before_caught is not None and 0 < kills.caught < kills.before_caught
    # Weakened to catch nothing at all: refused as catching nothing, which it did before.
    none = _up032(WEAK_FORMAT)
    result = _judge(repo, {FORMAT_FILE: none})
    assert not result.accepted
    assert _rules(result) == ["mutation.kills_nothing", "mutation.score_dropped"]
    assert "its version before the patch caught" in result.violations[0].message
