"""`harness run STEPS --repo PATH`: the main job."""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import typer
from rich.markup import escape

from harness import ui
from harness.approve import TerminalApprover, make_approver
from harness.errors import Interrupted, UsageError
from harness.gitutil import open_repo, resolve_repo
from harness.loop import Loop, RunOptions
from harness.outcome import SEED_KEYS, RunSummary, deltas
from harness.policy import Policy, resolve_policy
from harness.preflight import check_script_paths
from harness.providers.registry import make_provider
from harness.steps import load_steps, parse_path_map, remap_paths
from harness.steps.mapping import builtin_refusal

# The budget options of `harness run` and `harness resume`: (parameter, option, type, help,
# the policy's [loop] key it sets). Declared once; `budget_options` adds them to a command.
BUDGET_OPTIONS: list[tuple[str, str, type, str, str]] = [
    ("max_cost", "--max-cost", float,
     "Cost cap in USD for the whole run (default: the policy's).", "max_cost_usd"),
    ("max_tokens", "--max-tokens", int,
     "Tokens (input, output, cache) for the run.", "max_tokens"),
    ("max_calls", "--max-calls", int,
     "Model calls for the run, failed and retried ones too.", "max_calls"),
    ("max_time", "--max-time", float, "Wall time of the run, in seconds.", "max_seconds"),
    ("max_item_calls", "--max-item-calls", int,
     "Model calls for one todo item.", "max_item_calls"),
    ("block_max_cost", "--block-max-cost", float,
     "Cost cap in USD per block.", "block_max_cost_usd"),
    ("block_max_tokens", "--block-max-tokens", int, "Tokens per block.", "block_max_tokens"),
    ("block_max_calls", "--block-max-calls", int, "Model calls per block.", "block_max_calls"),
    ("block_max_time", "--block-max-time", float,
     "Wall time per block, in seconds.", "block_max_seconds"),
]  # fmt: skip

Command = TypeVar("Command", bound=Callable[..., Any])


def budget_keys(**given: float | None) -> dict[str, Any]:
    """The budget options given (by parameter name), as the [loop] keys they set; each must be
    positive."""
    keys: dict[str, Any] = {}
    for name, option, _type, _help, key in BUDGET_OPTIONS:
        value = given.get(name)
        if value is None:
            continue
        if value <= 0:
            raise UsageError(f"{option} must be positive, got {value}")
        keys[key] = value
    return keys


def budget_options(command: Command) -> Command:
    """`command` with the budget options added to its parameters (after its own); it is called
    with them as `budget`, the [loop] keys given."""
    names = [name for name, *_ in BUDGET_OPTIONS]

    @functools.wraps(command)
    def with_budget(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in names}
        return command(*args, budget=budget_keys(**given), **kwargs)

    # Evaluated: a signature given as __signature__ is read as it is, strings and all.
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "budget"]
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, option, help=help_),
            annotation=kind | None,
        )
        for name, option, kind, help_, _key in BUDGET_OPTIONS
    ]
    at = next((i for i, p in enumerate(own) if p.name == "json_"), len(own))
    params = [*own[:at], *added, *own[at:]]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    with_budget.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return cast(Command, with_budget)


