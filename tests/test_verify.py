"""Per-patch verification on real repositories: which tests a patch selects, what refuses it,
and that nothing is left running or written once the verifier is closed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.gates.runner import run_gates
from harness.policy import Policy, parse_policy
from harness.verify import Verifier

from .conftest import git, other_gates_off, replace_in_file

MOD = """\
LIMIT = 3


def big(x: int) -> bool:
    return x > LIMIT


def small(x: int) -> bool:
    return x < LIMIT


def unused(x: int) -> int:
    return x + 1
"""

FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": MOD,
    "tests/__init__.py": "",
    "tests/test_big.py": "from pkg.mod import big\n\n\ndef test_big():\n"
    "    assert big(5) and not big(3)\n",
    "tests/test_small.py": "from pkg.mod import small\n\n\ndef test_small():\n"
    "    assert small(1)\n",
}

BIG = "tests/test_big.py::test_big"
SMALL = "tests/test_small.py::test_small"


def _policy(*gates: str) -> Policy:
    tables = {
        "pytest": '[gates.pytest]\npaths = ["tests"]\ncov = ["pkg"]\n',
        "mypy": '[gates.mypy]\npaths = ["pkg"]\n',
    }
    return parse_policy("".join(tables[g] for g in gates) + other_gates_off(*gates))


@contextmanager
def _verifier(repo: Path, *gates: str) -> Iterator[Verifier]:
    policy = _policy(*gates)
    baseline = run_gates(repo, policy, use_cache=False)
    with Verifier(repo, policy, list(gates), baseline) as verifier:
        verifier.start()
        yield verifier


def _running(pid: int) -> bool:
    """A process that exited but is not reaped yet (a zombie) runs nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def test_a_broken_covered_line_is_refused_by_the_tests_that_run_it(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "x > LIMIT", "x >= LIMIT")
        check = v.check(["pkg/mod.py"])
    assert not check.ok
    assert check.selection == "selected"
    assert check.tests_run == [BIG]
    assert check.reasons == [f"test {BIG} passed at the block's start and is failed now"]


def test_a_patch_to_a_line_no_test_runs_runs_none_and_passes(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "x + 1", "x + 2")
        check = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        replace_in_file(repo, "pkg/mod.py", "def small", "# a comment\ndef small")
        comment = v.check(["pkg/mod.py"])
    assert check.ok and check.selection == "none" and check.tests_run == []
    assert "no test runs the changed lines" in check.why
    assert comment.selection == "none" and "same syntax tree" in comment.why


def test_a_line_run_at_import_selects_the_tests_that_use_the_module(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "LIMIT = 3", "LIMIT = 0")
        check = v.check(["pkg/mod.py"])
    assert check.selection == "selected" and "run at import: 2 test(s)" in check.why
    # Both are selected; pytest stops at the first one that fails, and that one refuses it.
    assert check.tests_run == [BIG]
    assert check.reasons == [f"test {BIG} passed at the block's start and is failed now"]


def test_a_changed_signature_selects_the_tests_that_ran_its_body(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "def big(x: int)", "def big(x: int, k: int = 0)")
        plain = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        # A default that calls something runs at import and may change the module for all.
        replace_in_file(repo, "pkg/mod.py", "def big(x: int)", "def big(x: int, k: int = len([]))")
        calls = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        # A line a commit rewrote since the map was recorded is not mapped to one function.
        replace_in_file(repo, "pkg/mod.py", "def big(x: int)", "def big(x: int, k: int = 0)")
        git(repo, "commit", "-qam", "landed")
        replace_in_file(repo, "pkg/mod.py", "k: int = 0", "k: int = 1")
        rewritten = v.check(["pkg/mod.py"])
    assert plain.ok and plain.tests_run == [BIG] and "signature" in plain.why
    assert calls.ok and calls.tests_run == [BIG, SMALL] and "run at import" in calls.why
    assert rewritten.ok and rewritten.tests_run == [BIG, SMALL]


