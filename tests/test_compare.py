"""compare() on before/after pairs from real tool runs on real git repos."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from harness.gates.compare import blocking, compare, make_rerunner
from harness.gates.models import Coverage, GateResult, GateRun, GateStatus
from harness.gates.runner import run_gates
from harness.policy import Policy, RegressionRules, parse_policy

from .conftest import git


def _policy(enable: list[str], extra: str = "") -> Policy:
    lines = []
    for gate in ("ruff", "mypy", "pytest", "bandit", "imports", "secrets"):
        lines.append(f"[gates.{gate}]\nenabled = {'true' if gate in enable else 'false'}")
        if gate in ("ruff", "mypy", "bandit"):
            lines.append('paths = ["pkg"]')
        if gate == "pytest":
            lines.append('cov = ["pkg"]')
        if gate == "imports":
            lines.append('config = "linter.ini"')
    return parse_policy("\n".join(lines) + "\n" + extra)


def _commit(repo: Path, files: dict[str, str], message: str = "change") -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def _run(repo: Path, policy: Policy) -> GateRun:
    return run_gates(repo, policy, use_cache=False)


LINT_BEFORE = """\
import os
import sys


def f(a):
    print(a == None)
    print(a == None)
    return sys.argv
"""

# Shifted down by a docstring and a comment; `os` fixed, `json` added; one more identical E711.
LINT_AFTER = '''\
"""Module."""

# a comment that shifts every line
import json
import sys


def f(a):
    print(a == None)
    print(a == None)
    print(a == None)
    return sys.argv
'''


def test_moved_fixed_and_new_findings(make_repo: Callable[..., Path]) -> None:
    ruff_cfg = '[tool.ruff.lint]\nselect = ["E", "F"]\n'
    repo = make_repo({"pyproject.toml": ruff_cfg, "pkg/__init__.py": "", "pkg/mod.py": LINT_BEFORE})
    policy = _policy(["ruff"])
    before = _run(repo, policy)
    _commit(repo, {"pkg/mod.py": LINT_AFTER})
    after = _run(repo, policy)

    # Fewer is not better here: one fixed, two new (json, third E711), moved ones ignored.
    assert len(before.results["ruff"].findings) == 3
    assert len(after.results["ruff"].findings) == 4
    regs = compare(before, after, policy.regression)
    assert sorted((r.gate, r.rule, r.message.split(": ", 1)[1]) for r in regs) == [
        ("ruff", "new_finding", "E711 Comparison to `None` should be `cond is None`"),
        ("ruff", "new_finding", "F401 `json` imported but unused"),
    ]
    e711 = next(r for r in regs if "E711" in r.message)
    assert e711.message.startswith("pkg/mod.py:11:")  # the last of the identical three

    off = RegressionRules(new_findings=False)
    assert compare(before, after, off) == []


def test_pure_line_shift_is_no_regression_for_ruff_mypy_bandit(
    make_repo: Callable[..., Path],
) -> None:
    src = (
        "import subprocess\n\n\ndef run(cmd: str) -> int:\n"
        "    assert cmd\n    return subprocess.call(cmd, shell=True)\n\n\n"
        "def bad() -> str:\n    return 1\n"
    )
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": src})
    policy = _policy(["ruff", "mypy", "bandit"])
    before = _run(repo, policy)
    _commit(repo, {"pkg/mod.py": '"""Shifted."""\n\n\n' + src})
    after = _run(repo, policy)
    assert before.results["mypy"].status == GateStatus.FAILED
    assert len(before.results["bandit"].findings) == 3
    assert compare(before, after, policy.regression) == []

    _commit(
        repo,
        {
            "pkg/extra.py": "import pickle\n\n\ndef load(b: bytes) -> object:\n"
            "    return pickle.loads(b)\n"
        },
    )
    later = _run(repo, policy)
    regs = compare(after, later, policy.regression)
    assert {(r.gate, r.message.split(": ", 1)[1].split()[0]) for r in regs} == {
        ("bandit", "B403"),
        ("bandit", "B301"),
    }


LIB = "def add(a, b):\n    return a + b\n"
TESTS = "from pkg.lib import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"


def test_broken_test_and_gate_error(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/lib.py": LIB, "tests/test_lib.py": TESTS})
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    assert before.results["pytest"].status == GateStatus.PASSED

    _commit(repo, {"pkg/lib.py": "def add(a, b):\n    return a - b\n"})
    after = _run(repo, policy)
    regs = compare(before, after, policy.regression, rerun=make_rerunner(repo, policy))
    assert [(r.rule, r.subject, r.flaky) for r in regs] == [
        ("test_broken", "tests/test_lib.py::test_add", False)
    ]
    assert blocking(regs) == regs

    _commit(repo, {"pkg/lib.py": "def add(a, b:\n"})
    broken = _run(repo, policy)
    assert broken.results["pytest"].status == GateStatus.ERROR
    regs = compare(before, broken, policy.regression)
    assert [(r.gate, r.rule) for r in regs] == [("pytest", "gate_error")]
    # Already erroring before: nothing to compare against, no verdict either way.
    assert compare(broken, broken, policy.regression) == []


def test_flaky_test_is_reported_not_forgiven(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    # Passes on its 1st run (before), fails on its 2nd (after), passes on the re-run.
    flaky = (
        "from pathlib import Path\n\n\n"
        "def test_sometimes():\n"
        f"    c = Path({str(counter)!r})\n"
        "    n = int(c.read_text()) + 1\n"
        "    c.write_text(str(n))\n"
        "    assert n != 2\n"
    )
    repo = make_repo({"pkg/__init__.py": "", "tests/test_flaky.py": flaky})
    policy = _policy(["pytest"], "[regression]\nrerun_failed = 2\n")
    before = _run(repo, policy)
    after = _run(repo, policy)
    assert after.results["pytest"].status == GateStatus.FAILED
    regs = compare(before, after, policy.regression, rerun=make_rerunner(repo, policy))
    assert [(r.rule, r.subject, r.flaky) for r in regs] == [
        ("test_broken", "tests/test_flaky.py::test_sometimes", True)
    ]
    assert "flaky" in regs[0].message
    assert blocking(regs) == []
    assert counter.read_text() == "3"  # one re-run was enough

    # Without a way to re-run, the failure counts.
    assert [r.flaky for r in compare(before, after, policy.regression)] == [False]


SKIP_BEFORE = """\
import pytest

