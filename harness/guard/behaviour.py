"""The behaviour layer: pytest's own collection and outcomes, by test id, before and after a
patch, judged on what pytest did rather than on how the patch is spelt.

It runs on a patch already written to the working tree (the caller restores the tree when it
refuses). Before: the per-test results of the gate run the caller already has (the block's
start in `harness run`, the "gates before" of `harness apply`). After: the suite, as the pytest
gate runs it but without coverage, with the plugin `harness_pytest_report` writing pytest's own
report (harness/gates/pytest_report.py).

A patch that touches tests, a conftest.py or test configuration is judged this way, and so is a
patch to Python source: the test files are then the ones the patch did not touch, run against
the patched code, so a source patch cannot change what the tests check either (make a test skip
itself through the package, call pytest.exit from the code under test). A source patch that
makes a test fail is not this layer's to refuse: that is a regression, which the per-patch
verifier refuses at landing or the gates revert (`loop.verify_patches`).

In `harness run`, where the per-patch verifier (harness/verify.py) checks every patch that
touches no test file, the layer starts no pytest of its own for such a patch
(`check_with_verifier`): it judges the verifier's runs, which load the same plugin. One pytest
run per patch then feeds both verdicts: the tests the verifier's coverage map selects for a
source patch (the whole suite for a conftest.py or configuration), compared by test id. A run
the verifier cut short at a confirmed failure (`-x`) is judged on the tests it ran; a hang is
the verifier's to refuse, within its budget. A patch to test files runs the layer's own suite,
as in `harness apply`.

Refused, each with its rule: a test that passed before and now does not run and pass
(`behaviour.lost_test`, `.deselected`, `.now_skipped`, `.now_xfail`, `.now_failing`); a session
without pytest's closing report (`.no_report`: os._exit, a crash); a session stopped by
pytest.exit (`.interrupted`); an exit status that is not a judged run (5: no tests, 2, 3, 4),
that hides failures (0 with failing tests), or that differs from the session's own
(`.exit_status`); fewer tests than before (`.fewer_tests`). None of these is "could not run":
the run before the patch worked, so what the run after it does is the patch's doing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from harness.gates import pytest as pytest_gate
from harness.gates import pytest_report
from harness.gates.common import run_tool
from harness.gates.models import GateResult, GateStatus, TestCase
from harness.gates.pytest_report import SuiteReport
from harness.gates.runner import context_for, run_tests
from harness.guard.globs import match_any
from harness.guard.models import Layer, LayerRun, Violation
from harness.policy import GuardConfig, Policy
from harness.verify import PatchCheck, TestRun, Verifier

LAYER: Layer = "behaviour"
# Files pytest reads its settings from (the static layer guards their pytest sections; any
# change to them is judged here by what pytest then does).
TEST_CONFIG_FILES = frozenset(
    {
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "pytest.ini",
        ".pytest.ini",
        "pytest.toml",
        ".pytest.toml",
    }
)
_PER_TEST = frozenset(
    f"behaviour.{r}" for r in ("lost_test", "deselected", "now_skipped", "now_xfail", "now_failing")
)
# Test ids named in one violation's message; the rest are counted.
SHOWN = 10

Scope = Literal["tests", "source"]


class BehaviourCheck(BaseModel):
    """The layer's run on one patch: what it ran, and its refusals."""

    layer: LayerRun
    violations: list[Violation] = Field(default_factory=list)
    scope: Scope | None = Field(
        None,
        description="tests: the patch touches tests or their configuration; source: "
        "Python code, judged by the tests it did not touch; None: not run",
    )
    before: dict[str, int] = Field(default_factory=dict, description="outcome counts before")
    after: dict[str, int] = Field(default_factory=dict, description="outcome counts after")
    exit_status: int | None = Field(None, description="pytest's exit status after the patch")
    flaky: list[str] = Field(
        default_factory=list, description="failed after the patch, then passed on a re-run"
    )
    pytest_runs: int = Field(
        0,
        description="pytest processes the layer started itself, re-runs included (0: it judged "
        "the per-patch verifier's run)",
    )

    @property
    def ok(self) -> bool:
        return not self.violations


def scope(paths: Sequence[str], guard: GuardConfig) -> tuple[Scope | None, str]:
    """Whether the patch's files can change what the tests check, and how to say so."""
    for p in paths:
        name = PurePosixPath(p).name
        if match_any(p, guard.test_globs) or name == "conftest.py" or name in TEST_CONFIG_FILES:
            return "tests", f"{p} decides what the tests check"
    code = [p for p in paths if p.endswith(".py")]
    if code:
        return "source", f"the tests the patch did not touch, run against the patched {code[0]}"
    return None, "the patch changes no Python code, test or test configuration"