def test_only_signatures_changed_at_import_is_told_from_other_changes() -> None:
    from harness.verify import _signature_only

    old = (
        "import functools\n\nN = 1\n\n\ndef f(a, b=1):\n    return a\n\n\n"
        "class C:\n    def m(self, x=2):\n        return x\n"
    )
    same = {
        "a default": old.replace("b=1", "b=2"),
        "a method's default": old.replace("x=2", "x=(3, -1)"),
        "a body": old.replace("return a", "return b"),
    }
    other = {
        "a default that calls": old.replace("b=1", "b=print()"),
        "a constant": old.replace("N = 1", "N = 2"),
        "a name": old.replace("def f", "def g"),
        "a decorator": old.replace("def f", "@functools.cache\ndef f"),
        "a new statement": old.replace("\n\nclass C", "\nX = 1\n\nclass C"),
    }
    assert [k for k, new in same.items() if not _signature_only(old, new)] == []
    assert [k for k, new in other.items() if _signature_only(old, new)] == []


def test_a_patch_that_hangs_is_refused_within_its_budget(
    make_repo: Callable[..., Path],
) -> None:
    from harness.verify import TIMEOUT_FLOOR

    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        budget = v.budget([BIG])
        replace_in_file(repo, "pkg/mod.py", "    return x > LIMIT", "    while True:\n        pass")
        check = v.check(["pkg/mod.py"])
    # Scaled from what the start measured, far below the gate's own 600 s.
    assert TIMEOUT_FLOOR <= budget < 600
    assert not check.ok and check.tests_run == []
    assert check.reasons == [
        f"the 1 selected test(s) did not finish in {budget:g}s (5x their time at the block's "
        "start): the patch makes one hang or crawl"
    ]
    assert check.seconds < budget + 30


def test_a_flaky_first_failure_does_not_hide_a_real_one(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    trigger = tmp_path / "fail-once"
    flaky = (
        "from pathlib import Path\n\nfrom pkg.mod import big\n\n\ndef test_flaky():\n"
        f"    trigger = Path({str(trigger)!r})\n"
        "    if trigger.exists():\n        trigger.unlink()\n        raise AssertionError\n"
        "    assert big(9)\n"
    )
    repo = make_repo({**FILES, "tests/test_aflaky.py": flaky})
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "x > LIMIT", "x >= LIMIT")
        trigger.write_text("")
        check = v.check(["pkg/mod.py"])
    first = "tests/test_aflaky.py::test_flaky"
    assert not check.ok and check.flaky == [first]
    assert check.tests_run == [first, BIG]
    assert check.reasons == [f"test {BIG} passed at the block's start and is failed now"]


