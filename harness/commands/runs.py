"""`harness runs`: the recorded runs and their branches; `harness runs clean` removes the
branches of failed or empty runs. Records are never removed: they are the audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import git
import typer
from pydantic import BaseModel, ValidationError

from harness import gitutil, ui
from harness.commands.run import records_dir
from harness.errors import GitError, UsageError
from harness.record import Manifest
from harness.resume import RESUMABLE

# Commits the loop makes on every run branch; a branch holding only these has no work on it.
_BOOKKEEPING = "harness: progress log"

app = typer.Typer(
    help="List recorded runs (id, times, exit code, branch, commits beyond the base); "
    "`clean` removes the branches of failed or empty runs, keeping the records.",
)


class RunRow(BaseModel):
    run_id: str
    started: str
    finished: str | None
    exit_code: int | None
    repo: str
    branch: str
    branch_exists: bool
    commits: int | None = None
    work_commits: int | None = None
    record: str

    @property
    def failed(self) -> bool:
        return self.finished is None or self.exit_code is None or self.exit_code >= 2

    @property
    def empty(self) -> bool:
        return self.work_commits == 0


def _record_dirs(runs_dir: Path | None, repo: Path | None) -> list[Path]:
    """Where runs are recorded: --runs-dir alone when given; else where `harness run` would
    put them for this repository, and ./runs."""
    if runs_dir is not None:
        if not runs_dir.is_dir():
            raise UsageError(f"--runs-dir: no such directory: {runs_dir}")
        return [runs_dir]
    found: list[Path] = []
    try:
        found.append(records_dir(None, gitutil.resolve_repo(repo)))
    except GitError:
        if repo is not None:
            raise  # an explicit --repo must be a repository; the cwd need not be
    found.append(Path("runs").resolve())
    return [d for d in dict.fromkeys(p.resolve() for p in found) if d.is_dir()]


def _row(record: Path, manifest: Manifest) -> RunRow:
    row = RunRow(
        run_id=manifest.run_id,
        started=manifest.started,
        finished=manifest.finished,
        exit_code=manifest.exit_code,
        repo=manifest.repo,
        branch=manifest.branch,
        branch_exists=False,
        record=str(record.resolve()),
    )
    try:
        repository = gitutil.open_repo(manifest.repo)
    except GitError:
        return row  # the repository moved or is gone: nothing to say about its branch
    if manifest.branch not in [h.name for h in repository.heads]:
        return row
    subjects = gitutil.commits_beyond(repository, manifest.base_commit, manifest.branch)
    row.branch_exists = True
    row.commits = len(subjects)
    row.work_commits = sum(1 for s in subjects if not s.startswith(_BOOKKEEPING))
    return row


def list_runs(runs_dir: Path | None, repo: Path | None) -> list[RunRow]:
    """Every readable record, oldest first; with an explicit --repo, only that repository's."""
    only = gitutil.resolve_repo(repo) if repo is not None else None
    rows = []
    for directory in _record_dirs(runs_dir, repo):
        for path in sorted(directory.glob("*/manifest.json")):
            try:
                manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, ValidationError):
                continue  # not a run record (or a damaged one): nothing to list or clean
            if only is not None and Path(manifest.repo).resolve() != only:
                continue
            rows.append(_row(path.parent, manifest))
    return sorted(rows, key=lambda r: (r.started, r.run_id))


def _line(r: RunRow) -> str:
    """One run per line (no table: run ids and paths must not fold on a narrow terminal)."""
    ended = "unfinished (running, or killed)" if r.finished is None else r.finished
    exit_code = "" if r.finished is None else f"  exit {r.exit_code}"
    if not r.branch_exists:
        branch = f"{r.branch} (deleted)"
    else:
        branch = f"{r.branch} +{r.commits}"
        if r.work_commits != r.commits:
            branch += f" ({r.work_commits} work)"
    return f"{r.run_id}  {r.started} -> {ended}{exit_code}  {branch}  {r.record}"


