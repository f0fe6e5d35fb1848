"""The guard's behaviour layer: pytest's own outcomes by test id before and after a patch, on
real repositories with the real pytest (harness/guard/behaviour.py).

Each family of "tests that stop running" that the static rules can miss is written to a real
repository and judged by the layer alone (the static rules are bypassed on purpose: the layer
must refuse whatever the spelling); a few go through `harness apply` and `harness run` end to
end with the static test rules off (`protect_tests = false`), so that what they show does not
hang on which spellings the static layer knows this week: the static layer accepts the patch,
the behaviour layer refuses it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates.models import GateResult
from harness.gates.pytest_report import parse_report
from harness.gates.runner import run_gates
from harness.guard.behaviour import BehaviourCheck, check_behaviour, scope
from harness.guard.behaviour import judge as judge_report
from harness.policy import Policy, parse_policy

from .conftest import git, other_gates_off
from .test_apply_cli import run as apply_patch

MakeRepo = Callable[..., Path]
pytestmark = pytest.mark.slow

POLICY = """
name = "behaviour-test"
detect = false
[gates.pytest]
args = ["-q"]
paths = ["tests"]
""" + other_gates_off("pytest")
CALC = "def add(a, b):\n    return a + b\n\n\ndef double(a):\n    return 2 * a\n"
TESTS = """\
from pkg.calc import add, double


def test_add():
    assert add(2, 3) == 5


def test_double():
    assert double(4) == 8


def test_zero():
    assert add(0, 0) == 0
"""
FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": CALC,
    "tests/__init__.py": "",
    "tests/test_calc.py": TESTS,
    ".gitignore": "__pycache__/\n",
}
ADD = "tests/test_calc.py::test_add"
DOUBLE = "tests/test_calc.py::test_double"
ZERO = "tests/test_calc.py::test_zero"


@pytest.fixture
def project(make_repo: MakeRepo) -> tuple[Path, Policy, GateResult]:
    """A repository and the pytest gate's result on it: the run before any patch."""
    repo = make_repo(FILES)
    policy = parse_policy(POLICY)
    before = run_gates(repo, policy, only=["pytest"], use_cache=False).results["pytest"]
    assert {t.id: t.outcome for t in before.tests} == {
        ADD: "passed",
        DOUBLE: "passed",
        ZERO: "passed",
    }
    return repo, policy, before


def judge(project: tuple[Path, Policy, GateResult], files: dict[str, str | None]) -> BehaviourCheck:
    """Write the files (None deletes) as a patch would, and run the layer on them."""
    repo, policy, before = project
    for rel, text in files.items():
        if text is None:
            (repo / rel).unlink()
        else:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
    check = check_behaviour(repo, policy, list(files), before)
    assert check.layer.ran and check.layer.layer == "behaviour"
    assert all(v.layer == "behaviour" for v in check.violations)
    return check


def rules(check: BehaviourCheck) -> dict[str, str]:
    return {v.rule: v.message for v in check.violations}


def with_conftest(body: str) -> dict[str, str | None]:
    return {"tests/conftest.py": "import pytest\n\n\n" + body}


# --- tests that stop running, each refused by what pytest then does ------------------------------


@pytest.mark.parametrize(
    ("fixture", "rule"),
    [
        ('request.applymarker("xfail")', "behaviour.now_xfail"),
        (
            'request.node.add_marker(getattr(pytest.mark, "xfail")(reason="x"))',
            "behaviour.now_xfail",
        ),
        ('getattr(pytest, "xfail")("later")', "behaviour.now_xfail"),
        ('getattr(pytest, "skip")("later")', "behaviour.now_skipped"),
        ('raise __import__("_pytest.outcomes").outcomes.Skipped("later")', "behaviour.now_skipped"),
    ],
)
def test_dynamic_marks_in_an_autouse_conftest_fixture(
    project: tuple[Path, Policy, GateResult], fixture: str, rule: str
) -> None:
    check = judge(
        project,
        with_conftest(f"@pytest.fixture(autouse=True)\ndef _mark(request):\n    {fixture}\n"),
    )
    assert set(rules(check)) == {rule}
    message = rules(check)[rule]
    assert ADD in message and DOUBLE in message and ZERO in message
    assert check.scope == "tests"


