"""`harness replay RUN_DIR`: re-execute a recorded run with its recorded model answers and
check that it reproduces (harness/replay.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from harness import ui
from harness.replay import ReplayReport, replay


def show(report: ReplayReport) -> None:
    ratio = ""
    if report.recorded_seconds and report.seconds:
        times = report.recorded_seconds / report.seconds
        ratio = (
            f" ({times:.1f}x faster than the run's {report.recorded_seconds:.1f}s)"
            if times >= 1
            else f" ({1 / times:.1f}x slower than the run's {report.recorded_seconds:.1f}s)"
        )
    ui.out.print(
        f"replay of {report.run_id}: {report.requests} of {report.recorded_requests} requests "
        f"matched; gates: {report.gates_reused} run(s) from the record, {report.gates_run} "
        f"measured; other measurements: {report.measures_reused} from the record, "
        f"{report.measures_run} made; {report.seconds:.1f}s{ratio}",
        markup=False,
    )
    if report.reproduced:
        ui.out.print(f"reproduced: final tree {report.tree}", markup=False)
        return
    ui.out.print(f"diverged at {report.where}: {report.difference}", markup=False)
    if report.diff:
        ui.out.print(report.diff, markup=False)
    if report.branch:
        ui.out.print(f"the replay's work so far: branch {report.branch}", markup=False)


def command(
    run_dir: Path = typer.Argument(..., help="A recorded run directory (runs/<run-id>)."),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="A clone of the run's target holding its base commit (default: the repository "
        "the run was made in). Never modified: the replay works on a branch of its own.",
    ),
    regate: bool = typer.Option(
        False,
        "--regate",
        help="Measure everything again (gates, guard layers, per-patch checks; no gate "
        "cache) instead of taking matching results from the record.",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Re-execute a recorded run from its base commit with its recorded model answers (no key,
    no network), through the real guard, git and gates, with its times and identity; check
    every request, verdict, block outcome and the final tree against the record.

    Exit codes: 0 reproduced; 1 diverged (the first difference is named, with a diff of the
    two requests where a request differs); 2 unusable input (not a record, an older record
    format, a killed run, a repository without the base commit).
    """
    say = (lambda _m: None) if json_ else (lambda m: ui.err.print(m, markup=False))
    report = replay(run_dir, repo, regate=regate, progress=say)
    if json_:
        ui.print_json(report.model_dump())
    else:
        show(report)
    raise typer.Exit(report.exit_code)
