"""Per-patch verification: before a patch is committed, run the tests that exercise the lines it
changes and let the mypy daemon re-check it, so a harmful patch is refused alone, at landing.

Test selection comes from coverage contexts recorded once at the block's start (pytest-cov's
`--cov-context=test`, read through coverage's public `CoverageData` API in the target's own
interpreter). A changed line is widened to its whole statement (coverage records only some
lines of a multi-line one) and mapped back to the start commit through the diff of what landed
since; the tests that ran it are selected. A line that runs at import time (a constant, a def
line, a decorator) reaches anything that uses the module, so it selects every test that ran code
of that file; but when all the module changed at import is function signatures (a default, an
annotation, none of them calling anything), a changed def line reaches only the calls of its
function: the tests that ran its body. Import-time lines reach, besides the tests that run code
of the module (pytest-testmon's rule for module-level code), the tests whose files import it by
name, read from their source (`_importers`); that is also the rule when coverage has no record
of them, because the module was imported before measuring began (attrs: hypothesis's pytest
plugin imports it), and only when neither finds a test does the whole suite run. In a module
whose import coverage did record, an import-time line with no record never ran (the Python 2
side of `if PY3:`) and selects no test. A type stub
(.pyi) has no runtime effect: it runs only the tests that read stubs as data (non-Python test
files a plugin collects, such as pytest-mypy-plugins' YAML; test modules or conftest.py files
that name a type checker or a .pyi file), while ruff and mypy judge the stub itself. A
`from __future__` import of a feature every Python 3 has changes no code. What the map cannot
answer (a new, deleted or unmeasured file, a test file, a conftest.py, configuration) runs the
whole suite. A test that passed at the
block's start and fails, errors or is skipped now is a reason to refuse, once re-runs show it is
not flaky (the same rule as the full gates' compare). pytest stops at the first failure and
only that one is re-run; the tests after it run only if it was flaky. A run that takes
TIMEOUT_FACTOR times what the start measured for its tests is a hang, and refuses the patch.

When the block's pytest gate measures coverage, the run of the selected tests also measures
the line coverage of the changed Python files, and of nothing else (a coverage config of its own
that includes only them: the tracer stops at no other file). The patch is refused when a
statement the selected tests ran at the block's start (the map) and before the patch (HEAD)
does not run now (an unchanged line, mapped through the patch's diffs), or when a changed hunk
has more statements they do not run than it had: "coverage: src/x.py:120 was covered by its
tests at the block's start and is not now". The map says only whether a loss is possible (a
changed statement not run, or an unchanged one not run that the selected tests ran at the
block's start); a possible loss is confirmed by one more run of the same tests with HEAD's text
of the changed files written back (`_coverage_at_head`), because a line a test ran at the
block's start may have run only thanks to a test not selected now. Lines only, not arcs (branch
coverage is the full gates'). Where it cannot judge (the whole suite ran, no map, no data for the
file, a failing or flaky run, a file that is not Python) it judges nothing and says "coverage
not judged"; the full gates judge.

Each pytest run of a check loads the harness's pytest plugin (harness/gates/pytest_report.py)
and is kept in `Verifier.runs`: in `harness run` the guard's behaviour layer judges those runs
by test id instead of running the tests again (harness/guard/behaviour.py,
`check_with_verifier`), so a patch costs one pytest run, counted in `PatchCheck.pytest_runs`.

Known blind spots, which the full gates at the iteration's end still catch: code that runs once
for many tests (a session or module fixture, a cache) is recorded only for the first of them;
a test that reads a signature without calling its function (`inspect.signature`, a help text
built from defaults) is not selected for a changed default; a test that reaches a module's
import-time code only through another source module (a constant another module reads when it
is imported) and runs none of its code is not selected; a test that runs a type checker
through a helper that does not name one is not selected for a stub.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal

from pydantic import BaseModel, Field

from harness.errors import GateError
from harness.gates import mypy as mypy_gate
from harness.gates import pytest as pytest_gate
from harness.gates import pytest_report
from harness.gates.common import (
    BASE_ENV,
    HARNESS_PYTHON,
    GateContext,
    config_path,
    one_line,
    proc_failure,
    rel_path,
    repo_pythonpath,
    run_tool,
    same_interpreter,
)
from harness.gates.compare import new_findings
from harness.gates.models import Finding, GateRun, GateStatus, TestCase
from harness.gates.pytest_report import SuiteReport
from harness.gates.runner import context_for, run_tests
from harness.guard.globs import match_any
from harness.policy import Policy
from harness.proc import ProcResult, run

# Files that change how every test runs or is collected: no line map can say which tests they
# reach.
CONFIG_FILES = frozenset({"pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini", ".coveragerc"})

_BAD = ("failed", "error", "skipped")
# Seconds the mypy daemon gets to exit once told to stop.
STOP_WAIT = 10.0


_CONFIRM_BATCH = 5  # failing tests re-run together while looking for one that is not flaky

# A patch's tests get this many times what they took at the block's start (pytest's start-up
# included) before the patch counts as one that makes a test hang: a mutant that loops forever
# would otherwise cost the pytest gate's whole timeout. Never less than the floor (a load spike
# must not refuse a harmless patch), never more than the gate's own timeout.
TIMEOUT_FACTOR = 5.0
TIMEOUT_FLOOR = 10.0


class PatchCheck(BaseModel):
    """The verdict on one patch written to the worktree, before it is committed."""

    ok: bool = Field(description="nothing that passed at the block's start regressed")
    reasons: list[str] = Field(
        default_factory=list, description="why not ok, one line each, for the model and the record"
    )
    tests_run: list[str] = Field(default_factory=list, description="pytest node ids run")
    selection: Literal["selected", "all", "none"] = Field(
        description="selected: the tests that ran the changed lines; all: the whole suite; "
        "none: no test runs the changed code (or pytest is not judged)"
    )
    why: str = Field(description="why this selection, and whether mypy judged")
    flaky: list[str] = Field(
        default_factory=list, description="tests that failed and then passed on a re-run"
    )
    mypy_new: list[str] = Field(
        default_factory=list,
        description="new mypy errors (in any file: a changed signature "
        "breaks its callers), when the block's gates include mypy",
    )
    mypy_judged: bool = False
    coverage_judged: bool = Field(
        False,
        description="the changed files' line coverage under the selected tests was compared "
        "with HEAD's (see `Verifier._judge_coverage`)",
    )
    coverage_lost: list[str] = Field(
        default_factory=list,
        description="path:lines that the selected tests covered before the patch and do not now",
    )
    pytest_runs: int = Field(
        0, description="pytest processes this check started, re-runs of failing tests included"
    )
    seconds: float = 0.0


@dataclass
class CoverageMap:
    """Which tests ran each line, as of the commit the map was recorded at."""

    commit: str
    # repo-relative path -> line -> test node ids; "" is code that ran outside any test (import)
    lines: dict[str, dict[int, frozenset[str]]] = field(default_factory=dict)

    def tests_of_file(self, path: str) -> set[str]:
        out: set[str] = set()
        for tests in self.lines.get(path, {}).values():
            out |= tests
        out.discard("")
        return out


@dataclass
class TestRun:
    """One pytest process a check ran over the patched tree, as pytest itself reported it (the
    plugin `harness_pytest_report`): the behaviour layer judges these same runs, so a patch
    costs one pytest run, not one for the verifier and another for the layer."""

    __test__ = False  # not a pytest class

    ids: list[str] | None  # None: the whole suite
    report: SuiteReport
    returncode: int | None  # None: it did not finish (timed out) or could not start
    tail: str
    timed_out: bool = False
    # Lines of the measured files (repo-relative) that ran and that did not, as coverage's JSON
    # report gives them (statements by their first line); None: coverage was not measured.
    coverage: dict[str, FileLines] | None = None


@dataclass(frozen=True)
class FileLines:
    """One file's statements in a run with coverage: those that ran and those that did not."""

    executed: frozenset[int]
    missing: frozenset[int]


