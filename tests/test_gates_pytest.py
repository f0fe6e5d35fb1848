"""The pytest gate: outcomes by node id from JUnit XML, coverage from coverage's JSON report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import PytestGateConfig

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
    assert result.counts() == {"passed": 3, "failed": 1, "errors": 1, "skipped": 1}
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
    result = GATES["pytest"].run(_ctx(repo))
    assert result.status == GateStatus.ERROR
    assert result.exit_code == 2
    assert result.reason is not None
    assert result.reason.startswith("test run interrupted: tests/test_bad.py: ")


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
    assert result.reason is not None and "not installed" not in result.reason
    assert "no_such_dependency_xyz" in result.reason