def test_a_non_strict_xpass_is_not_a_pass(project: tuple[Path, Policy, GateResult]) -> None:
    # The marked test still runs and passes; JUnit would read it "passed". pytest says xpassed.
    text = TESTS.replace("def test_add", "import pytest\n\n\n@pytest.mark.xfail\ndef test_add")
    check = judge(project, {"tests/test_calc.py": text})
    assert rules(check).keys() == {"behaviour.now_xfail"}
    assert check.after["xpassed"] == 1 and check.after["passed"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "__test__ = False\n" + TESTS,  # a module that is no longer a test module
        TESTS + "\n\ntest_zero.__test__ = False\n",
        TESTS + "\n\ndel test_zero\n",
        TESTS.replace("def test_zero", "import pytest\n\n\n@pytest.fixture\ndef test_zero"),
        TESTS.replace(
            "def test_zero():\n    assert add(0, 0) == 0",
            "import pytest\n\n\n@pytest.mark.parametrize('n', [])\ndef test_zero(n):\n"
            "    assert add(n, 0) == n",
        ),
    ],
    ids=["module __test__", "function __test__", "del", "fixture", "empty parametrize"],
)
def test_tests_that_are_no_longer_collected(
    project: tuple[Path, Policy, GateResult], text: str
) -> None:
    check = judge(project, {"tests/test_calc.py": text})
    found = rules(check)
    assert ZERO in " ".join(found.values())
    # A test that is gone is lost; an empty parametrize leaves a skipped placeholder.
    # No test left at all is exit 5 besides.
    assert found.keys() <= {"behaviour.lost_test", "behaviour.now_skipped", "behaviour.exit_status"}
    assert found.keys() & {"behaviour.lost_test", "behaviour.now_skipped"}


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("tests/conftest.py", "import pytest\n\npytest.exit('done', returncode=0)\n"),
        ("tests/conftest.py", "import os\n\nos._exit(0)\n"),
        ("conftest.py", "import os\n\nos._exit(0)\n"),
        (
            "tests/test_calc.py",
            TESTS.replace("assert add(2, 3) == 5", "import os\n    os._exit(0)"),
        ),
    ],
    ids=[
        "pytest.exit in conftest",
        "os._exit in conftest",
        "os._exit in root conftest",
        "os._exit in a test",
    ],
)
def test_pytest_ending_early_is_refused_never_could_not_run(
    project: tuple[Path, Policy, GateResult], where: str, text: str
) -> None:
    check = judge(project, {where: text})
    found = rules(check)
    assert found.keys() & {"behaviour.no_report", "behaviour.exit_status"}, found
    if "os._exit" in text:
        # The process exits 0, as if every test had passed; only the missing report says no.
        assert check.exit_status == 0
        assert found.keys() == {"behaviour.no_report"}


def test_pytest_exit_inside_a_test(project: tuple[Path, Policy, GateResult]) -> None:
    text = TESTS.replace(
        "assert double(4) == 8", "import pytest\n    pytest.exit('enough', returncode=0)"
    )
    check = judge(project, {"tests/test_calc.py": text})
    found = rules(check)
    assert check.exit_status == 0
    assert {"behaviour.interrupted", "behaviour.lost_test"} <= found.keys()
    assert "enough" in found["behaviour.interrupted"]
    assert DOUBLE in found["behaviour.lost_test"] and ZERO in found["behaviour.lost_test"]


def test_no_tests_left_is_exit_five(project: tuple[Path, Policy, GateResult]) -> None:
    check = judge(project, {"tests/test_calc.py": "__test__ = False\n" + TESTS})
    found = rules(check)
    assert check.exit_status == 5
    assert "exit 5" in found["behaviour.exit_status"]
    assert "behaviour.lost_test" in found


