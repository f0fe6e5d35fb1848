"""The pytest gate: outcomes by node id from JUnit XML, coverage from coverage's JSON report."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from harness.gates import pytest_report
from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateResult, GateStatus
from harness.gates.runner import run_tests
from harness.policy import PytestGateConfig, parse_policy

from .conftest import git

LIB = """\
def add(a, b):
    return a + b


def unused(x):
    if x:
        return 1
    return 2
"""

TESTS = """\
import pytest

from pkg.lib import add


def test_add():
    assert add(1, 2) == 3


def test_wrong():
    assert add(1, 1) == 3


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_uses_broken(broken):
    pass


class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert add(n, 0) == n
"""


def _ctx(repo: Path, python: str = sys.executable, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=python, cfg=PytestGateConfig.model_validate(cfg))


def test_outcomes_by_node_id_and_coverage(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": LIB,
            "tests/__init__.py": "",
            "tests/test_lib.py": TESTS,
        }
    )
    result = GATES["pytest"].run(_ctx(repo, cov=["pkg"]))

    assert result.status == GateStatus.FAILED
    outcomes = {t.id: t.outcome for t in result.tests}
    assert outcomes == {
        "tests/test_lib.py::test_add": "passed",
        "tests/test_lib.py::test_wrong": "failed",
        "tests/test_lib.py::test_skipped": "skipped",
        "tests/test_lib.py::test_uses_broken": "error",
        "tests/test_lib.py::TestGroup::test_param[1]": "passed",
        "tests/test_lib.py::TestGroup::test_param[2]": "passed",
    }
    assert result.counts() == {
        "passed": 3,
        "failed": 1,
        "errors": 1,
        "skipped": 1,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert result.reason == "1 failed, 1 error(s)"
    # lib.py: 6 statements; the body of unused() (3 of them) never runs.
    assert result.coverage is not None
    assert result.coverage.num_statements == 6
    assert result.coverage.covered_lines == 3
    assert result.coverage.percent == 50.0
    assert set(result.coverage.per_file) == {"pkg/__init__.py", "pkg/lib.py"}
    # No .coverage, .pytest_cache, __pycache__ or report left behind.
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_fail_under_and_coverage_config(make_repo: Callable[..., Path]) -> None:
    good_tests = "from pkg.lib import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": LIB,
            "pkg/skipme.py": "X = 1\nY = 2\n",
            "tests/test_lib.py": good_tests,
            ".coveragerc": "[run]\nomit = pkg/skipme.py\n",
        }
    )
    passing = GATES["pytest"].run(_ctx(repo, cov=["pkg"], config=".coveragerc", fail_under=50))
    assert passing.status == GateStatus.PASSED
    assert passing.coverage is not None and "pkg/skipme.py" not in passing.coverage.per_file
    assert any(a == "--cov-config=.coveragerc" for a in passing.command)

    low = GATES["pytest"].run(_ctx(repo, cov=["pkg"], config=".coveragerc", fail_under=90))
    assert low.status == GateStatus.FAILED
    assert low.reason == "coverage 50.00% is below 90%"


def test_collection_error_is_an_error_with_the_reason(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "tests/test_ok.py": "def test_ok():\n    pass\n",
            "tests/test_bad.py": "import no_such_module_here\n",
        }
    )
    for cfg in ({}, {"cov": ["tests"]}):  # with coverage too: no "no coverage report" reason
        result = GATES["pytest"].run(_ctx(repo, **cfg))
        assert result.status == GateStatus.ERROR
        assert result.exit_code == 2
        assert result.reason == (
            "collection error in tests/test_bad.py: "
            "ModuleNotFoundError: No module named 'no_such_module_here'"
        )


def test_a_syntax_error_is_named_by_its_exception(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "tests/test_a.py": "def test_a(:\n    pass\n",
            "tests/test_b.py": "import no_such_module_either\n",
        }
    )
    result = GATES["pytest"].run(_ctx(repo))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None
    assert result.reason.startswith("collection error in tests/test_a.py: SyntaxError: ")
    assert result.reason.endswith(" (and 1 more)")


def test_usage_error_and_no_tests_are_errors(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"tests/test_ok.py": "def test_ok():\n    pass\n"})
    bad_args = GATES["pytest"].run(_ctx(repo, args=["--no-such-pytest-option"]))
    assert bad_args.status == GateStatus.ERROR
    assert bad_args.reason is not None and bad_args.reason.startswith("pytest usage error")

    empty = make_repo({"README": "no tests\n"}, name="empty")
    none = GATES["pytest"].run(_ctx(empty))
    assert none.status == GateStatus.ERROR
    assert none.reason is not None and none.reason.startswith("no tests were collected")


def test_timeout_and_garbage_interpreter(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    repo = make_repo(
        {"tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(30)\n"}
    )
    result = GATES["pytest"].run(_ctx(repo, timeout=1.5))
    assert result.status == GateStatus.ERROR
    assert result.reason == "pytest timed out after 1.5s"

    garbage = tmp_path / "garbage-python"
    garbage.write_text("#!/bin/sh\necho 'collected 5 items, all fine'\n")
    garbage.chmod(0o755)
    result = GATES["pytest"].run(_ctx(repo, python=str(garbage)))
    assert result.status == GateStatus.ERROR
    assert result.reason == "pytest wrote no JUnit XML report"


def test_targets_own_fail_under_fails_a_green_run(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": LIB,
            "tests/test_lib.py": "from pkg.lib import add\n\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
            "pytest.ini": "[pytest]\naddopts = --cov-fail-under=90\n",
        }
    )
    result = GATES["pytest"].run(_ctx(repo, cov=["pkg"]))
    assert result.status == GateStatus.FAILED
    assert result.reason is not None
    assert result.reason.startswith("Required test coverage of 90% not reached.")
    assert result.counts()["passed"] == 1


def test_a_conftest_import_error_is_not_a_missing_pytest(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "tests/conftest.py": "import no_such_dependency_xyz\n",
            "tests/test_a.py": "def test_a():\n    pass\n",
        }
    )
    result = GATES["pytest"].run(_ctx(repo))
    assert result.status == GateStatus.ERROR
    assert result.reason == (
        "collection error in tests/conftest.py: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    )


def test_a_named_coverage_config_that_is_missing_is_an_error(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"pkg/__init__.py": "", "tests/test_a.py": "def test_a():\n    pass\n"})
    result = GATES["pytest"].run(_ctx(repo, cov=["pkg"], config=".coveragerc"))
    assert result.status == GateStatus.ERROR
    assert result.reason == "coverage config not found: .coveragerc"
    assert result.command == []  # pytest never ran


def test_no_coverage_data_is_reported_in_coverages_words(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "tests/test_a.py": "def test_a():\n    pass\n"})
    result = GATES["pytest"].run(_ctx(repo, cov=["no_such_pkg"]))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None
    assert result.reason.startswith(
        "coverage wrote no JSON report: Module no_such_pkg was never imported"
    )


def _target_python(tmp_path: Path, planted: Path) -> str:
    """A target env, made offline: a bare venv that sees the harness env's packages (pytest,
    pytest-cov) through a .pth, and another copy of `pkg` through a second .pth, as an
    editable install of a different checkout would."""
    base = getattr(sys, "_base_executable", sys.executable)
    env = tmp_path / "target-env"
    subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True)
    [site] = list((env / "lib").glob("python3*/site-packages"))
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "harness_env.pth").write_text("".join(f"{d}\n" for d in ours))
    (site / "planted_checkout.pth").write_text(f"{planted}\n")
    return str(env / "bin" / "python")


WHERE_TEST = """\
import os