from pkg.lib import add


def test_add():
    assert add(1, 2) == 3


def test_sub():
    assert add(2, -1) == 1


def test_zero():
    assert add(0, 0) == 0


@pytest.mark.skip(reason="known")
def test_already_skipped():
    assert False


def test_already_failing():
    assert add(1, 1) == 3
"""

SKIP_AFTER = """\
import pytest

from pkg.lib import add


@pytest.mark.skip(reason="later")
def test_add():
    assert add(1, 2) == 3


def test_sub():
    pytest.skip("not today")


def test_zero():
    assert add(0, 0) == 0


@pytest.mark.skip(reason="known")
def test_already_skipped():
    assert False


@pytest.mark.skip(reason="hide it")
def test_already_failing():
    assert add(1, 1) == 3
"""


def test_skipped_and_missing_tests_but_new_tests_never(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": LIB,
            "tests/test_lib.py": SKIP_BEFORE,
            "tests/test_gone.py": "def test_gone():\n    assert True\n",
        }
    )
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    git(repo, "rm", "-q", "tests/test_gone.py")
    new_tests = (
        "import pytest\n\n\ndef test_new_fails():\n    assert False\n\n\n"
        "def test_new_skips():\n    pytest.skip('new')\n"
    )
    _commit(repo, {"tests/test_lib.py": SKIP_AFTER, "tests/test_new.py": new_tests})
    after = _run(repo, policy)
    outcomes = {t.id: t.outcome for t in after.results["pytest"].tests}
    assert outcomes["tests/test_lib.py::test_add"] == "skipped"
    assert outcomes["tests/test_new.py::test_new_fails"] == "failed"
    assert "tests/test_gone.py::test_gone" not in outcomes

    regs = compare(before, after, policy.regression, rerun=make_rerunner(repo, policy))
    assert [(r.rule, r.subject, r.flaky) for r in regs] == [
        ("test_skipped", "tests/test_lib.py::test_add", False),
        ("test_skipped", "tests/test_lib.py::test_sub", False),
        ("test_missing", "tests/test_gone.py::test_gone", False),
    ]
    assert "later" in regs[0].message and "not today" in regs[1].message
    assert blocking(regs) == regs
    # The other way round, every test is either new or passed before and passes now.
    assert compare(after, before, policy.regression) == []


def test_a_skip_that_goes_away_on_a_re_run_is_flaky(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    test = (
        "from pathlib import Path\n\nimport pytest\n\n\n"
        "def test_resource():\n"
        f"    c = Path({str(counter)!r})\n"
        "    n = int(c.read_text()) + 1\n"
        "    c.write_text(str(n))\n"
        "    if n == 2:\n"
        "        pytest.skip('resource busy')\n"
    )
    repo = make_repo({"pkg/__init__.py": "", "tests/test_res.py": test})
    policy = _policy(["pytest"])
    before, after = _run(repo, policy), _run(repo, policy)
    regs = compare(before, after, policy.regression, rerun=make_rerunner(repo, policy))
    assert [(r.rule, r.flaky) for r in regs] == [("test_skipped", True)]
    assert blocking(regs) == []


def test_rerun_count_comes_from_the_policy(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/lib.py": LIB, "tests/test_lib.py": TESTS})
    policy = _policy(["pytest"], "[regression]\nrerun_failed = 3\n")
    before = _run(repo, policy)
    _commit(repo, {"pkg/lib.py": "def add(a, b):\n    return 0\n"})
    after = _run(repo, policy)
    calls: list[list[str]] = []
    real = make_rerunner(repo, policy)

    def counting(ids: list[str]) -> dict[str, str]:
        calls.append(ids)
        return real(ids)

    regs = compare(before, after, policy.regression, rerun=counting)
    assert calls == [["tests/test_lib.py::test_add"]] * 3
    assert [r.flaky for r in regs] == [False]


def test_coverage_drop_and_tolerance(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/lib.py": LIB, "tests/test_lib.py": TESTS})
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    assert before.results["pytest"].coverage is not None
    assert before.results["pytest"].coverage.percent == 100.0
    _commit(repo, {"pkg/lib.py": LIB + "\n\ndef untested(x):\n    return x * 2\n"})
    after = _run(repo, policy)
    assert after.results["pytest"].coverage is not None
    assert after.results["pytest"].coverage.percent == 75.0

    regs = compare(before, after, RegressionRules(coverage_tolerance=0.0))
    assert [(r.rule, r.subject) for r in regs] == [("coverage_drop", "coverage")]
    assert "100.00% -> 75.00%" in regs[0].message
    assert compare(before, after, RegressionRules(coverage_tolerance=25.0)) == []
    assert compare(after, before, RegressionRules()) == []  # a rise is never a regression


LINTER = """\
[importlinter]
root_package = pkg

