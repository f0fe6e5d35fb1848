"""`harness apply`: guard a diff, apply it, run the gates before and after, keep it or revert.

Exit 0 kept, 1 rejected by policy (the guard's rules, or its behaviour layer: pytest's
outcomes by test id on the written patch, before the gates run again), 2 usage or I/O error
(or a dirty tree), 3 regression (HEAD and working tree restored exactly).

The commit holds exactly the guarded files. Whatever the gate runs write into the checkout (a
test's log file, a rewritten fixture) is removed again, so every outcome leaves the checkout as
it was found, except for the kept commit.
"""

from __future__ import annotations

from pathlib import Path

import git
import typer
from rich.markup import escape

from harness import gitutil, ui
from harness.commands.check_patch import print_verdict, read_patch, verdict_json
from harness.errors import ExitCode, GitError, RegressionError
from harness.gates.compare import blocking, compare, make_rerunner
from harness.gates.models import GateResult, GateRun, Regression
from harness.gates.runner import run_gates
from harness.guard import Verdict, check_patch
from harness.guard.behaviour import check_behaviour
from harness.guard.commit import write_contents
from harness.guard.mutation import check_patch_tests
from harness.policy import POLICY_FILE, STEPS_FILE, resolve_policy

# What the mutation layer measured, in the JSON output, for policy tuning.
_MUTATION_SCORES = {
    "score_before", "score_after", "score_mutants", "score_complete", "lost", "mutants", "tried",
    "budget_exhausted",
}  # fmt: skip


def _numbers(r: GateResult | None) -> str:
    if r is None:
        return "not run"
    parts = [r.status.value]
    if r.gate == "pytest":
        c = r.counts()
        parts.append(f"{c['passed']} passed/{c['failed'] + c['errors']} failing")
        if r.coverage is not None:
            parts.append(f"coverage {r.coverage.percent:.2f}%")
    elif r.gate == "imports":
        parts.append(f"{sum(1 for c in r.contracts if not c.kept)} broken contracts")
    else:
        parts.append(f"{len(r.findings)} findings")
    return ", ".join(parts)


def gate_deltas(before: GateRun, after: GateRun) -> dict[str, str]:
    """One trailer per gate: 'before -> after'."""
    out: dict[str, str] = {}
    for name in dict.fromkeys([*before.results, *after.results]):
        b, a = _numbers(before.results.get(name)), _numbers(after.results.get(name))
        out[f"Gate-{name}"] = b if a == b else f"{b} -> {a}"
    return out


def _progress(r: GateResult) -> None:
    extra = " (cached)" if r.cached else ""
    ui.err.print(f"  {r.gate}: {r.status.value}{extra} in {r.seconds:.1f}s")


def _regression_json(r: Regression) -> dict[str, object]:
    return r.model_dump()


