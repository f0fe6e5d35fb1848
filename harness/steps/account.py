"""A block's end, accounted for: what became of each command its STEPS text lists, and whether
each target it states was met.

A gate command is reported with its gate's result at the block's end. A fixer (`ruff format`,
`ruff check --fix`) is never run as a gate and never run on the tree whole: its changes land
as patches through the guard, within the per-file limit. What it did is measured with its own
dry run (`--diff`) at the block's start and at its end, and what it would still change is
reported with the reason it was not attempted: over the per-file limit, outside the lanes,
refused or reverted earlier, or not proposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.gates.common import HARNESS_PYTHON
from harness.gates.models import GateResult, GateRun, GateStatus
from harness.gates.ruff import settings_argv
from harness.gates.runner import context_for
from harness.gates.secrets import DETECT_SECRETS, GITLEAKS
from harness.guard.globs import match_any
from harness.outcome import CommandAccount, FixerCount, TargetCheck
from harness.policy import GuardConfig, Policy
from harness.proc import run
from harness.steps.commands import fixer_parts
from harness.steps.model import Block, GateMapping, Target


@dataclass
class Residue:
    """What a fixer would change now: (added, removed) lines per file, from its dry run."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    error: str | None = None


def dry_run_argv(wt: Path, policy: Policy, m: GateMapping) -> list[str]:
    """The fixer as a dry run, with the ruff the gate runs and its config file."""
    sub, options, paths, config = fixer_parts(m)
    own: list[str] = ["--config", config] if config else []
    if not own:
        own = settings_argv(context_for(wt, policy, policy.gates.ruff), given=options)
    argv = [HARNESS_PYTHON, "-m", "ruff", sub, "--no-cache", "--diff", *own, *options]
    return [*argv, *(paths or ["."])]


def residue(wt: Path, policy: Policy, m: GateMapping) -> Residue:
    # `ruff check --diff` on a path that is not there says nothing and exits 0, which would
    # read as "nothing to change".
    missing = [p for p in fixer_parts(m)[2] if not (wt / p).exists()]
    if missing:
        return Residue(error=f"its dry run could not run: no {', '.join(missing)} in the tree")
    proc = run(dry_run_argv(wt, policy, m), wt, timeout=300)
    # --diff exits 1 when it would change something; 2 (or anything else) is ruff failing.
    if proc.missing or proc.timed_out or proc.returncode not in (0, 1):
        return Residue(error=f"its dry run could not run: {proc.tail or proc.returncode}")
    out = Residue()
    current = ""
    for line in proc.stdout.splitlines():
        if line.startswith("--- "):
            current = _relative(line[4:].split("\t")[0].strip(), wt)
            out.files.setdefault(current, (0, 0))
        elif line.startswith("+++ ") or not current:
            continue
        elif line.startswith("+"):
            added, removed = out.files[current]
            out.files[current] = (added + 1, removed)
        elif line.startswith("-"):
            added, removed = out.files[current]
            out.files[current] = (added, removed + 1)
    return out