[importlinter:contract:layers]
name = api above core
type = layers
layers =
    pkg.api
    pkg.core
"""


def test_newly_broken_contract_and_new_secret(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/api.py": "import pkg.core\n",
            "pkg/core.py": "X = 1\n",
            "linter.ini": LINTER,
        }
    )
    policy = _policy(["imports", "secrets"])
    before = _run(repo, policy)
    assert before.ok
    _commit(
        repo,
        {"pkg/core.py": "import pkg.api\n\nX = 1\n", "pkg/conf.py": 'k = "AKIAIOSFODNN7EXAMPLE"\n'},
    )
    after = _run(repo, policy)
    regs = compare(before, after, policy.regression)
    assert sorted((r.gate, r.rule, r.subject if r.rule != "new_finding" else "") for r in regs) == [
        ("imports", "contract_broken", "api above core"),
        ("secrets", "new_finding", ""),
    ]


def test_finding_on_an_edited_line_is_not_new(make_repo: Callable[..., Path]) -> None:
    # Removing `Optional` rewrites the line that carries the two UP035 findings; they are
    # the same findings, and the partial fix must not count as a regression.
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/m.py": "from typing import Dict, List, Optional\n\n\n"
            "def f(a: Dict[str, int]) -> List[int]:\n    return list(a.values())\n",
        }
    )
    policy = _policy(["ruff"])
    policy.gates.ruff.args = ["--select", "UP035,F401"]
    before = _run(repo, policy)
    assert len(before.results["ruff"].findings) == 3
    _commit(repo, {"pkg/m.py": (repo / "pkg/m.py").read_text().replace(", Optional", "")})
    after = _run(repo, policy)
    assert len(after.results["ruff"].findings) == 2
    assert compare(before, after, RegressionRules()) == []


def test_deleting_covered_code_is_not_a_coverage_drop(make_repo: Callable[..., Path]) -> None:
    code = "import os\nimport sys\n\n\ndef f(x):\n    if x:\n        return 1\n    return 2\n"
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/m.py": code,
            "tests/test_m.py": "from pkg.m import f\n\n\ndef test_f():\n    assert f(1) == 1\n",
        }
    )
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    _commit(repo, {"pkg/m.py": code.replace("import os\nimport sys\n", "")})
    shrunk = _run(repo, policy)
    before_cov, shrunk_cov = before.results["pytest"].coverage, shrunk.results["pytest"].coverage
    assert before_cov is not None and shrunk_cov is not None
    assert shrunk_cov.percent < before_cov.percent
    assert compare(before, shrunk, RegressionRules()) == []
    _commit(repo, {"pkg/m.py": code + "\n\ndef g():\n    return 3\n"})
    grown = _run(repo, policy)
    assert [r.rule for r in compare(before, grown, RegressionRules())] == ["coverage_drop"]


SWAP_BEFORE = (
    "def long_one() -> str:\n"
    '    return "' + "a" * 100 + '"\n'
    "\n\n"
    "def check(x: int) -> int:\n"
    "    assert x > 0\n"
    "    return x\n"
    "\n\n"
    "def other(x: int) -> int:\n"
    "    if x > 100:\n"
    "        return 1\n"
    "    return 2\n"
)


def test_a_fixed_finding_does_not_hide_a_new_one_elsewhere(
    make_repo: Callable[..., Path],
) -> None:
    # One long line and one assert fixed, one long line and one assert added further down:
    # after number normalisation the messages are alike, but these are new findings.
    repo = make_repo({"pkg/__init__.py": "", "pkg/core.py": SWAP_BEFORE})
    policy = _policy(["ruff", "bandit"])
    policy.gates.ruff.args = ["--select", "E501"]
    before = _run(repo, policy)
    after_text = (
        SWAP_BEFORE.replace('"' + "a" * 100 + '"', '"a" * 100')
        .replace("    assert x > 0\n", "    if x <= 0:\n        raise ValueError(x)\n")
        .replace(
            "    if x > 100:\n",
            '    assert x != 5\n    y = "' + "b" * 105 + '"\n    if x > 100 and y:\n',
        )
    )
    _commit(repo, {"pkg/core.py": after_text})
    after = _run(repo, policy)
    assert [f.code for f in before.results["ruff"].findings] == ["E501"]
    assert [f.code for f in after.results["ruff"].findings] == ["E501"]
    assert [f.code for f in after.results["bandit"].findings] == ["B101"]
    got = sorted((r.gate, r.rule) for r in compare(before, after, RegressionRules()))
    assert got == [("bandit", "new_finding"), ("ruff", "new_finding")]


def test_an_import_line_sorted_elsewhere_and_trimmed_keeps_its_findings(
    make_repo: Callable[..., Path],
) -> None:
    # Sorting moved the typing import four lines down and dropped Optional from it: the
    # UP035 findings that name `typing.Dict` and `typing.List` are the same findings.
    body = "\n\ndef f(a: Dict[str, int]) -> List[int]:\n    return [os.sep, sys.argv, json, re]\n"
    before_text = (
        "from typing import Dict, List, Optional\nimport os\nimport sys\nimport json\nimport re\n"
    )
    after_text = "import json\nimport os\nimport re\nimport sys\nfrom typing import Dict, List\n"
    repo = make_repo({"pkg/__init__.py": "", "pkg/m.py": before_text + body})
    policy = _policy(["ruff"])
    policy.gates.ruff.args = ["--select", "UP035"]
    before = _run(repo, policy)
    _commit(repo, {"pkg/m.py": after_text + body})
    after = _run(repo, policy)
    assert [f.line for f in before.results["ruff"].findings] == [1, 1]
    assert [f.line for f in after.results["ruff"].findings] == [5, 5]
    assert compare(before, after, RegressionRules()) == []


# python-dateutil 2.8.2: several `open()` calls outside `with` (SIM115); one also carries a
# redundant mode (UP015). ruff's UP015 fix rewrites that line, which keeps its SIM115, and
# after the fix its text is the same as the other SIM115 lines.
DATEUTIL = """\
import os