def run_suite(
    repo: Path, policy: Policy, ids: Sequence[str] | None = None
) -> tuple[SuiteReport, int | None, str]:
    """The suite as the pytest gate runs it (or only the tests `ids`), without coverage:
    pytest's own report, the process's exit status (None: it did not run: a timeout, no
    interpreter), and its output's tail."""
    cfg = pytest_gate.pytest_config(policy.gates.pytest)
    ctx = context_for(repo, policy, cfg)
    with tempfile.TemporaryDirectory(prefix="harness-behaviour-") as tmp_name:
        tmp = Path(tmp_name)
        report_file = tmp / pytest_report.REPORT_FILE
        argv = pytest_gate.base_argv(ctx.python, tmp / "junit.xml")
        argv += pytest_report.plugin_args(report_file)
        argv += [*cfg.args, "--", *ids] if ids is not None else [*cfg.args, *cfg.paths]
        env = pytest_gate.tool_env(ctx, tmp, first=[str(pytest_report.PLUGIN_DIR)])
        proc = run_tool(argv, ctx, env=env)
        try:
            report = pytest_report.read_report(report_file, ctx.repo)
        except ValueError as exc:
            # The report is written from inside the target's process: a patch can scribble
            # on it, and what it then says is not pytest's word.
            report = SuiteReport(interrupted=f"the report was tampered with: {exc}")
    returncode = None if proc.missing or proc.timed_out else proc.returncode
    tail = "timed out" if proc.timed_out else proc.tail
    return report, returncode, tail


