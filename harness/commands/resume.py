"""`harness resume RUN_DIR`: go on with an interrupted run (harness/resume.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from harness import ui
from harness.approve import TerminalApprover
from harness.commands.run import budget_options, finish
from harness.errors import UsageError
from harness.policy import Policy
from harness.providers.base import Provider
from harness.providers.registry import make_provider
from harness.record import Manifest
from harness.resume import resume


@budget_options
def command(
    run_dir: Path = typer.Argument(..., help="The interrupted run's record (runs/<run-id>)."),
    script: Path | None = typer.Option(
        None,
        "--script",
        help="For a run made with --provider scripted: the same responses file (or recorded "
        "run); the answers the record holds are skipped.",
    ),
    supervised: bool = typer.Option(
        False,
        "--supervised",
        help="Ask at the terminal, as `harness run --supervised` does, about what neither the "
        "record nor the policy's approval rules decide. Needs a terminal on stdin (exit 2).",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    budget: dict[str, Any] | None = None,
) -> None:
    """Go on with a run that was interrupted (Ctrl-C, a crash, kill -9, a budget that ran out),
    on its branch, from its last finished block, with the provider, model, script and policy
    it was started with; budget options replace the recorded policy's. Finished blocks are not
    run again; the unfinished one starts over, its recorded model answers, times and gate
    results handed back instead of asked for again.

    Exit codes: as `harness run`; 2 when the record cannot be resumed (a finished run, a branch
    or repository that is gone, a run still running).
    """

    if supervised and not sys.stdin.isatty():
        raise UsageError("--supervised asks a person at a terminal, and stdin is not a terminal")

    def provider(manifest: Manifest, policy: Policy) -> Provider:
        if manifest.provider == "scripted" and script is None:
            raise UsageError(
                "this run was made with --provider scripted: pass --script with its script"
            )
        return make_provider(
            manifest.provider,
            model=manifest.model if manifest.provider == "anthropic" else None,
            policy=policy,
            script=script,
        )

    say = (lambda _m: None) if json_ else (lambda m: ui.err.print(m, markup=False))
    person = TerminalApprover(ui.err) if supervised else None
    summary = resume(run_dir, provider, budget=budget, supervisor=person, progress=say)
    finish(summary, json_)