def _relative(name: str, wt: Path) -> str:
    path = Path(name.removeprefix("a/"))
    if path.is_absolute():
        try:
            return path.resolve().relative_to(wt.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix().removeprefix("./")


def fixer_residues(block: Block, wt: Path, policy: Policy) -> dict[str, Residue]:
    """Each fixer command of the block -> what it would change now."""
    return {m.command: residue(wt, policy, m) for m in block.gates if m.kind == "fixer"}


# ----------------------------------------------------------------------------- commands
def _lines(guard: GuardConfig, counts: tuple[int, int]) -> int:
    added, removed = counts
    return max(added, removed) if guard.count_method == "max_side" else added + removed


def _files(n: int) -> str:
    return f"{n} file{'s' * (n != 1)}"


def fixer_account(
    m: GateMapping,
    start: Residue,
    end: Residue,
    guard: GuardConfig,
    avoid: list[dict[str, Any]],
    ended: str = "",
) -> CommandAccount:
    """`ended`: the block's status, which says why a change within the limit was left."""
    limit = guard.max_changed_lines_per_file
    acc = CommandAccount(command=m.command, line=m.line, how="fixer", status="error", result="")
    if start.error or end.error:
        why = start.error or end.error
        acc.fixer = FixerCount(limit=limit, error=why)
        acc.result = f"what it changed could not be measured: {why}"
        return acc
    before = {p: n for p, c in start.files.items() if (n := _lines(guard, c))}
    left = {p: n for p, c in end.files.items() if (n := _lines(guard, c))}
    done = {p: n - left.get(p, 0) for p, n in before.items() if n > left.get(p, 0)}
    outside = {p for p in left if not match_any(p, guard.lanes) or match_any(p, guard.forbidden)}
    over = {p: n for p, n in left.items() if n > limit and p not in outside}
    refused = {
        p
        for p in left
        if p not in outside and p not in over and any(p in a.get("paths", []) for a in avoid)
    }
    count = FixerCount(
        limit=limit,
        start_lines=sum(before.values()),
        start_files=len(before),
        done_lines=sum(done.values()),
        done_files=len(done),
        left_lines=sum(left.values()),
        left_files=len(left),
        over_lines=sum(over.values()),
        over_files=len(over),
        outside_files=len(outside),
        refused_files=len(refused),
    )
    acc.fixer = count
    changed = f"changed {count.done_lines} lines in {_files(count.done_files)}"
    if not left:
        acc.status = "done" if before else "clean"
        acc.result = f"{changed}; nothing left" if before else "nothing to change"
        return acc
    reasons = []
    if over:
        reasons.append(
            f"over the per-file limit ({count.left_lines} lines in {_files(count.left_files)}, "
            f"{_files(count.over_files)} over the limit of {limit})"
        )
    if outside:
        reasons.append(f"{_files(len(outside))} outside the block's lanes")
    if refused:
        reasons.append(f"{_files(len(refused))} refused or reverted earlier in the run")
    rest = len(left) - len(over) - len(outside) - len(refused)
    if rest:
        why = f" (the block ended: {ended})" if ended else ""
        reasons.append(f"{_files(rest)} within the limit not proposed{why}")
    if not over:
        reasons[0] = f"{count.left_lines} lines in {_files(count.left_files)}: {reasons[0]}"
    not_done = "not attempted: " + "; ".join(reasons)
    if done:
        acc.status, acc.result = "partly", f"{changed}; {not_done}"
    else:
        acc.how, acc.status, acc.result = "not_attempted", "left", not_done
    return acc


def _measure(r: GateResult) -> str:
    if r.gate == "pytest":
        c = r.counts()
        text = f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors"
        # Tests that did not run are part of the verdict: a worktree without the checkout's
        # ignored files (compiled translations, say) skips the tests that need them.
        text += "".join(f", {c[k]} {k}" for k in ("skipped", "xfailed", "xpassed") if c.get(k))
        return text + (f", coverage {r.coverage.percent:.1f}%" if r.coverage else "")
    if r.gate == "imports":
        return f"{sum(1 for c in r.contracts if not c.kept)} broken contracts"
    if r.gate.startswith("command:"):
        return f"exit {r.exit_code}"
    return f"{len(r.findings)} findings"


def gate_account(
    m: GateMapping, start: GateRun, final: GateRun, policy: Policy, off: list[str]
) -> CommandAccount:
    name = m.gate if m.kind == "gate" and m.gate else f"command:{m.command}"
    acc = CommandAccount(
        command=m.command, line=m.line, how="gate", gate=name, status="error", result=""
    )
    if name in off:
        acc.how, acc.status = "not_attempted", "off"
        acc.result = f"not attempted: gate {name} is off in the policy"
        return acc
    r = final.results.get(name)
    if r is None:
        acc.how, acc.status = "not_attempted", "not_run"
        acc.result = f"not attempted: gate {name} did not run"
        return acc
    acc.status = r.status.value
    if r.status == GateStatus.ERROR:
        acc.result = f"error: {r.reason}"
        return acc
    was = start.results.get(name)
    acc.result = f"{r.status.value}: {_measure(r)}"
    if was is not None and was.status != GateStatus.ERROR:
        acc.result += f" (at the block's start: {_measure(was)})"
    named = Path(m.argv[0]).name if m.argv else ""
    if m.gate == "secrets" and named in (GITLEAKS, DETECT_SECRETS) and named != r.tool:
        # `gitleaks detect: passed` would read as gitleaks having looked when it is not there.
        acc.result += f"; run as {r.tool}, not {named}"
    if m.kind == "gate" and m.gate:
        paths = getattr(policy.gates, m.gate).paths
        if m.paths and sorted(paths) != sorted(m.paths):
            # The policy has one set of paths per gate: the script's last command decides.
            acc.result += f"; run on {', '.join(paths) or 'the whole repository'}"
    return acc


def account_commands(
    block: Block,
    start: GateRun,
    final: GateRun,
    *,
    policy: Policy,
    guard: GuardConfig,
    off: list[str],
    residues: tuple[dict[str, Residue], dict[str, Residue]] | None,
    avoid: list[dict[str, Any]],
    stopped: str = "",
    ended: str = "",
) -> list[CommandAccount]:
    """Each command of the block, in the script's order: its gate's result, what the fixer
    changed, or why it was not attempted. `residues`: the fixers' dry runs at the block's
    start and end (None when the block `stopped` before doing anything)."""
    out = []
    for m in block.gates:
        if m.kind != "fixer":
            out.append(gate_account(m, start, final, policy, off))
        elif residues is None:
            out.append(
                CommandAccount(
                    command=m.command,
                    line=m.line,
                    how="not_attempted",
                    status="stopped",
                    result=f"not attempted: {stopped or 'the block stopped'}",
                )
            )
        else:
            missing = Residue(error="it was not measured")
            was, now = (r.get(m.command, missing) for r in residues)
            out.append(fixer_account(m, was, now, guard, avoid, ended))
    return out


# ----------------------------------------------------------------------------- targets
def metric(run: GateRun, name: str) -> float | None:
    """A target's metric in a gate run; None when its gate did not run or could not."""
    gate = "pytest" if name in ("coverage", "tests_failed") else name
    r = run.results.get(gate)
    if r is None or r.status == GateStatus.ERROR:
        return None
    if name == "coverage":
        return r.coverage.percent if r.coverage is not None else None
    if name == "tests_failed":
        c = r.counts()
        return float(c["failed"] + c["errors"])
    if name == "imports":
        return float(sum(1 for c in r.contracts if not c.kept))
    return float(len(r.findings))


def _num(x: float, metric_name: str) -> str:
    return f"{x:.1f}%" if metric_name == "coverage" else f"{x:g}"


def check_target(t: Target, start: GateRun, final: GateRun) -> TargetCheck:
    was, now = metric(start, t.metric), metric(final, t.metric)
    check = TargetCheck(
        metric=t.metric,
        op=t.op,
        value=t.value,
        reduction=t.reduction,
        source=t.source,
        line=t.line,
        start=was,
        end=now,
        result="",
    )
    stated = f"{t.metric} {t.op} " + (f"start - {t.value:g}" if t.reduction else f"{t.value:g}")
    if now is None or (t.reduction and was is None):
        check.result = f"{stated}: not judged (no {t.metric} measurement)"
        return check
    goal = (was or 0.0) - t.value if t.reduction else t.value
    check.goal = goal
    check.met = now >= goal if t.op == ">=" else now <= goal
    verdict = "met" if check.met else "not met"
    if t.reduction and was is not None:
        check.result = (
            f"{stated}: {verdict} ({_num(was, t.metric)} -> {_num(now, t.metric)}, "
            f"reduced by {was - now:g} of {t.value:g})"
        )
    else:
        moved = f"{_num(was, t.metric)} -> " if was is not None else ""
        check.result = f"{stated}: {verdict} ({moved}{_num(now, t.metric)})"
    return check


def check_targets(block: Block, start: GateRun, final: GateRun) -> list[TargetCheck]:
    return [check_target(t, start, final) for t in block.targets]
