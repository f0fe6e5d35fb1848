"""The mutation score of the tests that cover the changed code must not fall: the same mutants,
run against the tests as they were before the patch (on the tree before it) and with it. Real
git repositories, real pytest, real coverage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.guard.mutation import MutationResult, mutants_of
from harness.policy import MutationConfig

from .conftest import git, other_gates_off
from .test_guard_mutation import _apply, _judge, _rules

CODE = """\
def double(x):
    return x * 2


def describe(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"
"""

TESTS = """\
from pkg.code import describe, double


def test_double():
    assert double(0) == 0
    assert double(2) == 4


def test_describe():
    assert describe(-1) == "negative"
    assert describe(0) == "zero"
    assert describe(5) == "positive"
"""

FILES = {
    "pkg/__init__.py": "",
    "pkg/code.py": CODE,
    "tests/__init__.py": "",
    "tests/test_code.py": TESTS,
}
TEST_FILE = "tests/test_code.py"


def _scores(result: MutationResult) -> tuple[float, float]:
    assert result.score_before is not None and result.score_after is not None
    return result.score_before, result.score_after


def test_a_weakened_assert_lowers_the_score_and_is_refused(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    # Still passes, still runs double(): the static layer's job ends there, the mutants see it.
    weak = TESTS.replace("assert double(2) == 4", "assert double(2) > 0")
    result = _judge(repo, {TEST_FILE: weak})
    assert not result.accepted
    assert _rules(result) == ["mutation.score_dropped"]
    before, after = _scores(result)
    assert after < before
    assert result.score_mutants > 0 and result.score_complete
    # `x * 2` to `x / 2` and 2 to 3 pass `double(2) > 0`; returning None still fails `== 0`.
    lost = " ".join(result.lost)
    assert "double: arithmetic" in lost and "double: constant 2" in lost
    assert "return value replaced by None" not in lost
    [violation] = result.violations
    assert violation.path == TEST_FILE and violation.layer == "mutation"
    assert f"({after:.2f})" in violation.message and f"({before:.2f})" in violation.message
    assert "double: arithmetic" in violation.message
    assert f"score {before:.2f} -> {after:.2f}" in result.layer.why


def test_removing_one_assert_of_three_is_refused(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    result = _judge(repo, {TEST_FILE: TESTS.replace('    assert describe(0) == "zero"\n', "")})
    assert _rules(result) == ["mutation.score_dropped"]
    before, after = _scores(result)
    assert after < before
    assert any("'zero'" in m or "constant 0" in m for m in result.lost), result.lost


def test_a_refactored_test_keeps_its_score_and_is_accepted(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    table = (
        "def test_describe():\n"
        "    cases = [(-1, 'negative'), (0, 'zero'), (5, 'positive')]\n"
        "    for n, want in cases:\n"
        "        assert describe(n) == want, n\n"
    )
    start = TESTS.index("def test_describe")
    result = _judge(repo, {TEST_FILE: TESTS[:start] + table})
    assert result.accepted, result.violations
    before, after = _scores(result)
    assert after == before and not result.lost


def test_an_assert_moved_to_a_new_test_keeps_the_score(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    # One test loses the assert, a new one has it: the tests together catch the same mutants.
    moved = TESTS.replace('    assert describe(0) == "zero"\n', "") + (
        '\n\ndef test_describe_zero():\n    assert describe(0) == "zero"\n'
    )
    result = _judge(repo, {TEST_FILE: moved})
    assert result.accepted, result.violations
    before, after = _scores(result)
    assert after >= before and not result.lost
    shrunk = next(k for k in result.tests if k.test.endswith("::test_describe"))
    assert shrunk.before_caught is not None and shrunk.caught < shrunk.before_caught
    # Both tests catch the flipped `n < 0`: the patch's count names each mutant once.
    assert result.caught <= result.tried < sum(k.caught for k in result.tests)


def test_the_budget_running_out_follows_fail_closed(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    weak = TESTS.replace("assert double(2) == 4", "assert double(2) > 0")
    # A budget smaller than one mutant run's timeout: no mutant runs, the score is not known.
    knobs: dict[str, object] = {"budget_seconds": 4.0, "min_timeout_seconds": 30.0}
    open_ = _judge(repo, {TEST_FILE: weak}, **knobs)
    assert open_.accepted and open_.budget_exhausted and open_.tried == 0
    assert "ran out" in open_.layer.why
    assert not open_.lost
    closed = _judge(repo, {TEST_FILE: weak}, fail_closed=True, **knobs)
    assert not closed.accepted and _rules(closed) == ["mutation.not_judged"]
    assert "ran out" in closed.violations[0].message


# A source patch that answers the tests' literal input: the tests still pass, and no longer
# reach the code they checked.
SPECIAL_CASED = CODE.replace(
    "def double(x):\n    return x * 2\n",
    "def double(x):\n    if x in (0, 2):\n        return x + x\n    return x * 2\n",
)


def test_source_patches_are_judged_unless_the_builtin_provider_wrote_them() -> None:
    """'auto': a model can write a patch that games the tests, ruff's own fixes cannot; a
    patch given to `harness apply` (provider None) may come from anywhere."""
    auto = MutationConfig()
    assert auto.source_patches == "auto"
    judged = {p: auto.judges_source(p) for p in ("anthropic", "scripted", None, "builtin")}
    assert judged == {"anthropic": True, "scripted": True, None: True, "builtin": False}
    # An explicit value wins, either way.
    assert MutationConfig(source_patches=True).judges_source("builtin")
    assert not MutationConfig(source_patches=False).judges_source("anthropic")


def test_a_source_patch_is_not_judged_when_the_policy_or_provider_says_so(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    builtin = _judge(repo, {"pkg/code.py": SPECIAL_CASED}, provider="builtin")
    assert builtin.accepted and not builtin.layer.ran
    assert "source_patches = 'auto', the builtin provider" in builtin.layer.why
    off = _judge(repo, {"pkg/code.py": SPECIAL_CASED}, provider="anthropic", source_patches=False)
    assert off.accepted and not off.layer.ran
    assert "source_patches = false" in off.layer.why


def test_a_source_patch_that_bypasses_the_tested_code_is_refused(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    # By default ('auto'): the patch is a model's.
    result = _judge(repo, {"pkg/code.py": SPECIAL_CASED}, provider="scripted")
    assert not result.accepted
    assert _rules(result) == ["mutation.score_dropped"]
    before, after = _scores(result)
    assert before == 1.0 and after == 0.0
    assert result.violations[0].path == "pkg/code.py"
    assert "the tests of the changed code" in result.violations[0].message
    # Only the test that ran double() before the patch is judged; test_describe never did.
    [covering] = [k for k in result.tests if k.covers_change]
    assert covering.test == f"{TEST_FILE}::test_double"
    assert all("double" in m for m in result.lost)


def test_a_source_fix_that_keeps_every_killed_mutant_killed_is_accepted(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    fixed = CODE.replace(
        "def describe(n):\n", 'def describe(n):\n    if n is None:\n        return "unknown"\n'
    )
    result = _judge(repo, {"pkg/code.py": fixed}, source_patches=True)
    assert result.accepted, result.violations
    before, after = _scores(result)
    assert before == after == 1.0 and result.score_mutants > 0
    assert [k.test for k in result.tests] == [f"{TEST_FILE}::test_describe"]


def test_a_mutant_keeps_its_key_when_lines_move() -> None:
    lines = set(range(1, 40))
    old = {m.key for m in mutants_of("pkg/code.py", CODE, lines)}
    moved = "import os\n\n\n" + CODE.replace(
        "def describe(n):\n", "def describe(n):\n    os.getcwd()\n"
    )
    new = {m.key for m in mutants_of("pkg/code.py", moved, lines)}
    # Every old mutant is still there; the new statement brings its own.
    assert old < new
    assert len({m.key for m in mutants_of("pkg/code.py", CODE, lines)}) == len(
        mutants_of("pkg/code.py", CODE, lines)
    )


def test_harness_apply_prints_both_scores_and_refuses_a_weakened_test(
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
    patch = (
        f"--- a/{TEST_FILE}\n+++ b/{TEST_FILE}\n@@ -4,3 +4,3 @@\n"
        " def test_double():\n     assert double(0) == 0\n"
        "-    assert double(2) == 4\n+    assert double(2) > 0\n"
    )
    proc = _apply(repo, policy, patch)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert [v["rule"] for v in out["violations"]] == ["mutation.score_dropped"]
    scores = out["mutation"]
    assert scores["score_after"] < scores["score_before"] and scores["lost"]
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
