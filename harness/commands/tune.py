"""`harness tune`: judge recorded proposals, or a labelled corpus of patches, under policy
variants, and report what each variant would have accepted and refused (harness/tune.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import ui
from harness.errors import UsageError
from harness.gitutil import resolve_repo
from harness.policy import resolve_policy
from harness.tune import (
    CorpusTally,
    RunTally,
    Say,
    load_corpus,
    plot,
    refused_rules,
    tune_corpus,
    tune_runs,
    variants,
)


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"


def _by(refused_by: dict[str, int], top: int = 3) -> str:
    """The rules that refused most, and how many more there are (--json lists all)."""
    ranked = sorted(refused_by.items(), key=lambda x: (-x[1], x[0]))
    shown = ", ".join(f"{r} {n}" for r, n in ranked[:top])
    return shown + (f", +{len(ranked) - top} more" if len(ranked) > top else "") or "-"


def show_corpus(tallies: Sequence[CorpusTally]) -> None:
    table = Table(title="guard variants on the labelled corpus", title_justify="left")
    for col in ("variant", "accepted", "blocked-bad", "blocked-good", "missed", "refused by"):
        table.add_column(col, overflow="fold")
    for t in tallies:
        table.add_row(
            t.variant.name,
            _pct(t.accepted, t.patches),
            _pct(t.blocked_bad, t.bad),
            _pct(t.blocked_good, t.good),
            _pct(t.missed, t.bad),
            _by(t.refused_by),
        )
    ui.out.print(table)


def show_runs(tallies: Sequence[RunTally]) -> None:
    for section in ("comparable", "not_comparable"):
        table = Table(
            title="recorded path (as it happened up to the first changed verdict)"
            if section == "comparable"
            else "not comparable (after a changed verdict: counterfactual, not evidence)",
            title_justify="left",
        )
        cols = ("run", "variant", "proposals", "accepted", "reverted", "changed",
                "blocked-bad", "blocked-good", "blocked-gaming", "neutral", "unjudged",
                "refused by")  # fmt: skip
        for col in cols:
            table.add_column(col, overflow="fold")
        for t in tallies:
            s = t.comparable if section == "comparable" else t.not_comparable
            table.add_row(
                t.run_id[-6:], t.variant.name, str(s.proposals), str(s.accepted), str(s.reverted),
                str(s.changed), str(s.blocked_bad), str(s.blocked_good), str(s.blocked_gaming),
                str(s.blocked_neutral), str(s.blocked_unknown), _by(s.refused_by),
            )  # fmt: skip
        ui.out.print(table)
    show_blocks(tallies)
    for t in tallies:
        if t.diverged_at:
            ui.out.print(
                f"{t.run_id} [{t.variant.name}]: verdict changed at {t.diverged_at}; the "
                "recorded path is no longer valid from there",
                markup=False,
            )


def _gate_cell(name: str, entry: dict[str, Any]) -> str:
    found = entry.get("findings")
    if isinstance(found, dict) and "percent" in found:
        shown = f"{found['percent']}%" if found["percent"] is not None else "-"
    elif isinstance(found, dict):
        shown = "/".join(f"{n} {k}" for k, n in found.items() if n)
    else:
        shown = str(found)
    status = entry.get("status")
    return f"{name} {shown}" + ("" if status == "passed" else f" ({status})")


def show_blocks(tallies: Sequence[RunTally]) -> None:
    table = Table(
        title="gate metrics at each block's end (recorded: as the run ended it; rebuilt: the "
        "recorded landings the variant keeps, measured; counterfactual, not comparable)",
        title_justify="left",
    )
    for col in ("run", "variant", "block", "source", "gates"):
        table.add_column(col, overflow="fold")
    for t in tallies:
        for b in t.blocks:
            cells = ", ".join(_gate_cell(g, e) for g, e in b.gates.items()) or b.why or "-"
            table.add_row(t.run_id[-6:], t.variant.name, str(b.block), b.source, cells)
    ui.out.print(table)
    ui.out.print(
        "blocked-good: refused, its gates improve with no regression, and the default guard's "
        "gaming rules (suppressions, tests, hiding, gate config, secrets) find nothing in it; "
        "one they refuse is blocked-gaming: better numbers by not measuring are not good",
        markup=False,
    )


@contextmanager
def _progress(enabled: bool) -> Iterator[Say]:
    # A bar only on a terminal: in a pipe or a log it would be noise around the report.
    if not enabled or not ui.err.is_terminal:
        yield lambda _m: None
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=ui.err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("tune")
        yield lambda m: bar.update(task, description=m)


def command(
    run_dirs: list[Path] = typer.Argument(
        None, help="Recorded run directories (runs/<run-id>); or use --corpus."
    ),
    sets: list[str] = typer.Option(
        [],
        "--set",
        help="KEY=VALUE: a dotted policy key and a TOML value; all --set together "
        "make one variant besides the base policy (guard.max_changed_lines_per_file=10).",
    ),
    grids: list[str] = typer.Option(
        [],
        "--grid",
        help="KEY=V1,V2,...: one variant per value; several --grid make the cross product.",
    ),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        help="A directory of *.diff patches with labels.toml or labels.json "
        "(good/bad per patch), judged against --repo's HEAD.",
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="The label file, when it is not in the corpus directory."
    ),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="Corpus: the repository the patches apply to (default: the current "
        "one). Runs: a clone holding the run's base commit (default: the recorded repository).",
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="Corpus: the base policy (default: harness.toml or the shipped "
        "one). Runs always start from the policy recorded in the run.",
    ),
    test_layers: bool = typer.Option(
        False,
        "--test-layers",
        help="Corpus: also run the behaviour and mutation layers on "
        "accepted patches (they run the repository's tests).",
    ),
    evaluate_rejected: bool = typer.Option(
        False,
        "--evaluate-rejected",
        help="Runs: run the block's gates on each proposal a "
        "variant refuses (scratch worktrees) to tell blocked-good from blocked-bad.",
    ),
    plot_to: Path | None = typer.Option(
        None, "--plot", help="Write a chart of acceptance against bad caught (PNG, matplotlib)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Judge recorded proposals, or a labelled corpus of patches, under policy variants:
    what each would accept, refuse (by rule and layer), and what it would block that the gates
    show bad or good. A recorded run is followed only up to the first proposal whose verdict
    a variant changes; what follows is counted apart, as not comparable.

    Exit codes: 0 report written; 2 bad key or value, unusable record or corpus, no repository.
    """
    if bool(run_dirs) == (corpus is not None):
        raise UsageError("give recorded run directories or --corpus DIR, not both or neither")
    if not sets and not grids:
        raise UsageError("nothing to compare: give --set KEY=VALUE or --grid KEY=V1,V2")
    variant_list = variants(sets, grids)
    with _progress(not json_ and len(variant_list) > 1) as say:
        if corpus is not None:
            patches = load_corpus(corpus, labels)
            root = resolve_repo(repo)
            base = resolve_policy(root, policy).policy
            ctallies = tune_corpus(
                patches, root, base, variant_list, test_layers=test_layers, progress=say
            )
            rtallies: list[RunTally] = []
        else:
            if policy is not None or test_layers:
                raise UsageError("--policy and --test-layers are for --corpus")
            rtallies = tune_runs(
                run_dirs, variant_list, repo=repo, evaluate_rejected=evaluate_rejected,
                progress=say,
            )  # fmt: skip
            ctallies = []
    if plot_to is not None:
        if ctallies:
            points = [
                (t.variant.name, 100 * t.accepted / max(t.patches, 1),
                 100 * t.blocked_bad / max(t.bad, 1))
                for t in ctallies
            ]  # fmt: skip
            plot(points, plot_to, xlabel="accepted (% of patches)", ylabel="bad refused (% of bad)")
        else:
            points = [
                (f"{t.run_id[-6:]} {t.variant.name}", float(t.comparable.accepted),
                 float(t.comparable.blocked_bad))
                for t in rtallies
            ]  # fmt: skip
            plot(points, plot_to, xlabel="accepted (comparable proposals)",
                 ylabel="blocked-bad (comparable proposals)")  # fmt: skip
    if json_:
        ui.print_json(
            {
                "variants": [v.model_dump() for v in variant_list],
                "rules": refused_rules(
                    ctallies
                    or [t.comparable for t in rtallies] + [t.not_comparable for t in rtallies]
                ),
                "corpus": [t.model_dump() for t in ctallies] if corpus is not None else None,
                "runs": [t.model_dump() for t in rtallies] if corpus is None else None,
            }
        )
    elif ctallies:
        show_corpus(ctallies)
    else:
        show_runs(rtallies)
    if plot_to is not None and not json_:
        ui.err.print(f"chart: {plot_to}", markup=False)