def parse_blocks(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--blocks takes numbers separated by commas, got {text!r}") from None


def records_dir(runs_dir: Path | None, repo: Path) -> Path:
    """--runs-dir as given; by default `./runs`, unless that lies inside the target repository,
    whose checkout must not change: then inside its git directory."""
    if runs_dir is not None:
        return runs_dir
    default = Path("runs").resolve()
    root = open_repo(repo).working_tree_dir
    if root is not None and default.is_relative_to(Path(root).resolve()):
        common = Path(open_repo(repo).git.rev_parse("--git-common-dir"))
        return (common if common.is_absolute() else Path(root) / common) / "harness" / "runs"
    return default


def execute(
    steps_file: Path,
    repo: Path,
    *,
    policy_file: Path | None,
    provider_name: str | None,
    model: str | None,
    script: Path | None,
    blocks: str | None,
    runs_dir: Path | None,
    quiet: bool = False,
    path_map: list[str] | None = None,
    map_unplaced: bool = False,
    supervised: bool = False,
    budget: dict[str, Any] | None = None,
) -> RunSummary:
    if supervised and not sys.stdin.isatty():
        # Asked with nobody to answer, the run would wait forever or take end of input as a
        # decision: it stops before anything is created.
        raise UsageError("--supervised asks a person at a terminal, and stdin is not a terminal")
    root = Path(repo)
    resolved = resolve_policy(root, policy_file)
    policy, policy_text = resolved.policy, resolved.text
    root_dir = resolved.detected.source_root if resolved.detected else "."
    steps = remap_paths(load_steps(steps_file), parse_path_map(path_map or []), root_dir)
    user_repo = open_repo(root)
    # Before anything is created: a script naming paths this repository lacks stops here.
    check_script_paths(steps, user_repo, user_repo.head.commit.hexsha, resolved.detected)
    if not quiet:
        ui.say_policy(resolved)
    for key, value in (budget or {}).items():
        setattr(policy.loop, key, value)
    wanted = parse_blocks(blocks)
    known = {b.number for b in steps.blocks}
    if wanted and not set(wanted) <= known:
        missing = sorted(set(wanted) - known)
        raise UsageError(f"--blocks: no block {missing} in {steps_file} (has {sorted(known)})")
    runs_dir = records_dir(runs_dir, repo)
    provider = make_provider(provider_name, model=model, policy=policy, script=script)
    if map_unplaced and provider.name == "builtin":
        raise UsageError(builtin_refusal())
    if provider.name == "anthropic" and not quiet:
        ui.err.print(f"budget: {describe_budget(policy)}", markup=False)
    loop = Loop(
        RunOptions(
            steps=steps,
            steps_text=steps_file.read_text(encoding="utf-8", errors="replace"),
            repo=repo,
            policy=policy,
            policy_text=policy_text,
            policy_path=resolved.path,
            provider=provider,
            runs_dir=runs_dir,
            blocks=wanted,
            map_unplaced=map_unplaced,
            approver=make_approver(
                policy.approve, TerminalApprover(ui.err) if supervised else None
            ),
            progress=(lambda _m: None) if quiet else (lambda m: ui.err.print(m, markup=False)),
        )
    )
    return loop.run()


def describe_budget(policy: Policy) -> str:
    loop = policy.loop
    cap = loop.max_cost_usd
    said = [
        f"${cap:.2f}" if cap else "no cost cap",
        f"{loop.max_calls or 'unlimited'} calls",
    ]
    said += [f"{loop.max_tokens} tokens"] if loop.max_tokens else []
    said += [f"{loop.max_seconds:g}s"] if loop.max_seconds else []
    said += [f"{loop.max_item_calls} calls per item"] if loop.max_item_calls else []
    block = [
        f"${loop.block_max_cost_usd:.2f}" if loop.block_max_cost_usd else "",
        f"{loop.block_max_calls} calls" if loop.block_max_calls else "",
        f"{loop.block_max_tokens} tokens" if loop.block_max_tokens else "",
        f"{loop.block_max_seconds:g}s" if loop.block_max_seconds else "",
    ]
    if any(block):
        said.append("per block " + ", ".join(b for b in block if b))
    return ", ".join(said) + " (--max-cost and the other budget options, [loop] in the policy)"


def show(summary: RunSummary) -> None:
    ui.out.print(f"\n[bold]Run {summary.run_id}[/] ({summary.provider}: {summary.model})")
    for b in summary.blocks:
        ui.out.print(
            f"  block {b.number} {b.title}: [bold]{b.status}[/] — {len(b.commits)} kept, "
            f"{len(b.reverted)} reverted, {b.rejected} rejected"
        )
        if b.gates:
            ui.out.print(f"      {deltas(b)}", markup=False)
        for a in b.commands:
            at = f"line {a.line}: " if a.line is not None else ""
            ui.out.print(f"      {at}{a.command}: {a.result}", markup=False)
        for t in b.targets:
            ui.out.print(f"      target {t.result}", markup=False)
        for c in b.cannot_do:
            ui.out.print(f"      not attempted: {c}", markup=False)
        for r in b.reverts:
            ui.out.print(
                f"      reverted {r.sha[:10]} {r.title}: {'; '.join(r.because[:2])}", markup=False
            )
        for g in b.regressions:
            kind = "flaky" if g.flaky else "REGRESSION"
            ui.out.print(f"      {kind}: {g.message}", markup=False)
    ui.print_json({k: summary.summary[k] for k in SEED_KEYS if k in summary.summary})
    if summary.stopped:
        ui.out.print(f"[bold red]stopped early:[/] {summary.stopped}")
    ui.out.print(f"record:  {summary.run_dir}", markup=False)
    report = shlex.quote(str(Path(summary.run_dir) / "report.html"))
    ui.out.print(
        f"report:  harness report {shlex.quote(summary.run_dir)} --html {report}", markup=False
    )
    ui.out.print(f"branch:  {summary.branch}", markup=False)
    ui.out.print(
        f"review:  git -C {summary.repo} log --stat {summary.base_commit[:10]}..{summary.branch}",
        markup=False,
    )
    known = [r for b in summary.blocks for r in b.regressions if not r.flaky]
    if known:
        # A branch with a known regression is never offered for merging.
        ui.out.print(
            f"[bold red]not merge-ready:[/] {len(known)} regression(s) remain "
            f"(first: {escape(known[0].message)})"
        )
    else:
        ui.out.print(
            f"merge:   git -C {summary.repo} merge --ff-only {summary.branch}", markup=False
        )


def finish(summary: RunSummary, json_: bool) -> NoReturn:
    """The end of `run` and `resume`: the summary shown, and the exit it calls for."""
    if json_:
        ui.print_json(summary.report())
    else:
        show(summary)
    if summary.interrupted:
        raise Interrupted(
            f"{summary.stopped}; record in {summary.run_dir}, work so far on branch "
            f"{summary.branch}",
            run_dir=summary.run_dir,
            branch=summary.branch,
        )
    raise typer.Exit(summary.exit_code)


@budget_options
def command(
    steps: Path = typer.Argument(..., help="STEPS markdown script (mis-decoded text is repaired)."),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="Target git repository (default: the one enclosing the cwd; never modified: "
        "work happens in a separate worktree on a new branch).",
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (default: T4 policy)."),
    provider: str | None = typer.Option(
        None,
        "--provider",
        help="anthropic | builtin | scripted. Default: anthropic when "
        "ANTHROPIC_API_KEY is set, else builtin.",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model name (env HARNESS_MODEL; default claude-sonnet-5)."
    ),
    script: Path | None = typer.Option(
        None,
        "--script",
        help="For --provider scripted: a responses JSON file, or a recorded run directory "
        "(runs/<run-id>) to re-drive that run without the model.",
    ),
    blocks: str | None = typer.Option(None, "--blocks", help="Only these blocks, e.g. 1,3."),
    runs_dir: Path | None = typer.Option(
        None,
        "--runs-dir",
        help="Where runs are recorded.",
        envvar="HARNESS_RUNS_DIR",
    ),
    path_map: list[str] | None = typer.Option(
        None,
        "--path",
        metavar="SCRIPT_PATH=REPO_PATH",
        help="Point a path the STEPS script's gates name at this repository's, without editing "
        "the script (repeatable): --path lukhas=src/click; --path linter.ini= drops it.",
    ),
    map_unplaced: bool = typer.Option(
        False,
        "--map-unplaced",
        help="Ask the model first to map the STEPS text the parser could not place onto gates "
        "and targets (never replacing what it placed; recorded and replayed). Not with builtin.",
    ),
    supervised: bool = typer.Option(
        False,
        "--supervised",
        help="Ask at the terminal before each patch lands (approve, reject with a reason for "
        "the model, edit in $EDITOR, skip the item, quit) and after each block whether to go "
        "on; the policy's approval rules (approve.rules) decide first. Needs a terminal on "
        "stdin (exit 2).",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    budget: dict[str, Any] | None = None,
) -> None:
    """Drive a model through a STEPS script: PLAN -> TODO -> EXECUTE per block, guarded patches,
    gates after each block, reverts of exactly the commits that regressed.

    Exit codes: 0 every block met its goal; 1 the run finished but some goals are unmet;
    2 usage or I/O error, or a gate that could not run; 4 model provider failure (auth,
    retries exhausted); 5 a budget ran out (stopped, resumable); 130 interrupted, or
    stopped by the person supervising. The record in RUNS_DIR/<run-id> is complete in
    every case; `harness resume RUN_DIR` goes on after 5 or 130.
    """
    summary = execute(
        steps,
        resolve_repo(repo),
        policy_file=policy,
        provider_name=provider,
        model=model,
        script=script,
        blocks=blocks,
        runs_dir=runs_dir,
        quiet=False,
        path_map=path_map,
        map_unplaced=map_unplaced,
        supervised=supervised,
        budget=budget,
    )
    finish(summary, json_)