import pkg


def test_pkg_is_this_checkouts():
    print("pkg from", pkg.__file__)
    assert pkg.__file__.startswith(os.getcwd() + os.sep), pkg.__file__
    assert pkg.double(2) == 4
"""


def test_the_repository_given_is_measured_not_the_one_the_env_points_at(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    files = {
        "src/pkg/__init__.py": "def double(x):\n    return x * 2\n",
        "tests/test_where.py": WHERE_TEST,
    }
    repo_a = make_repo(files, name="a")
    repo_b = make_repo(files, name="b")
    python = _target_python(tmp_path, repo_a / "src")

    def gate(pythonpath: tuple[str, ...]) -> GateResult:
        cfg = PytestGateConfig(cov=["pkg"], paths=["tests"], args=["-rA"])
        return GATES["pytest"].run(
            GateContext(repo=repo_b, python=python, cfg=cfg, pythonpath=pythonpath)
        )

    # Without pythonpath the env's copy (repo A) is imported: the trap this guards against.
    trap = gate(())
    assert trap.status == GateStatus.FAILED
    assert str(repo_a / "src" / "pkg" / "__init__.py") in (trap.tests[0].message or "")
    assert trap.coverage is not None
    assert set(trap.coverage.per_file) == {str(repo_a / "src" / "pkg" / "__init__.py")}

    result = gate(("src",))
    assert result.status == GateStatus.PASSED, result.reason
    assert [(t.id, t.outcome) for t in result.tests] == [
        ("tests/test_where.py::test_pkg_is_this_checkouts", "passed")
    ]
    assert result.coverage is not None
    assert set(result.coverage.per_file) == {"src/pkg/__init__.py"}  # repo B's file
    assert result.coverage.percent == 100.0

    # Re-running chosen tests (the loop's flaky check) imports the same copy.
    policy = parse_policy(f'[gates]\npython = "{python}"\npythonpath = ["src"]\n')
    test_id = "tests/test_where.py::test_pkg_is_this_checkouts"
    assert run_tests(repo_b, policy, [test_id]) == {test_id: "passed"}
    assert run_tests(repo_b, policy, [test_id], block_network=True) == {test_id: "passed"}
    policy.gates.pythonpath = []
    assert run_tests(repo_b, policy, [test_id]) == {test_id: "failed"}
    assert git(repo_b, "status", "--porcelain", "--ignored") == ""


EVERY_OUTCOME = """\
import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup boom")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown boom")