# Runs in the target's interpreter, with the coverage it has: its data file format is its own.
_DRIVER = """
import json, sys
from coverage import CoverageData

data = CoverageData(basename=sys.argv[1])
data.read()
names, index, files = [], {}, {}
for path in data.measured_files():
    lines = {}
    for lineno, contexts in (data.contexts_by_lineno(path) or {}).items():
        ids = set()
        for ctx in contexts:
            # pytest-cov names a context "<node id>|setup|run|teardown"; ids may hold "|".
            test = ctx.rsplit("|", 1)[0] if "|" in ctx else ctx
            if test not in index:
                index[test] = len(names)
                names.append(test)
            ids.add(index[test])
        lines[str(lineno)] = sorted(ids)
    files[path] = lines
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump({"contexts": names, "files": files}, out)
"""


class Verifier:
    """Per-patch checks on one worktree for one block; see the module docstring."""

    def __init__(self, repo: Path, policy: Policy, gates: list[str], baseline: GateRun) -> None:
        self.repo = Path(repo).resolve()
        self.policy = policy
        self.gates = gates
        self.baseline = baseline
        self.map: CoverageMap | None = None
        self.map_problem = "the coverage map was not recorded (start() not called)"
        self.daemon: MypyDaemon | None = None
        self.mypy_before: list[Finding] = []
        self.mypy_problem: str | None = None
        self.mypy_failed: str | None = None  # the daemon failed on the patch being checked
        # The pytest runs of the patch being checked (re-runs of failing tests not among them),
        # for the behaviour layer to judge; and how many pytest processes it took, re-runs too.
        self.runs: list[TestRun] = []
        self.pytest_runs = 0
        start = baseline.results.get("pytest")
        self.tests_problem: str | None = None
        if not policy.gates.pytest.enabled or start is None:
            self.tests_problem = "pytest is not among the gates"
        elif start.status == GateStatus.ERROR:
            self.tests_problem = f"pytest could not run at the block's start: {start.reason}"
        self.passed_at_start = {
            t.id for t in (start.tests if start else []) if t.outcome == "passed"
        }
        # What the start's pytest gate measured: each test's time, and the rest of its wall time
        # (start-up, collection, coverage), which every run pays once.
        self.durations = {t.id: t.seconds for t in (start.tests if start else [])}
        self.suite_seconds = start.seconds if start else 0.0
        self.overhead = max(0.0, self.suite_seconds - sum(self.durations.values()))
        self.coverage_problem: str | None = None
        if start is None or start.coverage is None:
            self.coverage_problem = "the block's pytest gate measured no coverage at its start"
        # The changed files the patch being checked measures coverage of, in its pytest run.
        self._measure: list[str] = []
        self._changed: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Verifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Record the coverage map and start the mypy daemon, side by side."""
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
            tests = pool.submit(self._record_map) if self.tests_problem is None else None
            mypy = pool.submit(self._start_mypy) if self._mypy_wanted() else None
            if tests is not None:
                tests.result()
            if mypy is not None:
                mypy.result()

    def refresh(self) -> None:
        """After commits landed or were reverted: mypy's baseline becomes the tree as it is now.
        (The coverage map needs no refresh: changed lines are mapped to its commit by diff.)"""
        if self.daemon is not None and self.mypy_problem is None:
            found, problem = self.daemon.check(self._mypy_paths())
            if problem is None:
                self.mypy_before = found
            else:
                self.mypy_problem = f"mypy daemon could not re-check: {problem}"

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    # ------------------------------------------------------------------ the check
    def check(self, changed: list[str]) -> PatchCheck:
        """Judge the patch now written to the worktree (changed files `changed`) against HEAD."""
        t0 = time.monotonic()
        self.runs, self.pytest_runs = [], 0
        selection, tests, why = self.select(changed)
        self._measure, cov_problem = self._coverage_files(selection, changed)
        self._changed = sorted(set(changed))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
            mypy = (
                pool.submit(self._check_mypy, self.daemon)
                if self.daemon is not None and self.mypy_problem is None
                else None
            )
            test_reasons, ran, flaky = self._check_tests(selection, tests)
            mypy_reasons, mypy_new = mypy.result() if mypy is not None else ([], [])
        if mypy is not None and self.mypy_failed is not None:
            # The daemon failing says nothing about the patch (attrs: dmypy crashed once, and
            # every later patch was refused for it): not judged here, the full gates judge it.
            why += f"; mypy not judged: {self.mypy_failed}"
            self.mypy_failed, mypy = None, None
        elif mypy is None and self._mypy_wanted():
            why += f"; mypy not judged: {self.mypy_problem}"
        lost: list[str] = []
        cov_reasons: list[str] = []
        if cov_problem is None and not test_reasons:
            # After mypy's check: confirming a loss puts HEAD's text back in the tree for a
            # moment, which the daemon must not read.
            cov_reasons, lost, cov_problem = self._judge_coverage(tests, flaky)
        self._measure = []
        if cov_problem is not None and selection != "none":
            why += f"; coverage not judged: {cov_problem}"
        reasons = test_reasons + mypy_reasons + cov_reasons
        return PatchCheck(
            ok=not reasons,
            reasons=reasons,
            tests_run=ran,
            selection=selection,
            why=why,
            flaky=flaky,
            mypy_new=mypy_new,
            mypy_judged=mypy is not None,
            coverage_judged=cov_problem is None and not test_reasons,
            coverage_lost=lost,
            pytest_runs=self.pytest_runs,
            seconds=time.monotonic() - t0,
        )

    def select(
        self, changed: list[str]
    ) -> tuple[Literal["selected", "all", "none"], list[str], str]:
        """Which tests to run for this patch, and why."""
        if self.tests_problem is not None:
            return "none", [], self.tests_problem
        if not changed:
            return "none", [], "no file changed"
        picked: set[str] = set()
        said: list[str] = []
        for path in sorted(set(changed)):
            if path.endswith(".pyi"):
                readers, how = self._stub_readers(path)
                picked |= readers
                said.append(how)
                continue
            if self.map is None:
                return "all", [], self.map_problem
            fallback = self._needs_all(path, self.map)
            if fallback is not None:
                return "all", [], fallback
            tests, how = self._tests_for(path, self.map)
            if tests is None:
                return "all", [], how
            picked |= tests
            said.append(how)
        run_now = sorted(picked & self.passed_at_start)
        skipped = len(picked) - len(run_now)
        note = f" ({skipped} covering test(s) were not passing at the start)" if skipped else ""
        return ("selected" if run_now else "none"), run_now, "; ".join(said) + note

    def _needs_all(self, path: str, cmap: CoverageMap) -> str | None:
        name = PurePosixPath(path).name
        if name == "conftest.py":
            return f"{path} is a conftest.py: it can change how every test runs"
        if name in CONFIG_FILES:
            return f"{path} is configuration"
        if match_any(path, self.policy.guard.test_globs):
            return f"{path} is a test file"
        if _git(self.repo, "cat-file", "-e", f"HEAD:{path}").returncode != 0:
            return f"{path} is a new file"
        if not (self.repo / path).is_file():
            return f"{path} was deleted"
        if path not in cmap.lines and not (path.endswith(".py") and self._no_code_changed(path)):
            return f"{path} has no coverage data"
        return None

    def _no_code_changed(self, path: str) -> bool:
        old = _git(self.repo, "show", f"HEAD:{path}")
        new = (self.repo / path).read_text(encoding="utf-8", errors="replace")
        return old.returncode == 0 and _same_code(old.stdout, new)

    # ------------------------------------------------------------------ what tests read
    def _tests_by_file(self) -> dict[str, set[str]]:
        """Every test the start's run reported (passing or not), by the file it is in."""
        out: dict[str, set[str]] = {}
        for test in self.durations:
            out.setdefault(test.split("::", 1)[0], set()).add(test)
        return out

    def _under(self, directory: str, by_file: dict[str, set[str]]) -> set[str]:
        """The tests in files under `directory` ("" is the repository's root)."""
        out: set[str] = set()
        for file, ids in by_file.items():
            if not directory or file.startswith(directory + "/"):
                out |= ids
        return out

    def _stub_readers(self, path: str) -> tuple[set[str], str]:
        """A type stub (.pyi) has no runtime effect: Python never imports it, so no test's
        outcome can depend on it but through a type checker or a test that opens it as a file.
        Those tests are: every test of a test file that is not Python (data-driven tests a
        plugin collects, such as pytest-mypy-plugins' YAML cases, which run mypy), and every
        test of a test module, or below a conftest.py, whose text names a type checker (mypy,
        pyright, pytype, pyre) or a `.pyi` file. ruff and mypy judge the stub itself."""
        by_file = self._tests_by_file()
        readers: set[str] = set()
        files: list[str] = []
        for file, ids in sorted(by_file.items()):
            if not file.endswith(".py") or _READS_STUBS.search(self._text(file)):
                readers |= ids
                files.append(file)
        for conftest in self._conftests():
            if _READS_STUBS.search(self._text(conftest)):
                readers |= self._under(str(PurePosixPath(conftest).parent).strip("."), by_file)
                files.append(conftest)
        where = f" ({', '.join(files[:5])}{' ...' if len(files) > 5 else ''})" if files else ""
        return readers, (
            f"{path}: a type stub has no runtime effect; {len(readers)} test(s) read stubs as "
            f"data{where} (non-Python test files, tests that name a type checker or a .pyi "
            "file); ruff and mypy judge the stub"
        )

    def _text(self, path: str) -> str:
        try:
            return (self.repo / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _conftests(self) -> list[str]:
        listed = _git(self.repo, "ls-files", "-z", "--", "conftest.py", "*/conftest.py")
        return [p for p in listed.stdout.split("\0") if p]

    def _module_name(self, path: str) -> str | None:
        """The dotted name `path` is imported by, from the repository's root or the first
        pythonpath directory (src/) that holds it."""
        rel = PurePosixPath(path)
        for root in sorted(self.policy.gates.pythonpath, key=len, reverse=True):
            if root not in ("", ".") and rel.is_relative_to(root):
                rel = rel.relative_to(root)
                break
        if rel.suffix != ".py":
            return None
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None

    def _importers(self, path: str) -> tuple[set[str], list[str]]:
        """The tests whose files import the module `path`, found statically (see `_Names`):
        the test files and conftest.py files, and the helper modules beside them, that import
        it by name (`import pkg.mod`, `from pkg.mod import x`, `from pkg import mod`), import
        a name its package's __init__ takes from it (`from pkg import x`, `pkg.x`), or import
        something dynamically (importlib, __import__: what cannot be told counts as named). A
        conftest.py that does selects every test below it. Returns the tests and the files."""
        module = self._module_name(path)
        if module is None:
            return set(), []
        parent, _, last = module.rpartition(".")
        reexported: set[str] | None = {last}
        if parent:
            init = next(
                (
                    f"{d}/{parent.replace('.', '/')}/__init__.py".lstrip("/")
                    for d in [*self.policy.gates.pythonpath, ""]
                    if (self.repo / d / parent.replace(".", "/") / "__init__.py").is_file()
                ),
                None,
            )
            if init is not None:
                reexported = _reexports(self._text(init), parent, module, last)
        by_file = self._tests_by_file()
        conftests = self._conftests()
        # Helpers are the modules beside the test files: a conftest.py at the root has the
        # whole repository beside it, and the source's own imports are not followed.
        dirs = {str(PurePosixPath(f).parent) for f in by_file if f.endswith(".py")} - {"."}
        helpers = [
            p
            for p in _git(
                self.repo, "ls-files", "-z", "--", *(f"{d}/*.py" for d in dirs)
            ).stdout.split("\0")
            if dirs and p and p not in by_file and p not in conftests
        ]
        files = [f for f in by_file if f.endswith(".py")] + conftests + helpers
        names = _Names(module, parent, reexported)
        naming: set[str] = set()
        while True:  # a helper module that names it makes its importers name it too
            more = {f for f in files if f not in naming and names.named_in(self._text(f), f)}
            if not more:
                break
            naming |= more
            names.targets |= {
                m for f in more if f in helpers for m in [_dotted(f)] if m is not None
            }
        tests: set[str] = set()
        for f in naming:
            if f in conftests:
                tests |= self._under(str(PurePosixPath(f).parent).strip("."), by_file)
            else:
                tests |= by_file.get(f, set())
        return tests, sorted(naming)

    def _tests_for(self, path: str, cmap: CoverageMap) -> tuple[set[str] | None, str]:
        """The tests that ran the lines `path` changes; None when they cannot be told."""
        old = _git(self.repo, "show", f"HEAD:{path}")
        new_text = (self.repo / path).read_text(encoding="utf-8", errors="replace")
        if old.returncode != 0:
            return None, f"{path}: cannot read it at HEAD: {one_line(old.stderr)}"
        if path.endswith(".py") and _same_code(old.stdout, new_text):
            return set(), f"{path}: no code changed (same syntax tree)"
        diff = _git(self.repo, "diff", "-U0", "--no-color", "--no-ext-diff", "HEAD", "--", path)
        lines = set()
        for old_start, old_len, _, _ in _hunks(diff.stdout):
            # An insertion touches the statements on either side of it.
            span = range(old_start, old_start + old_len) if old_len else (old_start, old_start + 1)
            lines |= {n for n in span if n > 0}
        if path.endswith(".py"):
            lines = _statement_lines(old.stdout, lines)
        since = _git(
            self.repo, "diff", "-U0", "--no-color", "--no-ext-diff", cmap.commit, "HEAD", "--", path
        )
        at_start = _to_start(lines, _hunks(since.stdout))
        by_line = cmap.lines[path]
        if path.endswith(".py"):
            start_text = cmap_text(self.repo, cmap.commit, path)
            level = _module_level(start_text, set(range(1, start_text.count("\n") + 2)))
            unrecorded = sorted(n for n in at_start if n in level and n not in by_line)
            # A module whose import coverage saw has other import-time lines on record: one
            # without a record then never ran (the other side of `if PY3:`, of a platform
            # test), and selects no test, like any line no test runs (six: its Python 2 code).
            if unrecorded and not any(n in by_line for n in level):
                # Import-time code with no record at all: the module was imported before
                # coverage started (a pytest plugin importing it: attrs, by hypothesis). What
                # its body lines record still says which tests run its code; the tests that
                # import it are found in their source. The same rule as a recorded import line.
                return self._import_time(
                    path,
                    cmap,
                    unrecorded,
                    "and coverage has no record of them (imported before measuring began)",
                )
        tests: set[str] = set()
        import_time: list[int] = []
        for n in sorted(at_start):
            ran = by_line.get(n, frozenset())
            tests |= ran
            if "" in ran:
                import_time.append(n)
        tests.discard("")
        said = ""
        landed = _hunks(since.stdout)
        if (
            import_time
            and path.endswith(".py")
            and not _written(lines, landed)
            and _signature_only(old.stdout, new_text)
        ):
            # Only function signatures changed among what runs at import (a default, an
            # annotation): a changed def line then reaches the calls of its function alone,
            # which are the tests that ran its body. (Lines that commits landed since the map
            # rewrote are not mapped to one function exactly: they keep the rule below.)
            start_text = cmap_text(self.repo, cmap.commit, path)
            callers: set[str] = set()
            explained = []
            for n in import_time:
                body_tests = _body_tests(start_text, n, by_line)
                if body_tests:
                    callers |= body_tests
                    explained.append(n)
            if explained:
                tests |= callers
                import_time = [n for n in import_time if n not in explained]
                said = (
                    f"{path}: line(s) {_ranges(explained)} in a function's signature: "
                    f"{len(callers)} test(s) that ran its body"
                )
        if import_time:
            found, how = self._import_time(path, cmap, import_time, "")
            return (None, how) if found is None else (tests | found, how)
        if said:
            return tests, said
        if not tests:
            return tests, f"{path}: no test runs the changed lines"
        return tests, f"{path}: {len(tests)} test(s) run the changed lines"

    def _import_time(
        self, path: str, cmap: CoverageMap, lines: list[int], note: str
    ) -> tuple[set[str] | None, str]:
        """Code that runs at import (a constant, a class body, a def line) reaches whatever uses
        the module: the tests that run code of it (coverage: pytest-testmon's rule for module
        level code) and the tests that import it (their source, `_importers`). None when
        neither finds a test: who uses it cannot be told, so everything runs."""
        runners = cmap.tests_of_file(path)
        importers, files = self._importers(path)
        tests = runners | importers
        said = f"{path}: line(s) {_ranges(lines)} run at import{' ' + note if note else ''}"
        if not tests:
            return None, f"{said}; no test runs code of it or imports it by name: who uses it "
            "cannot be told"
        return tests, (
            f"{said}: {len(tests)} test(s) that run code of it ({len(runners)}) or whose files "
            f"import it ({len(importers)}, in {len(files)} file(s))"
        )

    def _check_tests(
        self, selection: str, tests: list[str]
    ) -> tuple[list[str], list[str], list[str]]:
        if selection == "none":
            return [], [], []
        if selection == "all":
            return self._check_suite()
        # One failure that survives its re-runs is enough to refuse the patch: pytest stops at
        # the first failure (-x), that failure is re-run, and only if it was flaky do the tests
        # after it run. A broken patch then costs one failing test, not all of them.
        outcomes: dict[str, str] = {}
        flaky: list[str] = []
        remaining = list(tests)
        while remaining:
            try:
                got = self._run_until_failure(remaining)
            except GateError as exc:
                return [str(exc)], sorted(outcomes), sorted(flaky)
            if got is None:
                # pytest refused the list (an id that no longer exists): run_tests sorts that out.
                try:
                    self.pytest_runs += 1
                    got = run_tests(self.repo, self._timed(remaining), remaining)
                except GateError as exc:
                    return [f"pytest could not run: {exc}"], sorted(outcomes), sorted(flaky)
                outcomes |= got
                reasons, more = self._judge(remaining, got)
                return reasons, sorted(outcomes), sorted(flaky + more)
            outcomes |= got
            ran_now = [t for t in remaining if t in got]
            confirmed, more = self._confirm([t for t in ran_now if got[t] in _BAD])
            flaky += more
            if confirmed:
                return (
                    [
                        f"test {t} passed at the block's start and is {got[t]} now"
                        for t in confirmed
                    ],
                    sorted(outcomes),
                    sorted(flaky),
                )
            stopped = any(o in ("failed", "error") for o in got.values())
            remaining = [t for t in remaining if t not in got]
            if not (stopped and ran_now):
                break
        # Not stopped by a failure, yet not reported: they did not run (a collection error).
        reasons = [f"test {t} passed at the block's start and did not run now" for t in remaining]
        return reasons, sorted(outcomes), sorted(flaky)

    def _check_suite(self) -> tuple[list[str], list[str], list[str]]:
        try:
            outcomes = self._run_suite()
        except GateError as exc:
            return [f"pytest could not run: {exc}"], [], []
        reasons, flaky = self._judge(sorted(self.passed_at_start), outcomes)
        return reasons, sorted(outcomes), flaky

    def _judge(self, judged: list[str], outcomes: dict[str, str]) -> tuple[list[str], list[str]]:
        """Reasons to refuse (the tests of `judged` that got worse and are not flaky), and the
        flaky ones."""
        worse = {t: outcomes.get(t, "missing") for t in judged}
        worse = {t: o for t, o in worse.items() if o in (*_BAD, "missing")}
        flaky: list[str] = []
        if not any(o == "missing" for o in worse.values()):
            _, flaky = self._confirm(sorted(t for t, o in worse.items() if o != "missing"))
        reasons = [
            f"test {t} passed at the block's start and is {o} now"
            if o != "missing"
            else f"test {t} passed at the block's start and did not run now"
            for t, o in sorted(worse.items())
            if t not in flaky
        ]
        return reasons, sorted(flaky)

    def _confirm(self, failing: list[str]) -> tuple[list[str], list[str]]:
        """Re-run failing tests a few at a time until some fail every re-run: those (confirmed),
        and the ones that passed on a re-run (flaky). Stops at the first confirmed batch."""
        flaky: list[str] = []
        for i in range(0, len(failing), _CONFIRM_BATCH):
            pending = failing[i : i + _CONFIRM_BATCH]
            for _ in range(self.policy.regression.rerun_failed):
                if not pending:
                    break
                try:
                    self.pytest_runs += 1
                    again = run_tests(self.repo, self._timed(pending), pending)
                except GateError:
                    break
                now_passing = [t for t in pending if again.get(t) == "passed"]
                flaky += now_passing
                pending = [t for t in pending if t not in now_passing]
            if pending:
                return pending, flaky
        return [], flaky

    def budget(self, tests: list[str] | None) -> float:
        """Seconds a run of `tests` (None: the whole suite) gets; see TIMEOUT_FACTOR."""
        limit = pytest_gate.pytest_config(self.policy.gates.pytest).timeout
        if self.suite_seconds <= 0:
            return limit  # nothing measured to scale from
        took = (
            self.suite_seconds
            if tests is None
            else self.overhead + sum(self.durations.get(t, 0.0) for t in tests)
        )
        return min(limit, max(TIMEOUT_FLOOR, TIMEOUT_FACTOR * took))

    def _timed(self, tests: list[str] | None) -> Policy:
        policy = self.policy.model_copy(deep=True)
        policy.gates.pytest.timeout = self.budget(tests)
        return policy

    def _run_until_failure(self, ids: list[str]) -> dict[str, str] | None:
        """Run `ids`, stopping at the first test that fails or errors: the outcome of each test
        that ran; None when pytest refused the list itself (usage error, no report). Raises
        GateError when the run tells nothing, a hang (past the budget) included."""
        proc, junit, ctx, _ = self._pytest(ids)
        if proc.timed_out:
            raise GateError(
                f"the {len(ids)} selected test(s) did not finish in {ctx.cfg.timeout:g}s "
                f"({TIMEOUT_FACTOR:g}x their time at the block's start): the patch makes "
                "one hang or crawl"
            )
        why = proc_failure("pytest", proc, ctx, "pytest")
        if why is not None:
            raise GateError(f"pytest could not run: {why}")
        if junit is None:
            if proc.returncode == 4:
                return None
            raise GateError(f"pytest could not run: it wrote no JUnit XML report: {proc.tail}")
        return {t.id: t.verdict for t in self._parse(junit)}

    def _run_suite(self) -> dict[str, str]:
        """The whole suite as the pytest gate runs it, without the coverage measurement. Raises
        GateError for a run the gate would call an error (a hang included)."""
        proc, junit, ctx, _ = self._pytest(None)
        if proc.timed_out:
            raise GateError(
                f"the suite did not finish in {ctx.cfg.timeout:g}s ({TIMEOUT_FACTOR:g}x its "
                "time at the block's start): the patch makes a test hang or crawl"
            )
        why = proc_failure("pytest", proc, ctx, "pytest")
        if why is not None:
            raise GateError(why)
        run = self.runs[-1]
        if proc.returncode not in (0, 1):
            broken = run.report.collect_errors
            detail = f"{broken[0].id}: {broken[0].message}" if broken else proc.tail
            raise GateError(f"pytest exited {proc.returncode}: {one_line(detail)}")
        if junit is None:
            raise GateError(f"pytest wrote no JUnit XML report: {proc.tail}")
        if not run.report.finished:
            raise GateError("pytest ended without finishing its session (no closing report)")
        tests = pytest_report.with_xpasses(self._parse(junit), run.report)
        return {t.id: t.outcome for t in tests}

    def _parse(self, junit: str) -> list[TestCase]:
        try:
            return pytest_gate.parse_junit(junit, self.repo)
        except ValueError as exc:
            raise GateError(f"pytest could not run: unparsable JUnit XML: {exc}") from exc

    def _pytest(
        self, ids: list[str] | None, *, keep: bool = True
    ) -> tuple[ProcResult, str | None, GateContext, TestRun]:
        """One pytest process over `ids` (stopping at the first failure) or, for None, the
        whole suite, within its budget; with pytest's own report, kept in `self.runs` unless
        not `keep` (a run of the tree without the patch), and with the line coverage of the
        files in `self._measure` for a run of chosen tests. Returns the process, its JUnit XML
        (None: none written), how it ran and the run."""
        policy = self._timed(ids)
        cfg = pytest_gate.pytest_config(policy.gates.pytest)
        ctx = context_for(self.repo, policy, cfg)
        with tempfile.TemporaryDirectory(prefix="harness-verify-") as tmp_name:
            tmp = Path(tmp_name)
            junit = tmp / "junit.xml"
            report_file = tmp / pytest_report.REPORT_FILE
            argv = [
                *pytest_gate.base_argv(ctx.python, junit),
                *pytest_report.plugin_args(report_file),
            ]
            cov_json = tmp / "coverage.json"
            measure = ids is not None and bool(self._measure)
            if measure:
                argv += _coverage_args(tmp, [self.repo / p for p in self._measure], cov_json)
            argv += [*cfg.args, *cfg.paths] if ids is None else ["-x", *cfg.args, "--", *ids]
            env = pytest_gate.tool_env(ctx, tmp, first=[str(pytest_report.PLUGIN_DIR)])
            if not keep:
                # Bytecode of the tree without the patch stays in this run's own cache.
                env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            self.pytest_runs += 1
            proc = run_tool(argv, ctx, env=env)
            text = junit.read_text(encoding="utf-8") if junit.is_file() else None
            coverage = _read_coverage(cov_json, self.repo) if measure else None
            try:
                report = pytest_report.read_report(report_file, self.repo)
            except ValueError as exc:
                # Written from inside the target's process: a patch can scribble on it, and
                # what it then says is not pytest's word.
                report = SuiteReport(interrupted=f"the report was tampered with: {exc}")
        finished = not (proc.missing or proc.timed_out)
        test_run = TestRun(
            ids=None if ids is None else list(ids),
            report=report,
            returncode=proc.returncode if finished else None,
            tail="timed out" if proc.timed_out else proc.tail,
            timed_out=proc.timed_out,
            coverage=coverage,
        )
        if keep:
            self.runs.append(test_run)
        return proc, text, ctx, test_run

    # ------------------------------------------------------------------ coverage of a patch
    def _coverage_files(self, selection: str, changed: list[str]) -> tuple[list[str], str | None]:
        """The changed files whose line coverage the patch's pytest run measures, or why none."""
        if self.coverage_problem is not None:
            return [], self.coverage_problem
        if selection == "all":
            return [], "the whole suite ran, without coverage (the full gates judge it)"
        if selection == "none":
            return [], "no test ran"
        if self.map is None:
            return [], self.map_problem
        if not changed or not all(p.endswith(".py") for p in changed):
            # The tree without the patch is put back as text to compare with: Python only.
            return [], "the patch changes a file that is not Python source"
        files = sorted(p for p in set(changed) if p in self.map.lines)
        if not files:
            return [], "no changed file has coverage data"
        return files, None

    def _judge_coverage(
        self, tests: list[str], flaky: list[str]
    ) -> tuple[list[str], list[str], str | None]:
        """Refuse a patch that takes coverage away from its own tests: a statement of a changed file
        that the selected tests ran at the block's start and before the patch and do not run now
        (unchanged lines, mapped through the patch's diff), or a changed hunk with more statements
        they do not run than it had. The map (who ran each line at the block's start) only says
        whether a loss is possible; a possible one is confirmed by running the same tests, in the
        same order, on the tree without the patch, so a line that ran only thanks to a test not
        selected (state one test leaves for another) is never held against the patch. Returns the
        reasons, the lost path:lines and, when it cannot judge, why."""
        runs = self.runs
        if flaky or len(runs) != 1 or runs[0].ids != tests or runs[0].returncode != 0:
            return [], [], "the tests did not pass in one run (a failure re-run or cut short)"
        after = runs[0].coverage
        if after is None:
            return [], [], "coverage wrote no usable JSON report"
        files = [_PatchedFile.read(self.repo, p) for p in self._measure if p in after]
        if not files:
            return [], [], "coverage measured none of the changed files"
        cmap = self.map
        if cmap is None:
            return [], [], self.map_problem
        suspects = {f.path: self._suspects(f, after[f.path], set(tests), cmap) for f in files}
        if not any(lines or hunk for lines, hunk in suspects.values()):
            return [], [], None
        before = self._coverage_at_head(tests)
        if isinstance(before, str):
            return [], [], before
        reasons: list[str] = []
        lost: list[str] = []
        for f in files:
            was, now = before.get(f.path), after[f.path]
            if was is None:
                continue
            # Lost only if both say so: the map (the block's start) and the run without the
            # patch; a line one run covers and the other does not is not the patch's doing.
            gone = [
                n for n in sorted(suspects[f.path][0]) if _to_start({n}, f.hunks) & was.executed
            ]
            if gone:
                lost.append(f"{f.path}:{_ranges(gone)}")
                reasons.append(
                    f"coverage: {f.path}:{_ranges(gone)} was covered by its tests at the "
                    "block's start and is not now"
                )
            for old_lines, new_lines, where in f.spans():
                had, has = len(old_lines & was.missing), len(new_lines & now.missing)
                if has > had:
                    lost.append(f"{f.path}:{where}")
                    reasons.append(
                        f"coverage: {f.path}:{where} (changed) has {has} statement(s) its "
                        f"tests do not run, {had} before the patch"
                    )
        return reasons, lost, None

    def _suspects(
        self, f: _PatchedFile, now: FileLines, tests: set[str], cmap: CoverageMap
    ) -> tuple[set[int], bool]:
        """Where the patch may have taken coverage from its tests, by the map: the unchanged
        lines that did not run now and that they ran at the block's start (through the diffs
        since: a line a commit rewrote stands for the lines it replaced), and whether a changed
        statement did not run now."""
        by_line = cmap.lines[f.path]
        since = _git(
            self.repo,
            "diff",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            cmap.commit,
            "HEAD",
            "--",
            f.path,
        )
        landed = _hunks(since.stdout)
        lines = set()
        for n in now.missing - f.changed:
            # coverage names a statement by its first line; the map has the lines it recorded.
            at_start = _to_start(_to_start(_statement_lines(f.new, {n}), f.hunks), landed)
            if any(by_line.get(m, frozenset()) & tests for m in at_start):
                lines.add(n)
        return lines, bool(now.missing & f.changed)

    def _coverage_at_head(self, tests: list[str]) -> dict[str, FileLines] | str:
        """The line coverage of the same tests on the tree without the patch: HEAD's text of
        the changed files is written back for one pytest run, and the patch restored after."""
        written = {p: (self.repo / p).read_bytes() for p in self._changed}
        heads: dict[str, str] = {}
        for p in self._changed:
            shown = _git(self.repo, "show", f"HEAD:{p}")
            if shown.returncode != 0:
                return f"cannot read {p} at HEAD: {one_line(shown.stderr)}"
            heads[p] = shown.stdout
        try:
            for p, text in heads.items():
                (self.repo / p).write_text(text, encoding="utf-8")
            proc, _, _, test_run = self._pytest(tests, keep=False)
        finally:
            for p, data in written.items():
                (self.repo / p).write_bytes(data)
        if proc.timed_out or test_run.returncode != 0 or test_run.coverage is None:
            return (
                f"the same tests without the patch did not pass with coverage "
                f"(exit {test_run.returncode}): {proc.tail}"
            )
        return test_run.coverage

    # ------------------------------------------------------------------ coverage map
    def _record_map(self) -> None:
        cfg = pytest_gate.pytest_config(self.policy.gates.pytest)
        ctx = context_for(self.repo, self.policy, cfg)
        with tempfile.TemporaryDirectory(prefix="harness-verify-") as tmp_name:
            tmp = Path(tmp_name)
            argv = pytest_gate.base_argv(ctx.python, tmp / "junit.xml")
            # The whole repository is measured, not only the coverage targets: any file the
            # tests run is one whose changes can be mapped to tests.
            argv += [f"--cov={self.repo}", "--cov-context=test", "--cov-report="]
            if cfg.config:
                argv += [f"--cov-config={cfg.config}"]
            argv += [*cfg.args, *cfg.paths]
            proc = run_tool(argv, ctx, env=pytest_gate.tool_env(ctx, tmp))
            data = tmp / ".coverage"
            if proc.returncode not in (0, 1) or not data.is_file():
                self.map_problem = (
                    f"no coverage map: pytest --cov-context=test exited {proc.returncode}: "
                    f"{proc.tail}"
                )
                return
            out = tmp / "map.json"
            read = run(
                [ctx.python, "-c", _DRIVER, str(data), str(out)],
                self.repo,
                timeout=cfg.timeout,
                env=BASE_ENV,
            )
            if read.returncode != 0 or not out.is_file():
                self.map_problem = f"no coverage map: reading the contexts failed: {read.tail}"
                return
            raw = json.loads(out.read_text(encoding="utf-8"))
        names: list[str] = raw["contexts"]
        head = _git(self.repo, "rev-parse", "HEAD").stdout.strip()
        cmap = CoverageMap(commit=head)
        for path, lines in raw["files"].items():
            cmap.lines[rel_path(self.repo, path)] = {
                int(n): frozenset(names[i] for i in ids) for n, ids in lines.items()
            }
        self.map = cmap

    # ------------------------------------------------------------------ mypy
    def _mypy_wanted(self) -> bool:
        return "mypy" in self.gates and self.policy.gates.mypy.enabled

    def _mypy_paths(self) -> list[str]:
        return list(self.policy.gates.mypy.paths) or ["."]

    def _restart_mypy(self, daemon: MypyDaemon) -> None:
        """A fresh daemon for the next patch; if that fails too, per-patch mypy stops for the
        block and says why. Its baseline is the tree as written now: exact if this patch lands,
        and if it does not, an error it added is masked for later patches until the next
        refresh; the full gates judge mypy either way."""
        daemon.stop()
        self.daemon = None
        self._start_mypy()

    def _start_mypy(self) -> None:
        start = self.baseline.results.get("mypy")
        if start is None or start.status == GateStatus.ERROR:
            self.mypy_problem = "mypy could not run at the block's start"
            return
        self.daemon = MypyDaemon(self.repo, self.policy)
        problem = self.daemon.start()
        if problem is None:
            self.mypy_before, problem = self.daemon.check(self._mypy_paths())
        if problem is not None:
            self.mypy_problem = f"mypy daemon: {problem}"

    def _check_mypy(self, daemon: MypyDaemon) -> tuple[list[str], list[str]]:
        after, problem = daemon.check(self._mypy_paths())
        if problem is not None:
            self.mypy_failed = problem
            self._restart_mypy(daemon)
            return [], []
        new = [
            f"{f.path}:{f.line if f.line is not None else '?'}: {f.code} {f.message}"
            for f in new_findings(self.mypy_before, after)
        ]
        return [f"new mypy error: {line}" for line in new], new


class MypyDaemon:
    """`dmypy` from the harness's env, configured as the mypy gate runs mypy. Its status file,
    socket, log and cache live in a private temp dir, never in the worktree."""

    def __init__(self, repo: Path, policy: Policy) -> None:
        self.repo = repo
        self.ctx = context_for(repo, policy, policy.gates.mypy)
        self.tmp = Path(tempfile.mkdtemp(prefix="harness-dmypy-"))
        self.status = self.tmp / "status.json"

    def _run(self, *args: str) -> ProcResult:
        argv = [HARNESS_PYTHON, "-m", "mypy.dmypy", "--status-file", str(self.status), *args]
        return run_tool(argv, self.ctx, env=self._env())

    def _env(self) -> dict[str, str]:
        # The repo's own copy of its packages first, as the mypy gate has it.
        dirs = repo_pythonpath(self.ctx)
        inherited = [p for p in os.environ.get("MYPYPATH", "").split(os.pathsep) if p]
        return {"MYPYPATH": os.pathsep.join([*dirs, *inherited])} if dirs else {}

    def start(self) -> str | None:
        flags = ["--cache-dir", str(self.tmp / "cache"), "--output", "json"]
        if not same_interpreter(self.ctx.python, HARNESS_PYTHON):
            flags += ["--python-executable", self.ctx.python]
        cfg_file = config_path(self.ctx)
        if cfg_file is not None:
            flags += ["--config-file", str(cfg_file)]
        proc = self._run(
            "start", "--log-file", str(self.tmp / "log"), "--", *flags, *self.ctx.cfg.args
        )
        if proc.returncode != 0:
            return f"could not start (exit {proc.returncode}): {proc.tail}"
        return None

    def check(self, paths: Iterable[str]) -> tuple[list[Finding], str | None]:
        proc = self._run("check", *paths)
        if proc.timed_out:
            return [], f"timed out after {self.ctx.cfg.timeout:g}s"
        try:
            found = mypy_gate.parse_json(proc.stdout, self.ctx)
        except ValueError as exc:
            return [], f"unparsable output (exit {proc.returncode}): {exc}"
        if proc.returncode not in (0, 1):
            detail = f"{found[0].path}:{found[0].line}: {found[0].message}" if found else proc.tail
            return [], f"exit {proc.returncode}: {detail}"
        return found, None

    def pid(self) -> int | None:
        try:
            data = json.loads(self.status.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        pid = data.get("pid") if isinstance(data, dict) else None
        return pid if isinstance(pid, int) else None

    def stop(self) -> None:
        pid = self.pid()
        if self.status.exists() and self._run("stop").returncode != 0:
            self._run("kill")
        if pid is not None and not _wait_gone(pid, STOP_WAIT):
            # Neither stop nor kill ended it in time: it is ours, end it.
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_WAIT)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------- helpers
def _git(repo: Path, *args: str) -> ProcResult:
    return run(["git", "-c", "core.quotepath=off", *args], repo, env={"GIT_OPTIONAL_LOCKS": "0"})


def _alive(pid: int) -> bool:
    """Whether `pid` still runs. A daemon that exited stays a zombie until init reaps it (it
    double-forked away from us), and a zombie runs nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True  # no procfs: trust the signal
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _coverage_args(tmp: Path, files: list[Path], report: Path) -> list[str]:
    """pytest-cov measuring lines (not arcs) of `files` only, whatever the project's coverage
    settings (its goal included), with a JSON report: the tracer then stops at no other file."""
    rc = tmp / "coveragerc"
    include = "".join(f"    {f.resolve()}\n" for f in files)
    rc.write_text(f"[run]\nbranch = False\ninclude =\n{include}", encoding="utf-8")
    return ["--cov", f"--cov-config={rc}", f"--cov-report=json:{report}", "--cov-fail-under=0"]


def _read_coverage(report: Path, repo: Path) -> dict[str, FileLines] | None:
    """Each measured file's executed and missing statements; None when there is no report."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        return {
            rel_path(repo, path): FileLines(
                executed=frozenset(int(n) for n in info["executed_lines"]),
                missing=frozenset(int(n) for n in info["missing_lines"]),
            )
            for path, info in data["files"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class _PatchedFile:
    """A changed file: its text at HEAD and now, the patch's hunks, and the lines it wrote
    (widened to their statements, as coverage names a statement by its first line)."""

    path: str
    head: str
    new: str
    hunks: list[tuple[int, int, int, int]]
    changed: frozenset[int]

    @classmethod
    def read(cls, repo: Path, path: str) -> _PatchedFile:
        head = _git(repo, "show", f"HEAD:{path}").stdout
        new = (repo / path).read_text(encoding="utf-8", errors="replace")
        diff = _git(repo, "diff", "-U0", "--no-color", "--no-ext-diff", "HEAD", "--", path)
        hunks = _hunks(diff.stdout)
        written = {n for _, _, start, length in hunks for n in range(start, start + length)}
        return cls(path, head, new, hunks, frozenset(_statement_lines(new, written)))

    def spans(self) -> list[tuple[set[int], set[int], str]]:
        """The statements the patch changed, before and after, and where they are now (line or
        lines). Hunks within one statement count together: `git diff -U0` cuts a reordered
        tuple into several, one of them a pure insertion whose old side is empty, and judged
        alone that would count the whole statement as new."""
        groups: list[tuple[set[int], set[int], set[int]]] = []
        for old_start, old_len, new_start, new_len in self.hunks:
            old = _statement_lines(self.head, _touched(self.head, old_start, old_len))
            new = _statement_lines(self.new, _touched(self.new, new_start, new_len))
            where = set(range(new_start, new_start + new_len)) or {new_start}
            for g in [g for g in groups if g[0] & old or g[1] & new]:
                groups.remove(g)
                old, new, where = old | g[0], new | g[1], where | g[2]
            groups.append((old, new, where))
        return [(old, new, _ranges(sorted(where))) for old, new, where in groups]


def _touched(text: str, start: int, length: int) -> set[int]:
    """The lines of one side of a hunk; for an empty side (lines only added, or only removed),
    the lines around the point where that happened, when one statement spans both of them."""
    if length:
        return set(range(start, start + length))
    owners = _statement_owners(text)
    here = owners.get(start)
    return {start} if here is not None and here == owners.get(start + 1) else set()


def _hunks(diff: str) -> list[tuple[int, int, int, int]]:
    """(old start, old length, new start, new length) of each `@@` header of a unified diff."""
    out = []
    for line in diff.splitlines():
        if not line.startswith("@@ "):
            continue
        old, new = line.split(" ")[1:3]
        out.append((*_range(old[1:]), *_range(new[1:])))
    return out


def _range(text: str) -> tuple[int, int]:
    start, _, length = text.partition(",")
    return int(start), int(length) if length else 1


def _to_start(lines: set[int], since: list[tuple[int, int, int, int]]) -> set[int]:
    """HEAD line numbers -> the map commit's: shifted past the hunks landed since; a line that a
    landed hunk wrote stands for the lines that hunk replaced."""
    out: set[int] = set()
    for n in lines:
        shift = 0
        mapped: set[int] | None = None
        for old_start, old_len, new_start, new_len in since:
            if new_len and new_start <= n < new_start + new_len:
                span = (
                    range(old_start, old_start + old_len) if old_len else (old_start, old_start + 1)
                )
                mapped = {m for m in span if m > 0}
                break
            end = new_start + new_len - 1 if new_len else new_start
            if end < n:
                shift = old_start + old_len - (new_start + new_len)
                if not old_len:
                    shift += 1
                if not new_len:
                    shift -= 1
        out |= mapped if mapped is not None else {n + shift}
    return out


def _written(lines: set[int], since: list[tuple[int, int, int, int]]) -> bool:
    """Whether any of `lines` (HEAD's numbers) lies in a hunk that landed since the map."""
    return any(
        new_start <= n < new_start + new_len for _, _, new_start, new_len in since for n in lines
    )


def _statement_lines(text: str, lines: set[int]) -> set[int]:
    """`lines` widened to the statements they belong to: coverage records only some lines of a
    statement that spans several, and the header of a compound one (up to its body)."""
    owners = _statement_owners(text)
    out = set(lines)
    for n in lines:
        span = owners.get(n)
        if span is not None:
            out.update(range(span[0], span[1] + 1))
    return out


@functools.lru_cache(maxsize=8)
def _statement_owners(text: str) -> dict[int, tuple[int, int]]:
    """For each line inside a statement, the innermost one's first line and the last line of
    its own (a compound statement's header, before its body). Parsed once per text: a
    check asks this for every line its tests left unrun, over a file of thousands of lines."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    spans = []
    for index, node in enumerate(n for n in ast.walk(tree) if isinstance(n, ast.stmt)):
        first = _first_line(node)
        last = node.end_lineno or node.lineno
        body = getattr(node, "body", None)
        own_last = last
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            own_last = max(first, _first_line(body[0]) - 1)
        spans.append((first, -last, -index, own_last))
    # Innermost wins: the latest first line, then the earliest end, then the first walked, so
    # assigning in ascending order leaves each line to the statement that owns it.
    owners: dict[int, tuple[int, int]] = {}
    for first, neg_last, _, own_last in sorted(spans):
        for n in range(first, -neg_last + 1):
            owners[n] = (first, own_last)
    return owners


def _first_line(node: ast.stmt) -> int:
    """Where a statement starts: its first decorator, if it has any."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


# `from __future__` features every Python 3.7+ has whether asked for or not: importing them
# changes nothing (ruff's UP010 removes them), unlike `annotations`.
_MANDATORY_FUTURE = frozenset(
    {
        "nested_scopes",
        "generators",
        "division",
        "absolute_import",
        "with_statement",
        "print_function",
        "unicode_literals",
        "generator_stop",
    }
)


class _NoMandatoryFuture(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.module == "__future__":
            node.names = [a for a in node.names if a.name not in _MANDATORY_FUTURE]
            if not node.names:
                return None
        return node


def _same_code(old: str, new: str) -> bool:
    """Whether two versions of a module parse to the same tree (comments, blank lines and
    layout are all that changed), `from __future__` imports that change nothing aside."""
    try:
        trees = [_NoMandatoryFuture().visit(ast.parse(text)) for text in (old, new)]
    except SyntaxError:
        return False
    return ast.dump(trees[0]) == ast.dump(trees[1])


# A test that can read a type stub: it runs a type checker or opens a .pyi file.
_READS_STUBS = re.compile(r"\b(?:mypy|pyright|pytype|pyre)\b|\.pyi\b")
_DYNAMIC_IMPORTS = frozenset({"__import__", "import_module", "importorskip"})


def _dotted(path: str) -> str | None:
    """A repository file's module name from the repository's root."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _resolve(node: ast.ImportFrom, path: str) -> str:
    """The absolute module an `from ... import` in the file `path` imports from."""
    if not node.level:
        return node.module or ""
    package = list(PurePosixPath(path).parent.parts)
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def _reexports(init: str, package: str, module: str, last: str) -> set[str] | None:
    """The names `package`'s __init__ binds from `module` (and `last`, the submodule itself);
    None when it star-imports it (any name may come from it)."""
    names = {last}
    try:
        tree = ast.parse(init)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _resolve(node, f"{package.replace('.', '/')}/__init__.py")
        if source == module or source.startswith(module + "."):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name)
    return names


class _Names:
    """Whether a file's source imports a module: by any of the dotted names in `targets`, or by
    a name its package (`parent`) takes from it (`reexported`; None: any name)."""

    def __init__(self, module: str, parent: str, reexported: set[str] | None) -> None:
        self.targets = {module}
        self.parent = parent
        self.reexported = reexported

    def _hits(self, name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in self.targets)

    def _from_parent(self, names: Iterable[str]) -> bool:
        return self.reexported is None or any(n == "*" or n in self.reexported for n in names)

    def named_in(self, text: str, path: str) -> bool:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return True  # what it imports cannot be told
        parent_bound = False
        attributes: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self._hits(alias.name):
                        return True
                    if self.parent and (
                        alias.name == self.parent or alias.name.startswith(self.parent + ".")
                    ):
                        parent_bound = True
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(node, path)
                names = [a.name for a in node.names]
                if self._hits(source) or any(self._hits(f"{source}.{n}") for n in names):
                    return True
                if self.parent and source == self.parent and self._from_parent(names):
                    return True
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called not in _DYNAMIC_IMPORTS:
                    continue
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    return True  # a name computed at run time: cannot be told
                if self._hits(arg.value):
                    return True
                parent_bound |= bool(self.parent) and arg.value == self.parent
            elif isinstance(node, ast.Attribute):
                attributes.add(node.attr)
        return parent_bound and self._from_parent(attributes)


def _ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    for n in sorted(numbers):
        if parts and parts[-1].split("-")[-1] == str(n - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ",".join(parts)


__all__ = ["CONFIG_FILES", "CoverageMap", "MypyDaemon", "PatchCheck", "Verifier"]


def cmap_text(repo: Path, commit: str, path: str) -> str:
    """The file as it was where the coverage map was recorded."""
    shown = _git(repo, "show", f"{commit}:{path}")
    return shown.stdout if shown.returncode == 0 else ""


def _module_level(text: str, lines: set[int]) -> set[int]:
    """The lines among `lines` that run when the module is imported: outside every function
    body (module and class bodies, def lines and decorators)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0].lineno
            last = node.end_lineno or first
            inside |= set(range(first, last + 1))
    executable: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            executable.add(node.lineno)
    return {n for n in lines if n not in inside and n in executable}


class _Bodiless(ast.NodeTransformer):
    """A module with every function reduced to its name and decorators: what runs at import,
    but for signatures."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._strip(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._strip(node)

    def _strip(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.body = [ast.Pass()]
        node.args = ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        )
        node.returns = None
        node.type_comment = None
        return node


# Expressions that can do more than compute a value when a default or annotation is evaluated.
_ACTIONS = (ast.Call, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)


def _signature_only(old: str, new: str) -> bool:
    """Whether `new` runs the same code as `old` at import but for function signatures, and the
    signatures it changed call nothing: a new default that calls something could change the
    module's state for every user of it."""
    try:
        before, after = ast.parse(old), ast.parse(new)
        bare_before, bare_after = (
            _Bodiless().visit(ast.parse(old)),
            _Bodiless().visit(ast.parse(new)),
        )
    except SyntaxError:
        return False
    if ast.dump(bare_before) != ast.dump(bare_after):
        return False
    for was, now in zip(_import_functions(before), _import_functions(after), strict=True):
        sig_was = ast.dump(was.args) + ast.dump(was.returns or ast.Pass())
        sig_now = ast.dump(now.args) + ast.dump(now.returns or ast.Pass())
        if sig_was != sig_now and any(
            isinstance(n, _ACTIONS)
            for part in (now.args, now.returns)
            if part is not None
            for n in ast.walk(part)
        ):
            return False
    return True


def _import_functions(
    tree: ast.AST,
) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions defined when the module is imported (module and class level, inside if and
    try too), in source order; not those nested in a function."""
    out: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(node)
        elif isinstance(node, ast.stmt | ast.excepthandler | ast.match_case):
            out += _import_functions(node)
    return out


def _body_tests(text: str, line: int, by_line: dict[int, frozenset[str]]) -> set[str]:
    """The tests that ran the body of the function whose signature (decorators to the line
    before its body) holds `line`; empty when none does."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    for fn in _import_functions(tree):
        body = fn.body[0].lineno
        if _first_line(fn) <= line < body:
            out: set[str] = set()
            for n in range(body, (fn.end_lineno or body) + 1):
                out |= by_line.get(n, frozenset())
            out.discard("")
            return out
    return set()
