"""Before/after verdict: the list of regressions a change caused.

Rules (policy `[regression]`):
- test_broken: a test that passed before fails or errors after. Newly failing tests are re-run
  `rerun_failed` times; one that passes on any re-run is returned with `flaky=True`.
- test_skipped: a test that passed before is skipped (or xfailed) after: a skip mark, a
  `pytest.skip()`, a skip condition the change made true. Re-run like test_broken.
- test_missing: a test that passed before is not in the after run at all (deleted, renamed,
  no longer collected). Only tests that passed before are judged: a test that is new after the
  change is never a regression.
- coverage_drop: total coverage fell by more than `coverage_tolerance` points AND more
  statements/branches are uncovered than before. Deleting covered code (an unused import) lowers
  the percentage without uncovering anything; that is not a regression.
- new_finding: a ruff/mypy/bandit/secrets finding that is new (see `new_findings`): a multiset
  of fingerprints (two identical findings before and three after is one new finding), where a
  finding whose own line was edited (same file, code and message, different source line) is
  the same finding, not a new one.
- contract_broken: an import contract kept before is broken after.
- gate_error: a gate that ran (passed or failed) before cannot run after.
- command_failed: a plain command gate (a STEPS command that maps onto no gate) that passed
  before fails after.

Flaky tests are reported, never silently forgiven, but they do not demonstrate that the change
broke anything, so they do not count for revert purposes: use `blocking()` to get the
regressions that do.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from pathlib import Path

from harness.gates.models import (
    Finding,
    GateResult,
    GateRun,
    GateStatus,
    Regression,
    TestCase,
    fingerprint,
)
from harness.gates.runner import run_tests
from harness.policy import Policy, RegressionRules

Rerun = Callable[[list[str]], dict[str, str]]

_BAD = ("failed", "error")


def compare(
    before: GateRun,
    after: GateRun,
    rules: RegressionRules,
    *,
    rerun: Rerun | None = None,
) -> list[Regression]:
    out: list[Regression] = []
    for name, b in before.results.items():
        a = after.results.get(name)
        if a is None:
            continue  # not asked about after: nothing to compare
        if a.status == GateStatus.ERROR:
            if b.status != GateStatus.ERROR:
                out.append(
                    Regression(
                        gate=name,
                        rule="gate_error",
                        subject=name,
                        message=f"{name} {b.status.value} before but could not run after: "
                        f"{a.reason or 'error'}",
                    )
                )
            continue
        if b.status == GateStatus.ERROR:
            continue  # no baseline to compare against
        out += _tests(b, a, rules, rerun)
        out += _coverage(b, a, rules)
        if rules.new_findings:
            out += _findings(b, a)
        out += _contracts(b, a)
        if b.tool == "sh" and b.status == GateStatus.PASSED and a.status == GateStatus.FAILED:
            # A plain command gate has nothing finer to compare than its exit code.
            out.append(
                Regression(
                    gate=name,
                    rule="command_failed",
                    subject=name,
                    message=f"{name} passed before and fails after: {a.reason or ''}",
                )
            )
    return out


def blocking(regressions: Sequence[Regression]) -> list[Regression]:
    """The regressions that justify a revert (everything but flaky tests)."""
    return [r for r in regressions if not r.flaky]


def _tests(
    b: GateResult, a: GateResult, rules: RegressionRules, rerun: Rerun | None
) -> list[Regression]:
    # Only tests that passed before are judged: a test new after the change is never a
    # regression, and one already failing or skipped before has nothing left to lose.
    passed_before = sorted(t.id for t in b.tests if t.outcome == "passed")
    after_by_id = {t.id: t for t in a.tests}
    missing = [tid for tid in passed_before if tid not in after_by_id]
    worse = [
        tid
        for tid in passed_before
        if tid in after_by_id and after_by_id[tid].outcome in (*_BAD, "skipped")
    ]
    flaky: set[str] = set()
    pending = list(worse)
    if rerun is not None:
        # A skip can hang on the environment (skipif on a resource) as a failure can on timing.
        for _ in range(rules.rerun_failed):
            if not pending:
                break
            outcomes = rerun(list(pending))
            now_passing = {tid for tid in pending if outcomes.get(tid) == "passed"}
            flaky |= now_passing
            pending = [tid for tid in pending if tid not in now_passing]
    out = [_worse(a.gate, after_by_id[tid], tid in flaky) for tid in worse]
    out += [
        Regression(
            gate=a.gate,
            rule="test_missing",
            subject=tid,
            message=f"{tid} passed before and did not run after (deleted, renamed, or no "
            "longer collected)",
        )
        for tid in missing
    ]
    return out


def _worse(gate: str, t: TestCase, is_flaky: bool) -> Regression:
    rule = "test_skipped" if t.outcome == "skipped" else "test_broken"
    detail = f": {t.message}" if t.message else ""
    message = (
        f"{t.id} passed before, {t.outcome} after, then passed on a re-run (flaky)"
        if is_flaky
        else f"{t.id} passed before, {t.outcome} after{detail}"
    )
    return Regression(gate=gate, rule=rule, subject=t.id, message=message, flaky=is_flaky)


def _coverage(b: GateResult, a: GateResult, rules: RegressionRules) -> list[Regression]:
    if b.coverage is None:
        return []
    if a.coverage is None:
        return [
            Regression(
                gate=a.gate,
                rule="coverage_drop",
                subject="coverage",
                message=f"coverage was {b.coverage.percent:.2f}% before and is not measured after",
            )
        ]
    drop = b.coverage.percent - a.coverage.percent
    # Reports without line counts (older coverage) fall back to the percentage alone.
    counted = b.coverage.num_statements > 0 and a.coverage.num_statements > 0
    uncovered_more = not counted or a.coverage.uncovered > b.coverage.uncovered
    # The epsilon absorbs float noise in coverage's own percentages, not real drops.
    if drop > rules.coverage_tolerance + 1e-9 and uncovered_more:
        return [
            Regression(
                gate=a.gate,
                rule="coverage_drop",
                subject="coverage",
                message=f"coverage fell {b.coverage.percent:.2f}% -> {a.coverage.percent:.2f}% "
                f"(-{drop:.2f} points, tolerance {rules.coverage_tolerance:g})",
            )
        ]
    return []


def _loose(f: Finding) -> str:
    return fingerprint(f.gate, f.path, f.code, f.message)


# How far an edited line's finding may move and still be the same finding (an in-place edit
# that wraps or joins a line or two); anything further is the same finding only if its source
# line is recognisably the same line edited (an import line re-sorted and trimmed).
_EDIT_REACH = 2
_SAME_LINE_RATIO = 0.6


# A message that names what it is about (ruff's `typing.Dict`, mypy's "Optional[int]").
_NAMES_SOMETHING = re.compile(r"`[^`]+`|\"[^\"]+\"|'[^']+'")


def _same(a: Finding, b: Finding) -> bool:
    if a.line is not None and b.line is not None and abs(a.line - b.line) <= _EDIT_REACH:
        return True
    # Further apart, only a message that names its subject can tell a moved, edited line
    # (an import re-sorted and trimmed) from a fixed finding here and a new one there.
    if a.context and b.context and _NAMES_SOMETHING.search(a.message):
        return SequenceMatcher(None, a.context, b.context).ratio() >= _SAME_LINE_RATIO
    return a.line is None and b.line is None


def new_findings(before: Sequence[Finding], after: Sequence[Finding]) -> list[Finding]:
    """Findings in `after` that are not in `before`.

    First exact fingerprints are matched as a multiset. What is left on each side is then
    matched on (path, code, normalised message), but only when it is the same line edited:
    within a couple of lines, or a source line still alike (a partial fix of an import line
    that sorting also moved). Messages alike after number normalisation (E501, B101) on
    different code are a fixed one and a new one, not a move.
    """
    unmatched_after = _beyond(after, Counter(f.fingerprint for f in before))
    gone: dict[str, list[Finding]] = {}
    for f in _beyond(before, Counter(f.fingerprint for f in after)):
        gone.setdefault(_loose(f), []).append(f)
    fresh: list[Finding] = []
    for f in unmatched_after:
        left = gone.get(_loose(f), [])
        same = [i for i, g in enumerate(left) if _same(g, f)]
        if same:
            # The closest one: two edited lines side by side must each keep their own.
            left.pop(min(same, key=lambda i: abs((left[i].line or 0) - (f.line or 0))))
        else:
            fresh.append(f)
    return fresh


def _beyond(findings: Sequence[Finding], other: Counter[str]) -> list[Finding]:
    """The findings whose fingerprint occurs more often here than in `other` (the last ones)."""
    seen: Counter[str] = Counter()
    out = []
    for f in findings:
        seen[f.fingerprint] += 1
        if seen[f.fingerprint] > other[f.fingerprint]:
            out.append(f)
    return out


def _findings(b: GateResult, a: GateResult) -> list[Regression]:
    return [
        Regression(
            gate=a.gate,
            rule="new_finding",
            subject=f.fingerprint,
            message=f"{f.path}:{f.line if f.line is not None else '?'}: {f.code} {f.message}",
        )
        for f in new_findings(b.findings, a.findings)
    ]


def _contracts(b: GateResult, a: GateResult) -> list[Regression]:
    kept_before = {c.name for c in b.contracts if c.kept}
    return [
        Regression(
            gate=a.gate,
            rule="contract_broken",
            subject=c.name,
            message=f"import contract '{c.name}' was kept before and is broken after",
        )
        for c in a.contracts
        if not c.kept and c.name in kept_before
    ]


def make_rerunner(repo: Path, policy: Policy) -> Rerun:
    """A `rerun` for compare(): runs just the given tests in `repo` with the policy's pytest."""

    def rerun(test_ids: list[str]) -> dict[str, str]:
        return run_tests(repo, policy, test_ids)

    return rerun