def test_lines_moved_by_a_landed_commit_still_map_to_their_tests(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest") as v:
        replace_in_file(
            repo,
            "pkg/mod.py",
            "LIMIT = 3\n",
            '"""Doc."""\n\nimport os\n\nLIMIT = 3\nHOME = os.sep\n',
        )
        git(repo, "commit", "-qam", "landed")
        v.refresh()
        replace_in_file(repo, "pkg/mod.py", "x < LIMIT", "x <= LIMIT")
        check = v.check(["pkg/mod.py"])
    assert check.ok and check.tests_run == [SMALL]


def test_conftest_new_file_and_config_fall_back_to_the_whole_suite(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({**FILES, "tests/conftest.py": "", "setup.cfg": "[metadata]\nname = x\n"})
    with _verifier(repo, "pytest") as v:
        (repo / "tests/conftest.py").write_text("import pkg.mod\n\npkg.mod.LIMIT = 9\n")
        conftest = v.check(["tests/conftest.py"])
        git(repo, "checkout", "-q", "--", ".")
        (repo / "pkg/extra.py").write_text("X = 1\n")
        new = v.check(["pkg/extra.py"])
        (repo / "pkg/extra.py").unlink()
        replace_in_file(repo, "setup.cfg", "name = x", "name = y")
        config = v.check(["setup.cfg"])
    assert conftest.selection == "all" and "conftest.py" in conftest.why
    assert conftest.tests_run == [BIG, SMALL]
    assert conftest.reasons == [f"test {BIG} passed at the block's start and is failed now"]
    assert new.selection == "all" and "new file" in new.why and new.ok
    assert config.selection == "all" and "configuration" in config.why and config.ok


def test_a_type_error_is_refused_by_the_mypy_daemon_which_leaves_nothing_behind(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "pytest", "mypy") as v:
        assert v.daemon is not None
        pid, tmp = v.daemon.pid(), v.daemon.tmp
        assert pid is not None and tmp.is_dir() and not tmp.is_relative_to(repo)
        replace_in_file(repo, "pkg/mod.py", "return x + 1", 'return "x"')
        check = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        clean = v.check(["pkg/mod.py"])
    assert not check.ok and check.mypy_judged and check.selection == "none"
    assert len(check.mypy_new) == 1 and "return-value" in check.mypy_new[0]
    assert check.reasons == [f"new mypy error: {check.mypy_new[0]}"]
    assert clean.ok and clean.mypy_new == []
    # Closed: the daemon is gone, its temp dir too, and the tree holds nothing new.
    assert not _running(pid)
    assert not tmp.exists()
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_a_daemon_that_dies_refuses_nothing_and_is_started_again(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    with _verifier(repo, "mypy") as v:
        assert v.daemon is not None
        pid = v.daemon.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as a crash would leave it (attrs: dmypy died on a patch)
        replace_in_file(repo, "pkg/mod.py", "return x + 1", "return x + 2")
        died = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        replace_in_file(repo, "pkg/mod.py", "return x + 1", 'return "x"')
        after = v.check(["pkg/mod.py"])
        new_pid = v.daemon.pid() if v.daemon is not None else None
    # Not the patch's fault: not refused, and said; the next patch is judged by a new daemon.
    assert died.ok and not died.mypy_judged and "mypy not judged" in died.why
    assert new_pid is not None and new_pid != pid
    assert not after.ok and after.mypy_judged and "return-value" in after.mypy_new[0]


def test_import_time_lines_are_told_from_function_bodies() -> None:
    from harness.verify import _module_level

    text = (
        "import os\n"  # 1
        "\n"
        "class A:\n"  # 3
        "    __slots__ = (\n"  # 4
        '        "b",\n'  # 5
        "    )\n"
        "\n"
        "    def f(self):\n"  # 8
        "        return 1\n"  # 9
        "\n"
        "X = 2\n"  # 11
    )
    assert _module_level(text, {1, 4, 5, 8, 9, 11}) == {1, 4, 8, 11}


STUB = "LIMIT: int\n\ndef big(x: int) -> bool: ...\ndef small(x: int) -> bool: ...\n"
READS_STUB = (
    "from pathlib import Path\n\n\ndef test_stub_names_big():\n"
    '    assert "def big" in Path("pkg/mod.pyi").read_text()\n'
)


def test_a_stub_runs_only_the_tests_that_read_it_and_mypy_still_judges_it(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            **FILES,
            "pkg/mod.pyi": STUB,
            "pkg/use.py": "from pkg.mod import big\n\n\ndef f() -> bool:\n    return big(1)\n",
            "tests/test_stub.py": READS_STUB,
        }
    )
    with _verifier(repo, "pytest", "mypy") as v:
        replace_in_file(repo, "pkg/mod.pyi", "LIMIT: int", "LIMIT: int  # the threshold")
        harmless = v.check(["pkg/mod.pyi"])
        git(repo, "checkout", "-q", "--", ".")
        replace_in_file(repo, "pkg/mod.pyi", "def big(x: int)", "def big(x: str)")
        worse = v.check(["pkg/mod.pyi"])
    # No test imports a stub: only the one that opens it runs, never the whole suite.
    assert harmless.ok and harmless.selection == "selected"
    assert harmless.tests_run == ["tests/test_stub.py::test_stub_names_big"]
    assert "type stub has no runtime effect" in harmless.why and harmless.pytest_runs == 1
    # A stub that makes mypy worse is refused by the daemon, as any patch is.
    assert not worse.ok and worse.mypy_judged
    assert [e for e in worse.mypy_new if "pkg/use.py" in e and "arg-type" in e] == worse.mypy_new
    assert worse.mypy_new and worse.reasons == [f"new mypy error: {worse.mypy_new[0]}"]


# Loaded with -p, this plugin imports the module before pytest-cov starts measuring (attrs is
# imported by hypothesis's plugin so): coverage has no record of the module's import-time lines.
EARLY = {
    "pkg/plug.py": "import pkg.mod  # noqa: F401\n",
    "pkg/other.py": "def other() -> int:\n    return 1\n",
    "tests/test_limit.py": "from pkg.mod import LIMIT\n\n\ndef test_limit():\n"
    "    assert LIMIT == 3\n",
    "tests/test_other.py": "from pkg.other import other\n\n\ndef test_other():\n"
    "    assert other() == 1\n",
}


def test_an_import_time_line_with_no_record_selects_the_tests_that_run_or_import_it(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({**FILES, **EARLY})
    policy = parse_policy(
        '[gates.pytest]\npaths = ["tests"]\ncov = ["pkg"]\nargs = ["-p", "pkg.plug"]\n'
        + other_gates_off("pytest")
    )
    baseline = run_gates(repo, policy, use_cache=False)
    with Verifier(repo, policy, ["pytest"], baseline) as v:
        v.start()
        replace_in_file(repo, "pkg/mod.py", "LIMIT = 3", "LIMIT = 0")
        check = v.check(["pkg/mod.py"])
        selection, tests, why = v.select(["pkg/mod.py"])
    assert "imported before measuring began" in why
    # test_big and test_small run code of it; test_limit only imports a constant from it.
    assert selection == "selected" and tests == [BIG, "tests/test_limit.py::test_limit", SMALL]
    assert "3 test(s) that run code of it (2) or whose files import it (3, in 3 file(s))" in why
    assert not check.ok and check.selection == "selected"
    assert check.reasons == [f"test {BIG} passed at the block's start and is failed now"]


def test_an_import_time_line_that_never_ran_selects_no_test(
    make_repo: Callable[..., Path],
) -> None:
    # six's shape: coverage saw the module imported, and its Python 2 side has no record
    # because it never ran. It is not "imported before measuring began".
    two = "import sys\n\nif sys.version_info[0] == 2:\n    WIDE = 1\nelse:\n    WIDE = 2\n"
    repo = make_repo({**FILES, "pkg/mod.py": two + MOD})
    with _verifier(repo, "pytest") as v:
        replace_in_file(repo, "pkg/mod.py", "    WIDE = 1", "    WIDE = 10")
        check = v.check(["pkg/mod.py"])
        git(repo, "checkout", "-q", "--", ".")
        replace_in_file(repo, "pkg/mod.py", "    WIDE = 2", "    WIDE = 20")
        ran = v.check(["pkg/mod.py"])
    assert check.selection == "none" and check.tests_run == [], check.why
    assert check.why == "pkg/mod.py: no test runs the changed lines"
    assert ran.selection == "selected" and "run at import: 2 test(s)" in ran.why


def test_who_imports_a_module_is_read_from_the_source() -> None:
    from harness.verify import _Names, _reexports

    names = _Names(
        "pkg.mod", "pkg", _reexports("from .mod import big as large\n", "pkg", "pkg.mod", "mod")
    )
    imports = {
        "import pkg.mod": True,
        "from pkg.mod import big": True,
        "from pkg import mod": True,
        "from pkg import large": True,
        "import pkg\npkg.large(1)": True,
        "from . import mod": False,  # tests/: a different package
        "import importlib\nimportlib.import_module(name)": True,  # cannot be told
        'import importlib\nimportlib.import_module("pkg.mod")': True,
        "from pkg import other": False,
        "import pkg\npkg.other()": False,
        'import importlib\nimportlib.import_module("pkg.other")': False,
    }
    assert {src: names.named_in(src, "tests/test_x.py") for src in imports} == imports
    assert names.named_in("from .mod import big", "pkg/helper.py")
    assert _reexports("from .mod import *\n", "pkg", "pkg.mod", "mod") is None


def test_a_future_import_that_changes_nothing_is_no_code_change() -> None:
    from harness.verify import _same_code

    old = "from __future__ import absolute_import, division, print_function\n\nX = 1\n"
    assert _same_code(old, "X = 1\n")
    assert not _same_code("from __future__ import annotations\n\nX = 1\n", "X = 1\n")


def test_statement_lines_widen_a_line_to_the_innermost_statement_that_owns_it() -> None:
    from harness.verify import _statement_lines

    text = (
        "import functools\n"  # 1
        "\n"
        "@functools.cache\n"  # 3
        "def f(a,\n"  # 4
        "      b):\n"  # 5
        "    x = [a,\n"  # 6
        "         b]\n"  # 7
        "    if x: return 1\n"  # 8
        "    return 2\n"  # 9
    )
    assert _statement_lines(text, {7}) == {6, 7}  # a statement over two lines
    assert _statement_lines(text, {5}) == {3, 4, 5}  # a header, from its decorator
    assert _statement_lines(text, {8}) == {8}  # a one-line compound statement
    assert _statement_lines(text, {2}) == {2}  # between statements
    assert _statement_lines("def (:\n", {1}) == {1}  # not Python: the lines as given
