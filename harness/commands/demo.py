"""`harness demo`: the seed's STEPS script on a bundled messy project, offline."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import git
import typer

from harness import ui
from harness.commands.run import execute, show
from harness.errors import UsageError
from harness.gitutil import commit_all

EXAMPLE = Path(__file__).resolve().parent.parent / "example"


def make_example_repo(dest: Path) -> Path:
    """Copy the example project into `dest` and commit it as a fresh repository."""
    if dest.exists():
        raise UsageError(f"{dest} already exists; pass --dir a new or empty directory")
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    repo = git.Repo.init(dest, initial_branch="main")
    commit_all(repo, "example project (messy on purpose)")
    return dest


def command(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to create the example repository (default: a new temp dir)."
    ),
    blocks: str | None = typer.Option(None, "--blocks", help="Only these blocks, e.g. 2,5."),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy TOML (default: the shipped T4 policy)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Copy the bundled example project into a new git repository and run the seed's STEPS
    script on it with the offline builtin provider. Prints the summary, the run record and the
    branch to review. Needs no API key and no network.

    Exit codes as `harness run`: 0 every block met its goal; 1 some goals are unmet (the builtin
    provider writes no tests, so the whole script ends here); 2 a gate could not run."""
    root = directory or Path(tempfile.mkdtemp(prefix="harness-demo-"))
    repo = make_example_repo(root / "example")
    ui.err.print(f"example repository: {repo}", markup=False)
    summary = execute(
        repo / "STEPS_4b.md",
        repo,
        policy_file=policy,
        provider_name="builtin",
        model=None,
        script=None,
        blocks=blocks,
        runs_dir=root / "runs",
    )
    if json_:
        ui.print_json(summary.report())
    else:
        show(summary)
    raise typer.Exit(summary.exit_code)
