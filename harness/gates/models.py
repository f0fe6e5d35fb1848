"""Typed gate results: what every gate returns and what `compare` reads."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from fractions import Fraction

from pydantic import BaseModel, Field


class GateStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the gate could not run: never a pass


_NUM = re.compile(r"\b\d+\b")
_WS = re.compile(r"\s+")


def fingerprint(gate: str, path: str, code: str, message: str, context: str = "") -> str:
    """Stable across line shifts: path + code + normalized message/context, no line number."""
    norm_msg = _WS.sub(" ", _NUM.sub("N", message)).strip()
    norm_ctx = _WS.sub(" ", context).strip()
    raw = "\x1f".join((gate, path.replace("\\", "/"), code, norm_msg, norm_ctx))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


class Finding(BaseModel):
    gate: str
    code: str = Field(description="rule id: E501, arg-type, B101, a secret type, ...")
    path: str = Field(description="repo-relative, forward slashes")
    line: int | None = None
    message: str
    severity: str | None = None
    confidence: str | None = None
    fingerprint: str = Field(description="identity that survives line shifts")
    context: str | None = Field(None, description="the finding's source line, stripped")
    fix: dict[str, object] | None = Field(None, description="tool's own fix suggestion, if any")


class TestCase(BaseModel):
    __test__ = False  # not a pytest class

    id: str = Field(description="pytest node id, e.g. tests/test_x.py::test_y")
    outcome: str = Field(
        description="the test's own outcome as pytest counts it: passed | failed | error (in "
        "setup, or not collected) | skipped | xfailed | xpassed (a strict xpass is failed)"
    )
    teardown_error: bool = Field(
        False, description="its teardown raised too: pytest counts that as one more error"
    )
    message: str | None = None
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        """The outcome a regression is judged on: a teardown that raises spoils a pass."""
        return "error" if self.teardown_error and self.outcome == "passed" else self.outcome


class Coverage(BaseModel):
    percent: float = Field(description="coverage's own percent_covered, for display")
    per_file: dict[str, float] = Field(default_factory=dict)
    covered_lines: int = 0
    num_statements: int = 0
    num_branches: int = Field(0, description="0 unless branch coverage is measured")
    covered_branches: int = 0
    missing_branches: int = 0

    @property
    def uncovered(self) -> int:
        """Statements and branches not covered: deleting covered code lowers the percent
        without uncovering anything, so regressions are judged on this too."""
        return self.num_statements - self.covered_lines + self.missing_branches

    @property
    def exact(self) -> Fraction | None:
        """Covered share from the counts, as coverage computes its percent but without floats;
        None when there is nothing to measure."""
        total = self.num_statements + self.num_branches
        if total == 0:
            return None
        return Fraction(100 * (self.covered_lines + self.covered_branches), total)


class Contract(BaseModel):
    name: str
    kept: bool
    details: str | None = None


class GateResult(BaseModel):
    gate: str
    status: GateStatus
    seconds: float = 0.0
    reason: str | None = Field(None, description="why the gate failed or could not run")
    tool: str = Field(description="the tool that actually ran (gitleaks vs detect-secrets)")
    tool_version: str | None = None
    command: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    findings: list[Finding] = Field(default_factory=list)
    tests: list[TestCase] = Field(default_factory=list)
    coverage: Coverage | None = None
    contracts: list[Contract] = Field(default_factory=list)
    cached: bool = False

    def counts(self) -> dict[str, int]:
        """Test outcome counts (pytest gate), as pytest's summary line counts them: a test that
        fails and then errors in teardown is one failed and one error."""
        out = dict.fromkeys(COUNT_KEYS, 0)
        for t in self.tests:
            out[_COUNT_KEY.get(t.outcome, "errors")] += 1
            if t.teardown_error:
                out["errors"] += 1
        return out


COUNT_KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")
_COUNT_KEY = {
    "passed": "passed",
    "failed": "failed",
    "error": "errors",
    "skipped": "skipped",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
}


class GateRun(BaseModel):
    """All gates of one snapshot of the target."""

    tree: str = Field(description="git tree hash of the snapshot (working tree as it is)")
    results: dict[str, GateResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status == GateStatus.PASSED for r in self.results.values())


class Regression(BaseModel):
    gate: str
    rule: str = Field(
        description="new_finding | test_broken | test_skipped | test_missing | coverage_drop"
        " | contract_broken | gate_error | command_failed"
    )
    subject: str = Field(description="the finding fingerprint/message, test id, or contract")
    message: str
    flaky: bool = False
