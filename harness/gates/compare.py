"""Before/after verdict: the list of regressions a change caused.

Rules (policy `[regression]`):
- test_broken: a test that passed before fails or errors after (in setup, call or teardown).
  Newly failing tests are re-run `rerun_failed` times; one that passes on any re-run is
  returned with `flaky=True`.
- test_skipped: a test that passed before is skipped or xfailed after: a skip or xfail mark, a
  `pytest.skip()`, a skip condition the change made true. Re-run like test_broken. An xpassed
  test ran and passed: not a regression (a strict xpass is a failure, so test_broken).
- test_missing: a test that passed before is not in the after run at all (deleted, renamed,
  no longer collected). Only tests that passed before are judged: a test that is new after the
  change is never a regression.
- coverage_drop: more statements/branches are uncovered than before AND the covered share,
  computed exactly from coverage's counts (not its rounded or float percent), fell by more than
  `coverage_tolerance` points. Deleting covered code (an unused import) lowers the percentage
  without uncovering anything; that is not a regression.
- new_finding: a ruff/mypy/bandit/secrets finding that is not in the earlier result (see
  `new_findings`). Same rule, same file and same subject is the same finding, whatever its line
  now reads and wherever it moved; findings are a multiset (two identical before and three after
  is one new one); a message that names nothing (E501, B101, SIM115) is followed by its place,
  so a fixed one here and a new one elsewhere is still new.
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
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
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
_NOT_RUN = ("skipped", "xfailed")


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
    passed_before = sorted(t.id for t in b.tests if t.verdict == "passed")
    after_by_id = {t.id: t for t in a.tests}
    missing = [tid for tid in passed_before if tid not in after_by_id]
    # An xpass ran and passed (a strict one is "failed" already): it is not worse.
    worse = [
        tid
        for tid in passed_before
        if tid in after_by_id and after_by_id[tid].verdict in (*_BAD, *_NOT_RUN)
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
    rule = "test_skipped" if t.verdict in _NOT_RUN else "test_broken"
    detail = f": {t.message}" if t.message else ""
    how = "passed, then errored in teardown," if t.verdict != t.outcome else t.verdict
    message = (
        f"{t.id} passed before, {how} after, then passed on a re-run (flaky)"
        if is_flaky
        else f"{t.id} passed before, {how} after{detail}"
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
    was, now = b.coverage, a.coverage
    if now.uncovered <= was.uncovered:
        return []  # nothing newly uncovered: deleted covered code, moved lines, comments
    was_pc, now_pc = was.exact, now.exact
    if was_pc is None or now_pc is None:
        return []  # nothing measured on one side: no uncovered line either
    # Exact fractions: the floats coverage prints, and rounding them, are not the verdict.
    drop = was_pc - now_pc
    if drop <= Fraction(str(rules.coverage_tolerance)):
        return []
    return [
        Regression(
            gate=a.gate,
            rule="coverage_drop",
            subject="coverage",
            message=f"coverage fell {float(was_pc):.2f}% -> {float(now_pc):.2f}% "
            f"(-{float(drop):.3g} points, tolerance {rules.coverage_tolerance:g}; "
            f"uncovered lines and branches {was.uncovered} -> {now.uncovered})",
        )
    ]


def _loose(f: Finding) -> str:
    return fingerprint(f.gate, f.path, f.code, f.message)


# How far an edited line's finding may be from where its old line maps to and still be the same
# finding (an in-place edit that wraps or joins a line or two).
_EDIT_REACH = 2

# A message that names its subject (F401's `os`, ruff's `typing.Dict`, mypy's "Optional[int]").
_NAMES_SOMETHING = re.compile(r"`[^`]+`|\"[^\"]+\"|'[^']+'")


def names_its_subject(f: Finding) -> bool:
    return _NAMES_SOMETHING.search(f.message) is not None


def new_findings(before: Sequence[Finding], after: Sequence[Finding]) -> list[Finding]:
    """Findings in `after` that are not in `before`: same rule, same file and same subject is
    the same finding, wherever its line went and whatever its line now reads.

    Findings are counted as a multiset: two identical findings before and three after is one
    new finding. A finding's subject is what its message names (F401's `os`); a message that
    names nothing (E501, B101, SIM115) has only its place, so its line is followed through the
    file by anchors (see `_FileMatch`): a fixed one here and a new one elsewhere stay apart.
    """
    by_path: dict[str, tuple[list[Finding], list[Finding]]] = {}
    for f in before:
        by_path.setdefault(f.path, ([], []))[0].append(f)
    for f in after:
        by_path.setdefault(f.path, ([], []))[1].append(f)
    fresh: set[int] = set()
    for bs, as_ in by_path.values():
        fresh |= _FileMatch(bs, as_).unmatched_after()
    return [f for f in after if id(f) in fresh]


class _FileMatch:
    """Pairs one file's findings before and after.

    Anchors come first: findings whose exact identity (rule, message and source line) occurs
    once on each side, kept where they agree on order (a patience diff over findings). They
    split the file into gaps. Then, in order of evidence:
    1. the same identity within the same gap, by the line shift most such pairs agree on
       (identical lines keep their own partner, not the nearest look-alike);
    2. the same rule and message within the same gap, at a shift that anchors or step 1
       established for that gap, give or take `_EDIT_REACH`: a line whose text a fix rewrote;
    3. the same identity anywhere (a function moved past others), the nearest first;
    4. the same rule and message anywhere, when that message names its subject (an import
       sorted elsewhere and trimmed).
    What is left after is new. Findings without a line (whole-file ones) are matched on
    identity, then on rule and message.
    """

    def __init__(self, before: list[Finding], after: list[Finding]) -> None:
        self.before, self.after = before, after
        self.pairs: dict[int, int] = {}  # after index -> before index
        self.taken: set[int] = set()  # before indexes
        self.bl: list[int] = []  # anchors' lines before and after, both ascending
        self.al: list[int] = []
        self._anchor()

    def _pair(self, i: int, j: int) -> None:
        self.pairs[j] = i
        self.taken.add(i)

    def _anchor(self) -> None:
        nb = Counter(f.fingerprint for f in self.before)
        na = Counter(f.fingerprint for f in self.after)
        where_b = {f.fingerprint: i for i, f in enumerate(self.before) if f.line is not None}
        cands = sorted(
            (self.before[where_b[f.fingerprint]].line or 0, f.line, where_b[f.fingerprint], j)
            for j, f in enumerate(self.after)
            if f.line is not None
            and f.fingerprint in where_b
            and nb[f.fingerprint] == 1
            and na[f.fingerprint] == 1
        )
        for b_line, a_line, i, j in _increasing(cands):
            self._pair(i, j)
            self.bl.append(b_line)
            self.al.append(a_line)

    def _gap(self, lines: list[int], line: int) -> tuple[int, int]:
        return bisect_left(lines, line), bisect_right(lines, line)

    def _same_gap(self, b_line: int, a_line: int) -> bool:
        blo, bhi = self._gap(self.bl, b_line)
        alo, ahi = self._gap(self.al, a_line)
        return max(blo, alo) <= min(bhi, ahi)

    def _open(self, lined: bool) -> tuple[list[int], list[int]]:
        """Unpaired indexes before and after, of findings with (or without) a line."""
        return (
            [
                i
                for i, f in enumerate(self.before)
                if i not in self.taken and (f.line is not None) == lined
            ],
            [
                j
                for j, f in enumerate(self.after)
                if j not in self.pairs and (f.line is not None) == lined
            ],
        )

    def _line(self, f: Finding) -> int:
        return f.line or 0

    def _exact_by_shift(self) -> None:
        bs, as_ = self._open(lined=True)
        by_key: dict[str, list[int]] = {}
        for i in bs:
            by_key.setdefault(self.before[i].fingerprint, []).append(i)
        cands: list[tuple[int, int, int]] = []  # (shift, before, after)
        for j in as_:
            a_line = self._line(self.after[j])
            for i in by_key.get(self.after[j].fingerprint, []):
                b_line = self._line(self.before[i])
                if self._same_gap(b_line, a_line):
                    cands.append((a_line - b_line, i, j))
        support = Counter(shift for shift, _, _ in cands)
        # The shift most pairs agree on first; of equals, the smaller move.
        for _, i, j in sorted(cands, key=lambda c: (-support[c[0]], abs(c[0]), c[0], c[1])):
            if i not in self.taken and j not in self.pairs:
                self._pair(i, j)

    def _shifts_near(self, a_line: int) -> set[int]:
        """Line shifts known for the gap `a_line` is in: its anchors' and its exact pairs'."""
        lo, hi = self._gap(self.al, a_line)
        shifts = {self.al[lo - 1] - self.bl[lo - 1]} if lo > 0 else {0}
        if hi < len(self.al):
            shifts.add(self.al[hi] - self.bl[hi])
        for j, i in self.pairs.items():
            a, b = self.after[j], self.before[i]
            if (
                a.fingerprint == b.fingerprint
                and a.line is not None
                and b.line is not None
                and self._gap(self.al, a.line) == (lo, hi)
                and self._same_gap(b.line, a_line)
            ):
                shifts.add(a.line - b.line)
        return shifts

    def _loose_in_gap(self) -> None:
        bs, as_ = self._open(lined=True)
        for j in as_:
            a = self.after[j]
            a_line = self._line(a)
            shifts = self._shifts_near(a_line)
            scored = []
            for i in bs:
                b = self.before[i]
                if i in self.taken or _loose(b) != _loose(a):
                    continue
                b_line = self._line(b)
                distance = min(abs(a_line - shift - b_line) for shift in shifts)
                if distance <= _EDIT_REACH and self._same_gap(b_line, a_line):
                    scored.append((distance, b_line, i))
            if scored:
                self._pair(min(scored)[2], j)

    def _anywhere(
        self, key: Callable[[Finding], str], when: Callable[[Finding], bool], lined: bool
    ) -> None:
        bs, as_ = self._open(lined=lined)
        for j in as_:
            a = self.after[j]
            if not when(a):
                continue
            options = [
                (abs(self._line(self.before[i]) - self._line(a)), i)
                for i in bs
                if i not in self.taken and key(self.before[i]) == key(a)
            ]
            if options:
                self._pair(min(options)[1], j)

    def unmatched_after(self) -> set[int]:
        def exact(f: Finding) -> str:
            return f.fingerprint

        self._exact_by_shift()
        self._loose_in_gap()
        self._anywhere(exact, lambda f: True, lined=True)
        self._anywhere(_loose, names_its_subject, lined=True)
        self._anywhere(exact, lambda f: True, lined=False)
        self._anywhere(_loose, lambda f: True, lined=False)
        return {id(a) for j, a in enumerate(self.after) if j not in self.pairs}


def _increasing(cands: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The longest run of `cands` (sorted by line before) whose lines after never decrease:
    anchors that cross each other cannot all be right, so the fewest are dropped."""
    tails: list[int] = []  # line after ending the best run of each length
    ends: list[int] = []  # index into cands of that run's end
    prev: list[int] = [-1] * len(cands)
    for k, (_, a_line, _, _) in enumerate(cands):
        n = bisect_right(tails, a_line)
        prev[k] = ends[n - 1] if n > 0 else -1
        if n == len(tails):
            tails.append(a_line)
            ends.append(k)
        else:
            tails[n], ends[n] = a_line, k
    out: list[tuple[int, int, int, int]] = []
    k = ends[-1] if ends else -1
    while k >= 0:
        out.append(cands[k])
        k = prev[k]
    return out[::-1]


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