def command(
    patch: str = typer.Argument(..., help="Patch file, or '-' for stdin."),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="Target git repository, clean tree (default: the one enclosing the cwd).",
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: shipped)."),
    block: int | None = typer.Option(None, "--block", help="STEPS block whose lanes apply."),
    message: str = typer.Option("harness: apply patch", "--message", "-m", help="Commit subject."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Apply a guarded diff as one commit, kept only if the gates show no regression."""
    root = gitutil.resolve_repo(repo)
    pol = resolve_policy(root, policy).policy
    text = read_patch(patch)
    repository = gitutil.open_repo(root)
    # What `harness init` wrote may still be untracked: the harness's own files, not a change.
    own = (POLICY_FILE, STEPS_FILE)
    if gitutil.is_dirty(repository, own):
        raise GitError(f"working tree has uncommitted changes; commit or stash them: {root}")
    guard = pol.guard_for_block(block)
    verdict = check_patch(text, root, guard)
    result: dict[str, object] = verdict_json(verdict)
    if not verdict.accepted:
        if json_out:
            ui.print_json(result | {"kept": False, "commit": None, "regressions": []})
        else:
            print_verdict(verdict)
        raise typer.Exit(ExitCode.FAILED)
    with gitutil.left_as_found(repository) as tidy:
        ui.err.print("gates before:")
        before = run_gates(root, pol, use_cache=True, on_result=_progress)
        # What the test suite wrote is not the patch's change, and must not block the restore.
        tidy()
        with gitutil.restore_on_failure(repository, own) as start:
            write_contents(root, verdict)
            # The behaviour layer before the gates run again: a refusal spares that run.
            paths = [f.path for f in verdict.files]
            behaviour = check_behaviour(root, pol, paths, before.results.get("pytest"), guard)
            verdict.layers.append(behaviour.layer)
            verdict.violations += behaviour.violations
            verdict.accepted = behaviour.ok
            result = verdict_json(verdict) | {"layers": [x.model_dump() for x in verdict.layers]}
            if not behaviour.ok:
                _print_regressions(verdict, result, [], {}, json_out)
                raise typer.Exit(ExitCode.FAILED)  # restore_on_failure puts the tree back
            ui.err.print("gates after:")
            after = run_gates(root, pol, use_cache=True, on_result=_progress)
            regressions = compare(before, after, pol.regression, rerun=make_rerunner(root, pol))
            deltas = gate_deltas(before, after)
            bad = blocking(regressions)
            if bad:
                _print_regressions(verdict, result, regressions, deltas, json_out)
                raise RegressionError(
                    f"{len(bad)} regression(s); the patch was reverted to {start[:12]}", bad
                )
            # The mutation layer last: the most expensive, and only for a patch the gates keep.
            mutation = check_patch_tests(root, pol, verdict.contents, guard=guard)
            verdict.layers.append(mutation.layer)
            verdict.violations += mutation.violations
            verdict.accepted = mutation.accepted
            result = verdict_json(verdict) | {
                "layers": [x.model_dump() for x in verdict.layers],
                "mutation": mutation.model_dump(include=_MUTATION_SCORES),
            }
            if not mutation.accepted:
                _print_regressions(verdict, result, [], deltas, json_out)
                raise typer.Exit(ExitCode.FAILED)  # restore_on_failure puts the tree back
            sha = _commit(repository, verdict, message, deltas)
    out = result | {
        "kept": True,
        "commit": sha,
        "regressions": [_regression_json(r) for r in regressions],
        "gates": deltas,
    }
    if json_out:
        ui.print_json(out)
    else:
        print_verdict(verdict)
        for k, v in deltas.items():
            ui.out.print(f"  {k}: {escape(v)}")
        ui.out.print(f"kept as {sha[:12]}")


def _print_regressions(
    verdict: Verdict,
    result: dict[str, object],
    regressions: list[Regression],
    deltas: dict[str, str],
    json_out: bool,
) -> None:
    if json_out:
        ui.print_json(
            result
            | {
                "kept": False,
                "commit": None,
                "regressions": [_regression_json(r) for r in regressions],
                "gates": deltas,
            }
        )
        return
    print_verdict(verdict)
    for r in regressions:
        flaky = " (flaky)" if r.flaky else ""
        ui.out.print(f"  [red]regression[/red] {r.gate}/{r.rule}{flaky}: {escape(r.message)}")


def _commit(repository: git.Repo, verdict: Verdict, message: str, deltas: dict[str, str]) -> str:
    """Commit exactly the verdict's files, as the guard judged them."""
    root = Path(str(repository.working_tree_dir))
    for path, data in verdict.contents.items():
        if _content(root / path) != data:
            # The suite rewrote a patched file: committing would keep a change nobody checked.
            raise GitError(f"the gate run changed {path}; nothing was committed")
    files = ", ".join(f"{f.path} +{f.added}/-{f.removed}" for f in verdict.files)
    body = f"{message}\n\n{files}\n"
    if verdict.repairs:
        body += "\nRepaired: " + "; ".join(verdict.repairs) + "\n"
    return gitutil.commit_paths(repository, sorted(verdict.contents), body, deltas)


def _content(full: Path) -> bytes | None:
    if full.is_symlink() or not full.is_file():
        return None
    return full.read_bytes()