@app.callback(invoke_without_command=True)
def listing(
    ctx: typer.Context,
    repo: Path | None = typer.Option(
        None, "--repo", help="Only the runs of this repository (default: all runs found)."
    ),
    runs_dir: Path | None = typer.Option(
        None,
        "--runs-dir",
        help="Where runs are recorded (default: where `harness run` records them, and ./runs).",
        envvar="HARNESS_RUNS_DIR",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the runs as a JSON list."),
) -> None:
    """List recorded runs: id, started, finished, exit code, branch (and whether it still
    exists), and how many commits it has beyond its base (progress-log entries aside: work)."""
    ctx.obj = {"repo": repo, "runs_dir": runs_dir, "json": json_}
    if ctx.invoked_subcommand is not None:
        return
    rows = list_runs(runs_dir, repo)
    if json_:
        ui.print_json([r.model_dump() for r in rows])
    elif rows:
        for row in rows:
            ui.out.print(_line(row), markup=False)
    else:
        ui.err.print("no recorded runs found", markup=False)


def _resumable(row: RunRow) -> bool:
    """`harness resume` could go on with it: killed, interrupted, or out of budget."""
    return row.finished is None or row.exit_code is None or row.exit_code in RESUMABLE


def _why(row: RunRow) -> str | None:
    """Why the run's branch may go, or None to keep it."""
    if row.finished is None or row.exit_code is None:
        return "unfinished"
    if row.exit_code >= 2:
        return f"failed (exit {row.exit_code})"
    if row.empty:
        return "empty (no commits beyond its base)"
    return None


def _clean(
    rows: list[RunRow], dry_run: bool, resumable: bool = False
) -> dict[str, list[dict[str, Any]]]:
    deleted: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    pruned: set[str] = set()
    for row in rows:
        why = _why(row)
        if not row.branch_exists or why is None:
            continue
        entry: dict[str, Any] = {"run_id": row.run_id, "branch": row.branch, "reason": why}
        if _resumable(row) and not resumable:
            # Its branch is where `harness resume` goes on: deleting it loses the run.
            kept.append(entry | {"reason": f"{why}, resumable: harness resume {row.record}"})
            continue
        repository = gitutil.open_repo(row.repo)
        if not dry_run and row.repo not in pruned:
            # A killed run's worktree still holds its branch until it is pruned.
            gitutil.prune_stale_worktrees(repository)
            pruned.add(row.repo)
        if row.branch in gitutil.checked_out_branches(repository):
            kept.append(entry | {"reason": f"{why}, but checked out"})
            continue
        if dry_run:
            entry["sha"] = repository.commit(row.branch).hexsha
        else:
            try:
                entry["sha"] = gitutil.delete_branch(repository, row.branch)
            except GitError as exc:
                kept.append(entry | {"reason": str(exc)})
                continue
        deleted.append(entry)
    return {"deleted": deleted, "kept": kept}


@app.command("clean")
def clean(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; delete nothing."),
    repo: Path | None = typer.Option(None, "--repo", help="Only the runs of this repository."),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Where runs are recorded.", envvar="HARNESS_RUNS_DIR"
    ),
    json_: bool = typer.Option(False, "--json", help="Print what was deleted as JSON."),
    resumable: bool = typer.Option(
        False,
        "--resumable",
        help="Also delete the branches of runs `harness resume` could go on with "
        "(unfinished, interrupted: exit 130, out of budget: exit 5).",
    ),
) -> None:
    """Delete the branches of failed runs (exit code 2 or more, or unfinished) and of empty
    ones (no commits beyond the base but progress-log entries). The records stay; a branch
    checked out anywhere stays, and so does a resumable run's unless --resumable. Each
    deleted branch's sha is printed, to restore it with `git branch <name> <sha>`."""
    parent = ctx.obj or {}
    rows = list_runs(runs_dir or parent.get("runs_dir"), repo or parent.get("repo"))
    try:
        result = _clean(rows, dry_run, resumable)
    except git.GitCommandError as exc:
        raise GitError(f"cannot clean run branches: {exc.stderr.strip()}") from exc
    if json_ or parent.get("json"):
        ui.print_json({"dry_run": dry_run, **result})
        return
    verb = "would delete" if dry_run else "deleted"
    for e in result["deleted"]:
        ui.out.print(f"{verb} {e['branch']} (was {e['sha'][:12]}): {e['reason']}", markup=False)
    for e in result["kept"]:
        ui.out.print(f"kept {e['branch']}: {e['reason']}", markup=False)
    if not result["deleted"] and not result["kept"]:
        ui.out.print("nothing to clean", markup=False)
