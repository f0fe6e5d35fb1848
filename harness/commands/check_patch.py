"""`harness check-patch`: judge a diff against a repository and policy; never modifies it.

Exit 0 acceptable, 1 rejected, 2 usage or I/O error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from harness import ui
from harness.context import block_gates
from harness.errors import ExitCode, UsageError
from harness.gitutil import resolve_repo
from harness.guard import Verdict, check_patch
from harness.policy import GuardConfig, Policy, resolve_policy
from harness.steps import apply_to_policy, block_lanes, load_steps


def read_patch(source: str) -> str:
    """The patch text from a file, or stdin for '-'."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read patch {source}: {exc.strerror or exc}") from exc


# check-patch is static: the layers that run tests or a model are `harness apply`'s and
# `harness run`'s, and the verdict says so rather than implying they passed.
TEST_LAYERS = ("behaviour", "mutation", "review")


def not_run(v: Verdict) -> list[dict[str, object]]:
    """The layers the verdict does not list, each with why it did not run."""
    seen = {x.layer for x in v.layers}
    out: list[dict[str, object]] = []
    for name in TEST_LAYERS:
        if name in seen:
            continue
        if not v.accepted:
            why = "an earlier layer refused"
        elif name == "review":
            why = "needs a model: harness run with one"
        else:
            why = "check-patch runs no tests: harness apply and harness run do"
        out.append({"layer": name, "ran": False, "why": why, "seconds": 0.0})
    return out


def verdict_json(v: Verdict) -> dict[str, object]:
    return {
        "accepted": v.accepted,
        "repaired": v.repaired,
        "files": [f.model_dump() for f in v.files],
        "violations": [x.model_dump() for x in v.violations],
        "layers": [x.model_dump() for x in v.layers] + not_run(v),
    }


def block_guard(policy: Policy, steps_file: Path | None, block: int | None) -> GuardConfig:
    """The guard for STEPS block `block`: its `[blocks.N]` overrides, and with the script, the
    lanes that follow from what the block does (a coverage block writes tests)."""
    if steps_file is None or block is None:
        return policy.guard_for_block(block)
    script = load_steps(steps_file)
    applied = apply_to_policy(script, policy)
    lanes, _why = block_lanes(script.block(block), block_gates(script.block(block)), applied)
    return applied.guard_for_block(block, default_lanes=lanes)


def print_verdict(v: Verdict) -> None:
    mark = "[green]accepted[/green]" if v.accepted else "[red]rejected[/red]"
    ui.out.print(f"{mark}{' (repaired)' if v.repaired else ''}")
    for f in v.files:
        ui.out.print(f"  {escape(f.path)}  +{f.added} -{f.removed}")
    for r in v.repairs:
        ui.out.print(f"  [dim]repair: {escape(r)}[/dim]")
    for x in v.violations:
        # Messages name their own file and line, written for the model to act on.
        ui.out.print(f"  [red]{x.rule}[/red] [dim]({x.layer})[/dim] {escape(x.message)}")
    ran = [x.layer for x in v.layers if x.ran]
    unrun = [f"{x.layer} ({x.why})" for x in v.layers if not x.ran]
    unrun += [f"{x['layer']} ({x['why']})" for x in not_run(v)]
    line = f"layers run: {', '.join(ran) or 'none'}"
    if unrun:
        line += f"; not run: {', '.join(unrun)}"
    ui.out.print(f"  [dim]{escape(line)}[/dim]")


def command(
    patch: str = typer.Argument(..., help="Patch file, or '-' for stdin."),
    repo: Path | None = typer.Option(
        None, "--repo", help="Target git repository (default: the one enclosing the cwd)."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: shipped)."),
    block: int | None = typer.Option(None, "--block", help="STEPS block whose lanes apply."),
    steps: Path | None = typer.Option(
        None, "--steps", help="STEPS script: with --block, the lanes follow what the block does."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Validate a diff (guard rules, repairs, per-file counts) without touching the repo."""
    repo = resolve_repo(repo)
    cfg = block_guard(resolve_policy(Path(repo), policy).policy, steps, block)
    verdict = check_patch(read_patch(patch), repo, cfg)
    if json_out:
        ui.print_json(verdict_json(verdict))
    else:
        print_verdict(verdict)
    if not verdict.accepted:
        raise typer.Exit(ExitCode.FAILED)