def test_a_hook_that_hides_failures_behind_exit_zero(
    project: tuple[Path, Policy, GateResult],
) -> None:
    body = "def pytest_sessionfinish(session, exitstatus):\n    session.exitstatus = 0\n"
    broken = TESTS.replace("== 8", "== 9")
    check = judge(project, {**with_conftest(body), "tests/test_calc.py": broken})
    found = rules(check)
    # The hook runs after pytest decided status 1; the process exits 0.
    assert "process exited 0" in found["behaviour.exit_status"]
    assert DOUBLE in found["behaviour.now_failing"]


def test_deselected_by_configuration(project: tuple[Path, Policy, GateResult]) -> None:
    check = judge(project, {"pytest.ini": "[pytest]\naddopts = -k 'not zero'\n"})
    assert rules(check).keys() == {"behaviour.deselected"}
    assert ZERO in rules(check)["behaviour.deselected"]
    assert check.after["deselected"] == 1


def test_a_source_patch_cannot_make_a_test_skip(project: tuple[Path, Policy, GateResult]) -> None:
    gamed = CALC.replace(
        "def double(a):\n",
        "def double(a):\n    import pytest\n\n    pytest.skip('not today')\n",
    )
    check = judge(project, {"pkg/calc.py": gamed})
    assert check.scope == "source"
    assert rules(check).keys() == {"behaviour.now_skipped"}
    assert DOUBLE in rules(check)["behaviour.now_skipped"]


def test_a_source_patch_that_special_cases_pytest(project: tuple[Path, Policy, GateResult]) -> None:
    gamed = (
        "import sys\n\nif 'pytest' in sys.modules:\n    import pytest\n\n"
        "    pytest.skip('under test', allow_module_level=True)\n\n\n" + CALC
    )
    check = judge(project, {"pkg/calc.py": gamed})
    # The test module's import of pkg.calc skips it whole: no test left (exit 5).
    assert rules(check).keys() == {"behaviour.now_skipped", "behaviour.exit_status"}
    assert ADD in rules(check)["behaviour.now_skipped"]


def test_a_source_patch_that_breaks_a_test_is_left_to_verify_and_the_gates(
    project: tuple[Path, Policy, GateResult],
) -> None:
    check = judge(project, {"pkg/calc.py": CALC.replace("a + b", "a - b")})
    assert check.ok, check.violations
    assert check.after["failed"] == 1


def test_a_source_patch_that_breaks_collection_is_left_to_verify_and_the_gates(
    project: tuple[Path, Policy, GateResult],
) -> None:
    # The test module's import fails: pytest stops after collecting, and ran nothing. That is
    # a regression of the code, not a change of what the tests check.
    check = judge(project, {"pkg/calc.py": CALC.replace("def double", "def twice")})
    assert check.ok, check.violations
    assert check.exit_status == 2


def test_a_test_patch_that_breaks_collection_is_refused(
    project: tuple[Path, Policy, GateResult],
) -> None:
    check = judge(project, {"tests/test_calc.py": TESTS.replace("double\n", "triple\n", 1)})
    assert rules(check).keys() == {"behaviour.now_failing"}
    assert "could not collect tests/test_calc.py" in rules(check)["behaviour.now_failing"]


def test_a_test_patch_that_breaks_a_test_is_refused(
    project: tuple[Path, Policy, GateResult],
) -> None:
    check = judge(project, {"tests/test_calc.py": TESTS.replace("== 8", "== 9")})
    assert rules(check).keys() == {"behaviour.now_failing"}


# --- what is accepted -----------------------------------------------------------------------------


def test_a_new_test_is_accepted(project: tuple[Path, Policy, GateResult]) -> None:
    more = TESTS + "\n\ndef test_negative():\n    assert add(-1, -2) == -3\n"
    check = judge(project, {"tests/test_calc.py": more})
    assert check.ok, check.violations
    assert check.before["passed"] == 3 and check.after["passed"] == 4