def read_a(path):
    fp = open(path)
    return fp.read()


def read_b(path):
    fp = open(path, "r")
    return fp.read()


def read_c(path):
    fp = open(path)
    return fp.read()


def read_d(path):
    fp = open(path)
    return fp.read()
"""


def _ruff_fix(repo: Path, select: str) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    subprocess.run(
        [str(ruff), "check", "--select", select, "--fix", "--no-cache", "pkg"],
        cwd=repo,
        capture_output=True,
        check=False,
    )


# Lines added above everything, and lines added between the unchanged `import os` (F401) and
# the open() calls, so that no finding left untouched pins the shift down.
SHIFTS = {
    "none": ("", ""),
    "above": ('"""Readers."""\n\nimport sys\n\nX = sys.argv\n\n', ""),
    "between": ("", "\nY = 1\nZ = 2\n"),
}


@pytest.mark.parametrize("where", sorted(SHIFTS))
def test_a_fix_that_rewrites_a_findings_line_keeps_that_finding(
    make_repo: Callable[..., Path], where: str
) -> None:
    top, between = SHIFTS[where]
    repo = make_repo({"pkg/__init__.py": "", "pkg/du.py": DATEUTIL})
    policy = _policy(["ruff"])
    policy.gates.ruff.args = ["--select", "SIM115,UP015,F401"]
    before = _run(repo, policy)
    assert sorted(f.code for f in before.results["ruff"].findings) == [
        "F401",
        *["SIM115"] * 4,
        "UP015",
    ]
    _ruff_fix(repo, "UP015")  # the real fix, then lines shifted above it in the same commit
    fixed = (repo / "pkg/du.py").read_text().replace("import os\n", "import os\n" + between)
    shift = top
    assert 'open(path, "r")' not in fixed
    _commit(repo, {"pkg/du.py": shift + fixed})
    after = _run(repo, policy)
    assert sorted(f.code for f in after.results["ruff"].findings) == ["F401", *["SIM115"] * 4]
    assert compare(before, after, RegressionRules()) == []

    # A fifth unmanaged open() further down is new, even though its line reads like the others.
    _commit(
        repo,
        {
            "pkg/du.py": shift + fixed + "\n\ndef read_e(path):\n    fp = open(path)\n"
            "    return fp.read()\n"
        },
    )
    more = _run(repo, policy)
    regs = compare(before, more, RegressionRules())
    assert [r.message.split(": ", 1)[1] for r in regs] == [
        "SIM115 Use a context manager for opening files"
    ]
    assert regs[0].message.startswith(f"pkg/du.py:{(top + between).count(chr(10)) + 25}:")


COVERED = """\
import os


