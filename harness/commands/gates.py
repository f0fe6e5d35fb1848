"""`harness gates`: run the configured gates on a repository and report.

Exit 0 all gates ran and passed; 1 a gate failed; 2 a gate could not run or bad arguments.
Whatever the gate runs write into the checkout is removed again: it is left as it was found.
"""

from __future__ import annotations

import atexit
import gc
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness import ui
from harness.errors import ExitCode, GateError, UsageError
from harness.gates.imported import import_warnings
from harness.gates.models import GateResult, GateRun, GateStatus
from harness.gates.runner import run_gates, selected_gates
from harness.gates.summary import coverage_display, seed_summary
from harness.gitplain import left_as_found, toplevel, tree_hash
from harness.policy import resolve_policy

if TYPE_CHECKING:
    from rich.table import Table

_STYLE = {GateStatus.PASSED: "green", GateStatus.FAILED: "red", GateStatus.ERROR: "magenta"}


def _numbers(r: GateResult) -> str:
    if r.status == GateStatus.ERROR and not (r.tests or r.findings):
        return r.reason or "error"
    if r.gate == "pytest":
        c = r.counts()
        shown = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")
        text = ", ".join(f"{c[k]} {k}" for k in shown if c.get(k) or k in shown[:4])
        if r.coverage is not None:
            text += f"; coverage {coverage_display(r.coverage.percent)}"
        return text
    if r.gate == "imports":
        kept = sum(1 for c in r.contracts if c.kept)
        return f"{kept} kept, {len(r.contracts) - kept} broken"
    text = f"{len(r.findings)} finding(s)"
    if r.findings:
        top = ", ".join(f"{code} {n}" for code, n in _top_codes(r))
        text += f" ({top})"
    return text


def _top_codes(r: GateResult, n: int = 4) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for f in r.findings:
        counts[f.code] = counts.get(f.code, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _table(run: GateRun) -> Table:
    # Imported here: with --json no table is drawn.
    from rich.table import Table

    table = Table(title=f"gates @ tree {run.tree[:12]}", title_justify="left")
    table.add_column("gate")
    table.add_column("status")
    table.add_column("key numbers", overflow="fold")
    table.add_column("seconds", justify="right")
    for r in run.results.values():
        status = f"[{_STYLE[r.status]}]{r.status.value}[/]" + (" (cached)" if r.cached else "")
        table.add_row(r.gate, status, _numbers(r), f"{r.seconds:.1f}")
    return table


def _progress(r: GateResult) -> None:
    extra = " (cached)" if r.cached else ""
    ui.err.print(f"  {r.gate}: {r.status.value}{extra} in {r.seconds:.1f}s")


def command(
    repo: Path | None = typer.Option(
        None, "--repo", help="Target git repository (default: the one enclosing the cwd)."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: shipped)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (seed keys)."),
    only: str | None = typer.Option(None, "--only", help="Comma-separated gates, e.g. ruff,mypy."),
    python: str | None = typer.Option(None, "--python", help="Interpreter of the target's env."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the result cache."),
) -> None:
    """Run the quality gates (ruff, mypy, pytest+coverage, bandit, import-linter, secrets)."""
    # A short run that makes few reference cycles: the collector's passes over everything the
    # imports made (0.03 s of CPU on click) would free next to nothing. The process ends with
    # this command, and its last collection would walk every object again only to free memory
    # the exit frees anyway (0.09 s, after the last tool): frozen objects are left out of it,
    # while atexit handlers and the flushing of stdout and stderr still run.
    atexit.register(gc.freeze)
    collecting = gc.isenabled()
    gc.disable()
    try:
        _command(repo, policy, json_out, only, python, no_cache)
    finally:
        if collecting:
            gc.enable()


def _command(
    repo: Path | None,
    policy: Path | None,
    json_out: bool,
    only: str | None,
    python: str | None,
    no_cache: bool,
) -> None:
    repo = toplevel(Path(repo) if repo is not None else Path.cwd())
    resolved = resolve_policy(Path(repo), policy)
    ui.say_policy(resolved)
    pol = resolved.policy
    if python is not None:
        if not Path(python).is_file() and shutil.which(python) is None:
            raise UsageError(f"--python: no such interpreter: {python}")
        pol = pol.model_copy(update={"gates": pol.gates.model_copy(update={"python": python})})
    names = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
    # `toplevel` refused a bare repository and gave the work tree's root: no gate has run.
    ui.err.print(f"harness gates: {repo}")
    # The import check asks the target's interpreter once; it runs beside the gates rather
    # than before them, and says what it found when they are done. The tree is hashed (in a
    # private index) while the checkout's state is taken, rather than after it: both only
    # read the working tree, and every tool starts after both.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="before-gates") as pool:
        warnings = (
            pool.submit(import_warnings, repo, pol)
            if "pytest" in selected_gates(pol, names)
            else None
        )
        tree = pool.submit(tree_hash, repo)
        # The target's own addopts may write reports (coverage.xml, htmlcov/) into the user's
        # checkout; a report left behind is a new file in the next run's tree, so nothing
        # would ever be cached either.
        with left_as_found(repo):
            run = run_gates(
                repo,
                pol,
                only=names,
                use_cache=not no_cache,
                on_result=_progress,
                tree=tree.result(),
            )
    for line in warnings.result() if warnings is not None else []:
        ui.err.print(f"warning: {line}", markup=False)
    if not run.results:
        raise UsageError("no gate to run: all gates are disabled in the policy")
    if json_out:
        summary: dict[str, Any] = seed_summary(run)
        ui.print_json(summary)
    else:
        ui.out.print(_table(run))
    errored = [r for r in run.results.values() if r.status == GateStatus.ERROR]
    if errored:
        first = errored[0]
        raise GateError(f"gate {first.gate} could not run: {first.reason}", result=first)
    if any(r.status == GateStatus.FAILED for r in run.results.values()):
        raise typer.Exit(ExitCode.FAILED)