def test_a_renamed_test_is_refused_by_id(project: tuple[Path, Policy, GateResult]) -> None:
    # Decided: identity is the test id. A rename with the same outcome still loses the old id;
    # a by-id layer cannot tell a rename from a deletion plus an unrelated new test, and the
    # static layer refuses renames of test functions anyway (docs/guard.md).
    renamed = TESTS.replace("def test_zero", "def test_zero_sum")
    check = judge(project, {"tests/test_calc.py": renamed})
    assert rules(check).keys() == {"behaviour.lost_test"}
    assert ZERO in rules(check)["behaviour.lost_test"]


def test_a_fixture_edit_in_conftest_is_accepted(project: tuple[Path, Policy, GateResult]) -> None:
    check = judge(project, with_conftest("@pytest.fixture\ndef numbers():\n    return [1, 2]\n"))
    assert check.ok, check.violations


def test_what_the_layer_runs_on() -> None:
    guard = parse_policy(POLICY).guard
    assert scope(["README.md"], guard)[0] is None
    assert scope(["pkg/calc.py"], guard)[0] == "source"
    assert scope(["pkg/calc.py", "tests/test_calc.py"], guard)[0] == "tests"
    assert scope(["tox.ini"], guard)[0] == "tests"
    assert scope(["pkg/conftest.py"], guard)[0] == "tests"
    assert scope(["tests/data/expected.json"], guard)[0] == "tests"


def test_not_run_without_a_run_before(project: tuple[Path, Policy, GateResult]) -> None:
    repo, policy, _before = project
    check = check_behaviour(repo, policy, ["tests/test_calc.py"], None)
    assert not check.layer.ran and "no run to compare with" in check.layer.why
    check = check_behaviour(repo, policy, ["README.md"], _before)
    assert not check.layer.ran and "no Python code" in check.layer.why


# --- harness apply: the static layer accepts, the behaviour layer refuses ------------------------


AUTOUSE_XFAIL = """\
--- /dev/null
+++ b/tests/conftest.py
@@ -0,0 +1,6 @@
+import pytest
+
+
+@pytest.fixture(autouse=True)
+def _calm(request):
+    request.applymarker("xfail")
"""
NEW_TEST = """\
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -12,2 +12,6 @@
 def test_zero():
     assert add(0, 0) == 0
+
+
+def test_negative():
+    assert add(-1, -2) == -3
"""


# The static layer's test rules are off: see the module docstring.
STATIC_TESTS_OFF = "\n[guard]\nprotect_tests = false\n"


@pytest.fixture
def applied(make_repo: MakeRepo, tmp_path: Path) -> tuple[Path, Path]:
    repo = make_repo(FILES)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY + STATIC_TESTS_OFF)
    return repo, policy