def f(x):
    # pick one
    if x:
        return 1
    return 2


def g():
    return os.sep
"""


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("covered line deleted", lambda t: t.replace("import os\n", "").replace("os.sep", "'/'")),
        (
            "covered line moved",
            lambda t: t.replace("def g():\n    return os.sep\n", "").replace(
                "import os\n\n\n", "import os\n\n\ndef g():\n    return os.sep\n\n\n"
            ),
        ),
        ("comment changed", lambda t: t.replace("# pick one", "# pick the first of two")),
    ],
)
@pytest.mark.parametrize("branch", [False, True])
def test_harmless_edits_are_no_coverage_drop(
    make_repo: Callable[..., Path], what: str, edit: Callable[[str], str], branch: bool
) -> None:
    # f(0) is never called: one line (and, with branches, one branch) is uncovered throughout.
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/m.py": COVERED,
            "tests/test_m.py": "from pkg.m import f\n\n\ndef test_f():\n    assert f(1) == 1\n",
            ".coveragerc": f"[run]\nbranch = {branch}\n",
        }
    )
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    _commit(repo, {"pkg/m.py": edit(COVERED)})
    after = _run(repo, policy)
    was, now = before.results["pytest"].coverage, after.results["pytest"].coverage
    assert was is not None and now is not None
    assert (was.num_branches > 0) is branch
    assert now.uncovered == was.uncovered
    if what == "covered line deleted":
        assert now.percent < was.percent
    else:
        assert (now.covered_lines, now.num_statements) == (was.covered_lines, was.num_statements)
    assert compare(before, after, RegressionRules()) == []

    # One line more left uncovered is a drop, with lines or branches counted.
    _commit(repo, {"pkg/m.py": edit(COVERED) + "\n\ndef h():\n    return 3\n"})
    worse = _run(repo, policy)
    regs = compare(before, worse, RegressionRules())
    assert [r.rule for r in regs] == ["coverage_drop"]
    assert f"uncovered lines and branches {was.uncovered} -> {was.uncovered + 1}" in regs[0].message


def _cov_run(cov: Coverage) -> GateRun:
    result = GateResult(gate="pytest", status=GateStatus.PASSED, tool="pytest", coverage=cov)
    return GateRun(tree="t", results={"pytest": result})


def test_coverage_drop_is_judged_on_counts_not_on_rounded_percents() -> None:
    # The real case: 7052 of 7811 statements covered before and after, but the percent floats
    # differ in their last digits (a cached, re-rounded or branch-shuffled value).
    was = Coverage(percent=90.28293432339009, covered_lines=7052, num_statements=7811)
    same = Coverage(percent=90.2829343233900, covered_lines=7052, num_statements=7811)
    assert compare(_cov_run(was), _cov_run(same), RegressionRules()) == []

    # Covered code deleted: the percent falls, nothing more is uncovered.
    shrunk = Coverage(percent=90.27, covered_lines=7042, num_statements=7801)
    assert compare(_cov_run(was), _cov_run(shrunk), RegressionRules()) == []

    # One statement newly uncovered: 7052/7812 is 0.0116 points lower.
    one_more = Coverage(percent=90.27, covered_lines=7052, num_statements=7812)
    assert [r.rule for r in compare(_cov_run(was), _cov_run(one_more), RegressionRules())] == [
        "coverage_drop"
    ]
    drop = float(Fraction(705200, 7811) - Fraction(705200, 7812))
    assert (
        compare(_cov_run(was), _cov_run(one_more), RegressionRules(coverage_tolerance=0.02)) == []
    )
    assert compare(_cov_run(was), _cov_run(one_more), RegressionRules(coverage_tolerance=0.01))
    assert 0.01 < drop < 0.02

    # The boundary is exact: a drop of exactly the tolerance is allowed.
    half = Coverage(percent=50.0, covered_lines=1, num_statements=2)
    quarter = Coverage(percent=25.0, covered_lines=1, num_statements=4)
    assert compare(_cov_run(half), _cov_run(quarter), RegressionRules(coverage_tolerance=25)) == []
    assert compare(_cov_run(half), _cov_run(quarter), RegressionRules(coverage_tolerance=24.999))

    # More uncovered, but more covered too: the share rose, so no drop.
    grown = Coverage(percent=60.0, covered_lines=6, num_statements=10)
    assert compare(_cov_run(half), _cov_run(grown), RegressionRules()) == []

    # Branches count like coverage counts them: (lines + branches covered) / (both in total).
    lines_only = Coverage(percent=80.0, covered_lines=8, num_statements=10)
    partial = Coverage(
        percent=75.0,
        covered_lines=8,
        num_statements=10,
        num_branches=2,
        covered_branches=1,
        missing_branches=1,
    )
    assert partial.exact == 75
    regs = compare(_cov_run(lines_only), _cov_run(partial), RegressionRules())
    assert [r.message for r in regs] == [
        "coverage fell 80.00% -> 75.00% (-5 points, tolerance 0; uncovered lines and branches "
        "2 -> 3)"
    ]


XFAIL_BEFORE = """\
import pytest


