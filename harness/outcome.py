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
    "stopped",  # the approver quit (a person supervising, or a replayed decision)
]


class Revert(BaseModel):
    """One change taken out of the branch, and why."""

    sha: str = Field(description="the reverted commit")
    title: str = Field(description="its subject")
    patch_id: str = Field("", description="its change without where (gitutil.change_key)")
    because: list[str] = Field(description="the regressions it caused, one line each")
    how: str = Field(description="culprit | with_culprit | contract (no culprit isolated)")


class FixerCount(BaseModel):
    """What a fixer command would change, measured with its own dry run (`--diff`) at the
    block's start and at its end; lines are counted as the guard counts a patch's."""

    limit: int = Field(description="the block's per-file limit on changed lines")
    start_lines: int = Field(0, description="lines it would change at the block's start")
    start_files: int = 0
    done_lines: int = Field(0, description="of those, the lines no longer pending at the end")
    done_files: int = 0
    left_lines: int = Field(0, description="lines it would still change at the block's end")
    left_files: int = 0
    over_lines: int = Field(0, description="of those, in files over the per-file limit")
    over_files: int = 0
    outside_files: int = Field(0, description="files left that lie outside the block's lanes")
    refused_files: int = Field(
        0, description="files left whose change was refused or reverted earlier in the run"
    )
    error: str | None = Field(None, description="why the dry run could not measure")


class CommandAccount(BaseModel):
    """What became of one command of the block's STEPS text."""

    command: str = Field(description="the command as the script writes it")
    line: int | None = Field(None, description="the script line it was read from")
    how: Literal["gate", "fixer", "not_attempted"] = Field(
        description="gate: run as a gate (or a plain command judged by its exit code); "
        "fixer: its changes were made as patches; not_attempted: see `result`"
    )
    gate: str | None = Field(None, description="the gate that ran it: ruff, command:...")
    status: str = Field(
        description="a gate's status at the block's end (passed, failed, error); a fixer's: "
        "clean (nothing to change), done, partly, left, error"
    )
    result: str = Field(description="one line, with the numbers")
    fixer: FixerCount | None = None


class TargetCheck(BaseModel):
    """A target of the block, judged at its end against the block's start."""

    metric: str
    op: Literal[">=", "<="]
    value: float
    reduction: bool = False
    source: str = Field(description="the script text the target was read from")
    line: int | None = None
    start: float | None = Field(None, description="the metric at the block's start")
    end: float | None = Field(None, description="the metric at the block's end")
    goal: float | None = Field(None, description="what `end` had to reach (start - value)")
    met: bool | None = Field(None, description="None: the metric could not be measured")
    result: str = Field(description="one line, with the numbers")


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
    commands: list[CommandAccount] = Field(
        default_factory=list, description="every command of the block, and what became of it"
    )
    targets: list[TargetCheck] = Field(
        default_factory=list, description="the block's targets, met or not, with the numbers"
    )


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
    interrupted: bool = Field(False, description="the person supervising the run stopped it")

    def report(self) -> dict[str, Any]:
        """summary.json and `--json`: the STEPS script's output keys at the top level (as
        `harness gates --json` has them), then everything about the run."""
        return {**seed_keys(self.summary), **self.model_dump(mode="json")}

    @property
    def exit_code(self) -> int:
        if any(b.status == "gate_error" for b in self.blocks):
            return ExitCode.USAGE  # a gate that could not run: nothing could be judged
        if self.interrupted:
            return ExitCode.INTERRUPTED
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
    entry += "".join(f"- `{a.command}`: {a.result}\n" for a in out.commands)
    entry += "".join(f"- target {t.result}\n" for t in out.targets)
    return entry + "".join(f"- not attempted: {c}\n" for c in out.cannot_do)