def test_apply_refuses_a_dynamic_xfail_the_static_layer_accepted(
    applied: tuple[Path, Path],
) -> None:
    repo, policy = applied
    head = git(repo, "rev-parse", "HEAD")
    static = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "check-patch",
            "--repo",
            str(repo),
            "--policy",
            str(policy),
            "--json",
            "-",
        ],
        input=AUTOUSE_XFAIL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert static.returncode == 0, static.stdout
    proc = apply_patch(repo, policy, AUTOUSE_XFAIL, "--json")
    assert proc.returncode == 1, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["accepted"] is False and out["kept"] is False
    assert [(v["rule"], v["layer"]) for v in out["violations"]] == [
        ("behaviour.now_xfail", "behaviour")
    ]
    layers = {x["layer"]: x for x in out["layers"]}
    assert layers["behaviour"]["ran"] is True and layers["behaviour"]["seconds"] > 0
    # The refusal left the checkout exactly as it was.
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_apply_keeps_a_new_test_with_the_layer_run(applied: tuple[Path, Path]) -> None:
    repo, policy = applied
    proc = apply_patch(repo, policy, NEW_TEST, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["kept"] is True and out["violations"] == []
    behaviour = next(x for x in out["layers"] if x["layer"] == "behaviour")
    assert behaviour["ran"] is True and "tests/test_calc.py" in behaviour["why"]


def test_judge_reads_pytest_s_own_account(project: tuple[Path, Policy, GateResult]) -> None:
    repo, _policy, before = project
    records = [
        {"kind": "start", "pid": 1, "rootdir": str(repo)},
        {"kind": "collected", "ids": [ADD, DOUBLE, ZERO]},
        *(
            {"kind": "report", "id": i, "when": w, "outcome": o, "xfail": False, "seconds": 0}
            for i, o in ((ADD, "passed"), (DOUBLE, "failed"), (ZERO, "passed"))
            for w, o in (("setup", "passed"), ("call", o), ("teardown", "passed"))
        ),
        {"kind": "finish", "exitstatus": 0},
    ]
    report = parse_report("\n".join(json.dumps(r) for r in records), repo)
    found = {v.rule: v.message for v in judge_report(before, report, 0)}
    assert "hides failures" in found["behaviour.exit_status"]
    assert DOUBLE in found["behaviour.now_failing"]
    # A report something else wrote lines into is not pytest's word.
    with pytest.raises(ValueError, match="line 2"):
        parse_report('{"kind": "start"}\nall tests passed\n', repo)


# --- harness run: refused at landing, remembered, recorded ---------------------------------------

LOOP_STEPS = """# STEPS behaviour

## BLOCK 1 — Ruff to 0

- Fix the ruff findings in `tests/`.

**Gate:**
```bash
ruff check tests
```

## Guardrails

- ≤20 lines/file.
"""
LOOP_POLICY = (
    """
name = "behaviour-loop"
detect = false
[gates.ruff]
paths = ["tests"]
[gates.pytest]
args = ["-q"]
paths = ["tests"]
"""
    + other_gates_off("ruff", "pytest")
    + STATIC_TESTS_OFF
)
# The unused import is the block's finding; the patch removes it and hides the module.
UNUSED = "import os\n" + TESTS
HIDE_MODULE = """\
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,2 +1,2 @@
-import os
+__test__ = False
 from pkg.calc import add, double
"""


def test_run_refuses_at_landing_and_remembers(make_repo: MakeRepo) -> None:
    from harness.loop import Loop
    from harness.providers.scripted import ScriptedProvider
    from harness.record import read_events

    from .test_loop import options, patch, plan

    repo = make_repo({**FILES, "tests/test_calc.py": UNUSED})
    todo = {
        "phase": "todo",
        "tool": "submit_todos",
        "input": {
            "items": [
                {"id": "T1", "title": "tidy", "files": ["tests/test_calc.py"], "gate": "pytest"}
            ]
        },
    }
    provider = ScriptedProvider.from_responses([plan(), todo, patch("T1", HIDE_MODULE)])
    summary = Loop(options(repo, provider, steps=LOOP_STEPS, policy=LOOP_POLICY)).run()
    assert summary.blocks[0].commits == []
    events = read_events(Path(summary.run_dir))
    # The static layer (its test rules off) accepted the patch; the behaviour layer refused it
    # once it was written.
    verdict = next(e for e in events if e["kind"] == "verdict")
    assert verdict["accepted"] is True
    layer = next(e for e in events if e["kind"] == "behaviour")
    assert layer["layer"]["layer"] == "behaviour" and layer["layer"]["ran"] is True
    assert layer["scope"] == "tests" and layer["exit_status"] == 5
    assert {v["rule"] for v in layer["violations"]} == {
        "behaviour.lost_test",
        "behaviour.exit_status",
    }
    assert all(v["layer"] == "behaviour" for v in layer["violations"])
    # Refused at landing like the other landing checks: the tree is back, the change remembered.
    assert git(repo, "show", f"{summary.branch}:tests/test_calc.py") == UNUSED
    assert any(
        e["kind"] == "model_request" and "behaviour.lost_test" in json.dumps(e) for e in events
    )