@pytest.fixture
def res():
    yield


def test_marked(res):
    assert True


def test_teardown(res):
    assert True


def test_strict(res):
    assert True
"""


def test_xfail_and_teardown_error_after_a_pass_are_regressions(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"pkg/__init__.py": "", "tests/test_x.py": XFAIL_BEFORE})
    policy = _policy(["pytest"])
    before = _run(repo, policy)
    after_text = (
        XFAIL_BEFORE.replace("    yield\n", "    yield\n    raise RuntimeError('late')\n")
        .replace("def res():", "def res_ok():\n    yield\n\n\n@pytest.fixture\ndef res():")
        .replace(
            "def test_marked(res):",
            "@pytest.mark.xfail\ndef test_marked(res_ok):\n    1 / 0\n\n\ndef _x(res):",
        )
        .replace(
            "def test_strict(res):", "@pytest.mark.xfail(strict=True)\ndef test_strict(res_ok):"
        )
    )
    _commit(repo, {"tests/test_x.py": after_text})
    after = _run(repo, policy)
    got = {
        t.id.split("::")[1]: (t.outcome, t.teardown_error) for t in after.results["pytest"].tests
    }
    assert got == {
        "test_marked": ("xfailed", False),
        "test_teardown": ("passed", True),
        "test_strict": ("failed", False),
    }
    regs = compare(before, after, policy.regression, rerun=make_rerunner(repo, policy))
    assert [(r.rule, r.subject.split("::")[1], r.flaky) for r in regs] == [
        ("test_skipped", "test_marked", False),
        ("test_broken", "test_strict", False),
        ("test_broken", "test_teardown", False),
    ]
    assert "errored in teardown" in regs[2].message
