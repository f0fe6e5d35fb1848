"""What a run reports: block outcomes, the run summary, and progress-log entries."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.errors import ExitCode
from harness.gates.models import Regression

BlockStatus = Literal[
    "goal_met",
    "nothing_left",
    "iteration_limit",
    "regression",
    "model_error",
    "provider_error",
    "gate_error",
]


class Revert(BaseModel):
    """One change taken out of the branch, and why."""

    sha: str = Field(description="the reverted commit")
    title: str = Field(description="its subject")
    patch_id: str = Field("", description="its change without where (gitutil.change_key)")
    because: list[str] = Field(description="the regressions it caused, one line each")
    how: str = Field(description="culprit | with_culprit | contract (no culprit isolated)")


class BlockOutcome(BaseModel):
    number: int
    title: str
    gates: list[str]
    status: BlockStatus
    iterations: int = 0
    commits: list[str] = Field(default_factory=list, description="kept patch commits")
    reverted: list[str] = Field(
        default_factory=list, description="commits reverted for regressions"
    )
    rejected: int = Field(0, description="patches refused by the guard or by checks")
    cannot_do: list[str] = Field(default_factory=list)
    regressions: list[Regression] = Field(default_factory=list)
    reverts: list[Revert] = Field(
        default_factory=list, description="what was reverted, and the regression that caused it"
    )
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)


class RunSummary(BaseModel):
    run_id: str
    run_dir: str
    repo: str
    branch: str
    base_commit: str
    head_commit: str
    provider: str
    model: str
    blocks: list[BlockOutcome]
    summary: dict[str, Any] = Field(description="the STEPS script's output JSON keys")
    cost_usd: float = 0.0
    goals_met: bool = False
    stopped: str | None = Field(None, description="why the run stopped early, if it did")

    def report(self) -> dict[str, Any]:
        """summary.json and `--json`: the STEPS script's output keys at the top level (as
        `harness gates --json` has them), then everything about the run."""
        return {**seed_keys(self.summary), **self.model_dump(mode="json")}

    @property
    def exit_code(self) -> int:
        if any(b.status == "gate_error" for b in self.blocks):
            return ExitCode.USAGE  # a gate that could not run: nothing could be judged
        if self.stopped:
            return ExitCode.PROVIDER
        return ExitCode.OK if self.goals_met else ExitCode.FAILED


SEED_KEYS = (
    "ruff_stable_ok",
    "mypy_ok",
    "pytest",
    "coverage_stable",
    "lane_guard_ok",
    "bandit_ok",
    "gitleaks_ok",
)


def seed_keys(summary: dict[str, Any]) -> dict[str, Any]:
    """The STEPS script's output keys only (no hashes: the secrets scan would flag them)."""
    return {k: summary[k] for k in SEED_KEYS if k in summary}


def _measure(summary: dict[str, Any], gate: str) -> str:
    entry = summary.get("gates", {}).get("coverage" if gate == "pytest" else gate)
    if not isinstance(entry, dict):
        return "?"
    if entry.get("status") == "error":
        return "error"
    found = entry.get("findings")
    if isinstance(found, dict) and "percent" in found:
        percent = found["percent"]
        return f"{percent:.1f}%" if isinstance(percent, int | float) else "?"
    return "?" if found is None else str(found)


def deltas(block: BlockOutcome) -> str:
    """`ruff 110 -> 28, coverage 43.0% -> 43.0%` for the gates that judge the block."""
    parts = []
    for gate in block.gates:
        name = "coverage" if gate == "pytest" else gate
        before, after = _measure(block.before, gate), _measure(block.after, gate)
        parts.append(f"{name} {before} -> {after}")
    return ", ".join(parts)


def progress_entry(when: str, number: int, title: str, out: BlockOutcome) -> str:
    """One block's entry for the STEPS script's progress log (markdown)."""
    entry = (
        f"\n## {when}: harness block {number}, {title}\n\n"
        f"- status: {out.status}; iterations: {out.iterations}\n"
        f"- commits kept: {len(out.commits)}; reverted: {len(out.reverted)}; "
        f"patches rejected: {out.rejected}\n"
        f"- before: {json.dumps(seed_keys(out.before))}\n"
        f"- after: {json.dumps(seed_keys(out.after))}\n"
    )
    if out.gates:
        entry += f"- gates: {deltas(out)}\n"
    entry += "".join(
        f"- reverted {r.sha[:10]} ({r.title}): {'; '.join(r.because[:3])}\n" for r in out.reverts
    )
    return entry + "".join(f"- not attempted: {c}\n" for c in out.cannot_do)