def _v(rule: str, message: str, path: str | None = None) -> Violation:
    return Violation(rule=f"behaviour.{rule}", layer=LAYER, path=path, message=message)


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN])
    return shown + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def _file(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def judge(
    before: GateResult,
    after: SuiteReport,
    returncode: int | None,
    tail: str = "",
    flaky: set[str] | None = None,
) -> list[Violation]:
    """The refusals: `before` is the gate's result on the tree without the patch; `flaky`
    tests failed after it and passed when re-run, and are not held against it."""
    if returncode is None:
        return [_v("no_report", f"pytest did not finish after the patch: {tail}")]
    if not after.started or not after.finished:
        why = after.interrupted or (
            "something the tests run ended the process (os._exit, a crash, a kill)"
        )
        return [
            _v(
                "no_report",
                f"pytest exited {returncode} without finishing its session (no closing report): "
                + why,
            )
        ]
    broken = [t.id for t in after.collect_errors]
    if after.collection_failed and after.interrupted is None:
        # Nothing ran: what each test would do now is unknown, so one refusal says why.
        return [
            _v(
                "now_failing",
                f"pytest could not collect {_ids(broken or ['the tests'])} after the patch, "
                f"so it ran no test (exit {returncode})",
                _file(broken[0]) if broken else None,
            )
        ]
    out: list[Violation] = []
    if after.interrupted is not None:
        out.append(
            _v(
                "interrupted",
                f"the test session was stopped ({after.interrupted}): pytest.exit() or an "
                "interrupt ends the run before every test has run",
            )
        )
    bad = [t.id for t in after.tests if t.verdict in ("failed", "error")]
    if returncode != after.exitstatus:
        out.append(
            _v(
                "exit_status",
                f"pytest's session ended with status {after.exitstatus} but the process "
                f"exited {returncode}: something changed the exit status after pytest finished",
            )
        )
    elif returncode == 5:
        out.append(_v("exit_status", "pytest collected no tests after the patch (exit 5)"))
    elif returncode not in (0, 1):
        out.append(
            _v("exit_status", f"pytest exited {returncode} after the patch (not a judged run)")
        )
    elif returncode == 0 and (bad or after.collect_errors):
        failing = bad + [t.id for t in after.collect_errors]
        out.append(
            _v("exit_status", f"pytest exited 0 though {_ids(failing)} failed: it hides failures")
        )
    out += _tests(before, after, flaky or set())
    ran_before = len(before.tests)
    ran_after = len(after.tests) + len(after.collect_errors) + len(after.collect_skipped)
    # Only when no test id says what happened (a test that failed before is gone).
    if ran_after < ran_before and not any(v.rule in _PER_TEST for v in out):
        out.append(
            _v(
                "fewer_tests",
                f"pytest reports {ran_after} test(s) after the patch, {ran_before} before",
            )
        )
    return out


def _under(test_id: str, collectors: list[str]) -> bool:
    """Whether the test belongs to one of these modules or packages (collector node ids)."""
    file = _file(test_id)
    return any(file == c or file.startswith(c.rstrip("/") + "/") for c in collectors)


def _tests(before: GateResult, after: SuiteReport, flaky: set[str]) -> list[Violation]:
    """A test that passed before and does not run and pass after, grouped by what it does now."""
    now = after.by_id()
    deselected = set(after.deselected)
    broken = [t.id for t in after.collect_errors]
    skipped = [t.id for t in after.collect_skipped]
    groups: dict[str, list[str]] = {}
    for t in before.tests:
        if t.verdict != "passed" or t.id in flaky:
            continue
        a = now.get(t.id)
        if a is None:
            if t.id in deselected:
                rule = "deselected"
            elif _under(t.id, broken):
                rule = "now_failing"
            elif _under(t.id, skipped):
                rule = "now_skipped"
            else:
                rule = "lost_test"
        elif a.verdict == "passed":
            continue
        elif a.verdict == "skipped":
            rule = "now_skipped"
        elif a.verdict in ("xfailed", "xpassed"):
            rule = "now_xfail"
        else:
            rule = "now_failing"
        groups.setdefault(rule, []).append(t.id)
    said = {
        "lost_test": "passed before the patch and pytest no longer collects {ids} (deleted, "
        "renamed, hidden by __test__ = False, an empty parametrize, or its run was cut short)",
        "deselected": "passed before the patch and {ids} is now deselected",
        "now_skipped": "passed before the patch and {ids} is now skipped",
        "now_xfail": "passed before the patch and {ids} is now marked as expected to fail "
        "(xfail): a failure would no longer count",
        "now_failing": "passed before the patch and {ids} now fails or errors",
    }
    return [
        _v(rule, said[rule].format(ids=_ids(ids)), _file(ids[0])) for rule, ids in groups.items()
    ]


def check_behaviour(
    repo: Path,
    policy: Policy,
    paths: Sequence[str],
    baseline: GateResult | None,
    guard: GuardConfig | None = None,
) -> BehaviourCheck:
    """Run the layer on the patch written to `repo` (changed files `paths`), with a pytest run
    of its own over the whole suite."""
    started = time.monotonic()
    kind, why = scope(paths, guard or policy.guard)
    if kind is None:
        return _skipped(why)
    unusable = _unusable(policy, baseline)
    if unusable is not None or baseline is None:
        return _skipped(unusable or "")
    written = _contents(repo, paths)
    after, returncode, tail = run_suite(repo, policy)
    _restore(repo, written)
    found = judge(baseline, after, returncode, tail)
    if kind == "source":
        found = _not_failing(found)
    flaky, reruns = _rerun_failing(repo, policy, baseline, after, found)
    if flaky:
        found = judge(baseline, after, returncode, tail, flaky=set(flaky))
    return _checked(
        why, started, found, kind, baseline, after.tests, after, returncode, flaky, 1 + reruns
    )


def check_with_verifier(
    repo: Path,
    policy: Policy,
    paths: Sequence[str],
    baseline: GateResult | None,
    verifier: Verifier,
    guard: GuardConfig | None = None,
) -> tuple[BehaviourCheck, PatchCheck]:
    """The layer and the per-patch verifier on one patch, with one pytest run: the verifier's
    check (its selection, its re-runs, mypy beside it), whose runs the layer then judges (see
    the module docstring). For a patch that touches no test file; the caller records and acts
    on both verdicts."""
    started = time.monotonic()
    kind, why = scope(paths, guard or policy.guard)
    written = _contents(repo, paths)
    check = verifier.check(list(paths))
    _restore(repo, written)
    if kind is None:
        return _skipped(why), check
    unusable = _unusable(policy, baseline)
    if unusable is not None or baseline is None:
        return _skipped(unusable or ""), check
    runs = [r for r in verifier.runs if not r.timed_out]
    if not runs:
        return _skipped(f"the per-patch check ran no tests: {check.why}"), check
    ids: set[str] | None = set()
    for run in runs:
        ids = None if ids is None or run.ids is None else ids | _attempted(run)
    if ids is not None:
        why += f": the {len(ids)} test(s) the per-patch check ran"
        baseline = baseline.model_copy(update={"tests": [t for t in baseline.tests if t.id in ids]})
    flaky = set(check.flaky)
    found: list[Violation] = []
    for run in runs:
        judged = baseline
        if run.ids is not None:
            mine = _attempted(run)
            judged = baseline.model_copy(
                update={"tests": [t for t in baseline.tests if t.id in mine]}
            )
        found += [
            v for v in judge(judged, run.report, run.returncode, run.tail, flaky) if v not in found
        ]
    if kind == "source":
        found = _not_failing(found)
    tests = [t for run in runs for t in run.report.tests]
    last = runs[-1]
    why += " (judged on the per-patch check's run)"
    return (
        _checked(
            why,
            started,
            found,
            kind,
            baseline,
            tests,
            last.report,
            last.returncode,
            sorted(flaky),
            0,
        ),
        check,
    )


def _attempted(run: TestRun) -> set[str]:
    """The ids a run of chosen tests tried: those pytest left unrun after a failure (`-x`)
    were not, while an id it never collected was (and is lost)."""
    asked = set(run.ids or [])
    reported = {t.id for t in run.report.tests}
    if any(t.verdict in ("failed", "error") for t in run.report.tests):
        asked -= set(run.report.collected) - reported
    return asked


def _skipped(reason: str) -> BehaviourCheck:
    return BehaviourCheck(layer=LayerRun(layer=LAYER, ran=False, why=reason))


def _unusable(policy: Policy, baseline: GateResult | None) -> str | None:
    """Why there is no run before the patch to compare with, if there is none."""
    if not policy.gates.pytest.enabled or baseline is None:
        return "pytest is not among the gates: there is no run to compare with"
    if baseline.status == GateStatus.ERROR:
        return f"pytest could not run before the patch: {baseline.reason}"
    return None


def _not_failing(found: list[Violation]) -> list[Violation]:
    """A source patch that breaks a test is a regression, not a change of what the tests
    check: the per-patch verifier refuses it, or the gates revert it (verify_patches)."""
    return [v for v in found if v.rule != "behaviour.now_failing"]


def _checked(
    why: str,
    started: float,
    found: list[Violation],
    kind: Scope,
    baseline: GateResult,
    tests: list[TestCase],
    report: SuiteReport,
    returncode: int | None,
    flaky: list[str],
    runs: int,
) -> BehaviourCheck:
    counts = GateResult(gate="pytest", status=GateStatus.PASSED, tool="pytest", tests=tests)
    return BehaviourCheck(
        layer=LayerRun(layer=LAYER, ran=True, why=why, seconds=time.monotonic() - started),
        violations=found,
        scope=kind,
        before=baseline.counts(),
        after=counts.counts() | {"deselected": len(report.deselected)},
        exit_status=returncode,
        flaky=flaky,
        pytest_runs=runs,
    )


def _contents(repo: Path, paths: Sequence[str]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in paths:
        full = repo / p
        out[p] = full.read_bytes() if full.is_file() and not full.is_symlink() else None
    return out


def _restore(repo: Path, written: dict[str, bytes | None]) -> None:
    """Put the patch's files back as they were written: a suite that rewrites one (a fixture
    regenerated by a test) must not change what the later checks, and the commit, see."""
    for p, data in _contents(repo, list(written)).items():
        if data != written[p]:
            full = repo / p
            if written[p] is None:
                full.unlink(missing_ok=True)
            else:
                full.write_bytes(written[p] or b"")


def _rerun_failing(
    repo: Path, policy: Policy, before: GateResult, after: SuiteReport, found: list[Violation]
) -> tuple[list[str], int]:
    """Tests that newly failed and pass when re-run: timing, not the patch. Only when failures
    are all there is to refuse; and only failures are re-run: a skip or an xfail mark does not
    come and go with timing, and a re-run through JUnit would read an xpass as a pass.
    Returns them, and how many pytest runs that took."""
    if not found or any(v.rule != "behaviour.now_failing" for v in found):
        return [], 0
    passed = {t.id for t in before.tests if t.verdict == "passed"}
    ids = [t.id for t in after.tests if t.id in passed and t.verdict in ("failed", "error")]
    flaky: list[str] = []
    runs = 0
    for _ in range(policy.regression.rerun_failed):
        if not ids:
            break
        runs += 1
        outcomes = run_tests(repo, policy, ids)
        flaky += [t for t in ids if outcomes.get(t) == "passed"]
        ids = [t for t in ids if outcomes.get(t) != "passed"]
    return flaky, runs
