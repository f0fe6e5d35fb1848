"""The seed's summary JSON (STEPS_4b "Output JSON") plus a `gates` object with every detail.

A seed key whose gate did not run is null: "not checked" is not "ok".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.gates.models import Coverage, GateResult, GateRun, GateStatus

_SEED_OK = {
    "ruff_stable_ok": "ruff",
    "mypy_ok": "mypy",
    "lane_guard_ok": "imports",
    "bandit_ok": "bandit",
    "gitleaks_ok": "secrets",
}


def coverage_display(percent: float) -> str:
    """Whole percent the way coverage shows it: never 100% unless complete, never 0% unless none."""
    if 0 < percent < 1:
        return "1%"
    if 99 < percent < 100:
        return "99%"
    return f"{round(percent)}%"


def _ok(run: GateRun, gate: str) -> bool | None:
    r = run.results.get(gate)
    return None if r is None else r.status == GateStatus.PASSED


def _details(r: GateResult) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if r.findings:
        d["by_code"] = dict(Counter(f.code for f in r.findings).most_common())
        d["by_file"] = dict(Counter(f.path for f in r.findings).most_common())
        if r.gate == "bandit":
            d["by_severity"] = dict(Counter(f.severity or "UNDEFINED" for f in r.findings))
            d["by_confidence"] = dict(Counter(f.confidence or "UNDEFINED" for f in r.findings))
    if r.tests:
        d["not_passing"] = [
            {
                "id": t.id,
                "outcome": t.outcome,
                "teardown_error": t.teardown_error,
                "message": t.message,
            }
            for t in r.tests
            if t.outcome in ("failed", "error") or t.teardown_error
        ]
    if r.contracts:
        d["kept"] = [c.name for c in r.contracts if c.kept]
        d["broken"] = [c.name for c in r.contracts if not c.kept]
    if r.command:
        d["command"] = r.command
    if r.exit_code is not None:
        d["exit_code"] = r.exit_code
    return d


def _entry(r: GateResult) -> dict[str, Any]:
    findings: Any
    if r.gate == "pytest":
        findings = r.counts()
    elif r.gate == "imports":
        findings = sum(1 for c in r.contracts if not c.kept)
    else:
        findings = len(r.findings)
    return {
        "status": r.status.value,
        "seconds": round(r.seconds, 3),
        "findings": findings,
        "tool": r.tool,
        "tool_version": r.tool_version,
        "reason": r.reason,
        "cached": r.cached,
        "details": _details(r),
    }


def _coverage_entry(r: GateResult, cov: Coverage | None) -> dict[str, Any]:
    if cov is None:
        status = GateStatus.ERROR
    elif r.status == GateStatus.FAILED and r.reason and "coverage" in r.reason:
        status = GateStatus.FAILED
    else:
        status = GateStatus.PASSED
    return {
        "status": status.value,
        "seconds": round(r.seconds, 3),
        "findings": {"percent": round(cov.percent, 2) if cov else None},
        "tool": "coverage",
        "tool_version": r.tool_version,
        "reason": None if cov else (r.reason or "coverage was not measured"),
        "cached": r.cached,
        "details": {
            "covered_lines": cov.covered_lines,
            "num_statements": cov.num_statements,
            "covered_branches": cov.covered_branches,
            "num_branches": cov.num_branches,
            "per_file": {k: round(v, 2) for k, v in sorted(cov.per_file.items())},
        }
        if cov
        else {},
    }


def seed_summary(run: GateRun) -> dict[str, Any]:
    out: dict[str, Any] = {key: _ok(run, gate) for key, gate in list(_SEED_OK.items())[:2]}
    pytest_result = run.results.get("pytest")
    out["pytest"] = pytest_result.counts() if pytest_result is not None else None
    cov = pytest_result.coverage if pytest_result is not None else None
    out["coverage_stable"] = coverage_display(cov.percent) if cov is not None else None
    for key, gate in list(_SEED_OK.items())[2:]:
        out[key] = _ok(run, gate)
    gates: dict[str, Any] = {}
    for name, r in run.results.items():
        gates[name] = _entry(r)
        if name == "pytest" and (
            r.coverage is not None or any(a.startswith("--cov=") for a in r.command)
        ):
            gates["coverage"] = _coverage_entry(r, r.coverage)
    out["gates"] = gates
    out["tree"] = run.tree
    out["seconds"] = round(run.seconds, 3)
    return out