def test_pass():
    assert True


def test_fail():
    assert 1 == 2


def test_setup_error(broken_setup):
    pass


def test_fail_and_teardown_error(broken_teardown):
    assert 1 == 2


def test_pass_and_teardown_error(broken_teardown):
    pass


def test_skip():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 1 == 2


@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpass_strict():
    assert True
"""

_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def _pytest_says(repo: Path) -> dict[str, int]:
    """The counts on the closing line of pytest's own run, by hand."""
    own = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    last = own.stdout.strip().splitlines()[-1]
    return {("errors" if k.startswith("error") else k): int(n) for n, k in _SUMMARY.findall(last)}


def test_counts_are_pytests_own(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"tests/test_every.py": EVERY_OUTCOME})
    result = GATES["pytest"].run(_ctx(repo))
    said = _pytest_says(repo)
    assert said == {"passed": 2, "failed": 3, "errors": 3, "skipped": 1, "xfailed": 1}
    assert result.counts() == {**dict.fromkeys(("xpassed",), 0), **said}
    assert result.status == GateStatus.FAILED
    assert result.reason == "3 failed, 3 error(s)"
    by_id = {t.id.split("::")[1]: (t.outcome, t.teardown_error) for t in result.tests}
    assert by_id == {
        "test_pass": ("passed", False),
        "test_fail": ("failed", False),
        "test_setup_error": ("error", False),
        "test_fail_and_teardown_error": ("failed", True),
        "test_pass_and_teardown_error": ("passed", True),
        "test_skip": ("skipped", False),
        "test_xfail": ("xfailed", False),
        "test_xpass_strict": ("failed", False),
    }
    # A re-run reports what a regression is judged on: a pass spoilt by its teardown is an error.
    ids = [f"tests/test_every.py::{name}" for name in by_id]
    assert run_tests(repo, parse_policy(""), ids) == {
        ids[0]: "passed",
        ids[1]: "failed",
        ids[2]: "error",
        ids[3]: "failed",
        ids[4]: "error",
        ids[5]: "skipped",
        ids[6]: "xfailed",
        ids[7]: "failed",
    }


XPASS = """\
import pytest


@pytest.mark.xfail(reason="thought broken")
def test_xpass():
    assert True


@pytest.mark.xfail(reason="is broken")
def test_xfail():
    assert 1 == 2


def test_pass():
    assert True
"""


def test_a_non_strict_xpass_is_xpassed_not_passed(make_repo: Callable[..., Path]) -> None:
    # JUnit writes a non-strict xpass as a plain pass; pytest's own report (the gate's plugin,
    # harness/gates/pytest_report.py) keeps xfailed and xpassed apart, as pytest counts them.
    repo = make_repo({"tests/test_x.py": XPASS})
    result = GATES["pytest"].run(_ctx(repo))
    said = _pytest_says(repo)
    assert said == {"passed": 1, "xfailed": 1, "xpassed": 1}
    assert result.status == GateStatus.PASSED
    assert result.counts() == {"failed": 0, "errors": 0, "skipped": 0, **said}
    assert {t.id.split("::")[1]: t.outcome for t in result.tests} == {
        "test_xpass": "xpassed",
        "test_xfail": "xfailed",
        "test_pass": "passed",
    }
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_a_session_cut_short_is_an_error_not_a_pass(make_repo: Callable[..., Path]) -> None:
    # A conftest hook that ends the process once JUnit is written: exit 0, a complete-looking
    # JUnit report, and no closing record in pytest's own report. The gate cannot judge that.
    conftest = "import os\n\n\ndef pytest_sessionfinish(session):\n    os._exit(0)\n"
    repo = make_repo(
        {"tests/conftest.py": conftest, "tests/test_x.py": "def test_a():\n    assert False\n"}
    )
    result = GATES["pytest"].run(_ctx(repo))
    assert result.exit_code == 0
    assert result.status == GateStatus.ERROR
    assert result.reason == "pytest ended without finishing its session (no closing report)"


def test_a_test_that_closes_the_reports_descriptor_loses_no_record(
    make_repo: Callable[..., Path],
) -> None:
    # The plugin keeps its report file open between records; a test that closes descriptors it
    # does not own (as a daemon does) must not cost the records after it, nor the closing one.
    closer = (
        "import os\n\n\n"
        "def test_a():\n    pass\n\n\n"
        "def test_closes_the_report():\n"
        "    for fd in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "        except OSError:\n"
        "            continue\n"
        f"        if target.endswith('{pytest_report.REPORT_FILE}'):\n"
        "            os.close(int(fd))\n\n\n"
        "def test_b():\n    assert False\n"
    )
    repo = make_repo({"tests/test_x.py": closer})
    result = GATES["pytest"].run(_ctx(repo))
    assert result.status == GateStatus.FAILED, result.reason
    assert {t.id.rsplit("::", 1)[-1]: t.outcome for t in result.tests} == {
        "test_a": "passed",
        "test_closes_the_report": "passed",
        "test_b": "failed",
    }
