"""`harness steps FILE`: show what the parser understood of a STEPS script, and what it did not."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.tree import Tree

from harness import ui
from harness.errors import HarnessError, UsageError
from harness.steps import (
    GateMapping,
    StepsScript,
    Target,
    load_steps,
    parse_path_map,
    remap_paths,
)
from harness.steps.mapping import builtin_refusal, describe, map_unplaced


def _at(line: int | None) -> str:
    return f"[dim]line {line}[/dim]  " if line is not None else ""


_BY_MODEL = "  [magenta](mapped by the model)[/magenta]"


def _target_label(t: Target) -> str:
    value = f"start - {t.value:g}" if t.reduction else f"{t.value:g}"
    label = f"{_at(t.line)}{t.metric} {t.op} {value}  [dim]{escape(t.source)}[/dim]"
    return label + (_BY_MODEL if t.origin == "model" else "")


def _mapping_label(m: GateMapping) -> str:
    cmd = f"{_at(m.line)}[bold]{escape(m.command)}[/bold]"
    if m.origin == "model":
        cmd += _BY_MODEL
    if m.shell:
        cmd += " [dim](pipes/redirects not part of the gate)[/dim]"
    if m.kind == "fixer":
        return f"{cmd}  [yellow]fixer: never run as a gate[/yellow]"
    if m.kind == "command" or m.gate is None:
        return f"{cmd}  [cyan]plain command (exit code)[/cyan]"
    details = [f"gate [green]{m.gate}[/green]"]
    if m.paths:
        details.append(escape(f"paths {', '.join(m.paths)}"))
    if m.cov:
        details.append(escape(f"cov {', '.join(m.cov)}"))
    if m.config:
        details.append(escape(f"config {m.config}"))
    if m.fail_under is not None:
        details.append(f"fail_under {m.fail_under:g}")
    if m.args:
        details.append(escape(f"args {' '.join(m.args)}"))
    return f"{cmd}  -> {'; '.join(details)}"


def render(script: StepsScript) -> Tree:
    enc = "repaired (mis-decoded UTF-8)" if script.repaired_encoding else "clean"
    tree = Tree(f"[bold]{escape(script.title)}[/bold]  ({escape(script.source)}, encoding {enc})")
    if script.goals:
        goals = tree.add("Goals")
        for g in script.goals:
            goals.add(escape(g))
    blocks = tree.add(f"Blocks ({len(script.blocks)})")
    for b in script.blocks:
        suffix = "  [magenta](final gates)[/magenta]" if b.final else ""
        node = blocks.add(f"{_at(b.line)}[bold]BLOCK {b.number}[/bold] {escape(b.title)}{suffix}")
        if b.goals:
            goals = node.add("goals")
            for g in b.goals:
                goals.add(escape(g))
        gates = node.add("gate commands" if b.gates else "gate commands: none")
        for m in b.gates:
            gates.add(_mapping_label(m))
        if b.targets:
            targets = node.add("targets")
            for t in b.targets:
                targets.add(_target_label(t))
    guard = tree.add(f"Guardrails ({len(script.guardrails)})")
    for rail in script.guardrails:
        value = f" = {escape(str(rail.value))}" if rail.value is not None else ""
        origin = "" if rail.source == "guardrails" else f"  [dim](from the {rail.source})[/dim]"
        guard.add(f"[green]{rail.kind}[/green]{value}: {escape(rail.text)}{origin}")
    tree.add(f"Final gates: {len(script.final_gates)} command(s)")
    tree.add(f"Output keys: {escape(', '.join(script.output_keys) or 'none')}")
    tree.add(f"Progress log: {escape(script.progress_log or 'none')}")
    unplaced = tree.add(f"[yellow]Not placed ({len(script.unplaced)})[/yellow]")
    for u in script.unplaced:
        first, _, rest = u.partition("\n")
        if first.strip() == "---":
            first = "front matter"
        lines = rest.count("\n") + 1 if rest else 0
        more = f"  [dim](+{lines} lines)[/dim]" if lines else ""
        unplaced.add(f"{escape(first)}{more}")
    if script.mapped:
        added = sum(1 for m in script.mapped if m.accepted)
        node = tree.add(f"[magenta]Mapped by the model ({added} of {len(script.mapped)})[/magenta]")
        for entry in script.mapped:
            mark = "[green]added[/green]" if entry.accepted else "[red]refused[/red]"
            node.add(f"{mark} {escape(describe(entry))}")
    return tree


def command(
    file: Path = typer.Argument(..., help="The STEPS markdown script."),
    json_: bool = typer.Option(False, "--json", help="Print the parsed script as JSON."),
    map_unplaced: bool = typer.Option(
        False,
        "--map-unplaced",
        help="Ask the model to map the text the parser could not place onto gates and "
        "targets (never replacing what it placed). Needs --provider anthropic, or scripted.",
    ),
    provider: str | None = typer.Option(
        None, "--provider", help="For --map-unplaced: anthropic | scripted."
    ),
    model: str | None = typer.Option(None, "--model", help="For --map-unplaced: the model."),
    script_file: Path | None = typer.Option(
        None, "--script", help="For --provider scripted: a responses JSON file or a recorded run."
    ),
    path_map: list[str] | None = typer.Option(
        None,
        "--path",
        metavar="SCRIPT_PATH=REPO_PATH",
        help="Show the script with its gates' paths mapped as `harness run --path` maps them, "
        "for the repository enclosing the current directory (repeatable).",
    ),
) -> None:
    """Show what was understood of a STEPS script: blocks, gates, guardrails, and what was not.

    Each block, gate command and target names the script line it was read from.
    """
    script = load_steps(file)
    if path_map:
        script = remap_paths(script, parse_path_map(path_map), _source_root())
    if map_unplaced:
        script = _mapped(script, provider, model, script_file)
    if json_:
        ui.print_json(script.model_dump(mode="json"))
        return
    ui.out.print(render(script), soft_wrap=False)


def _source_root() -> str:
    """Where the enclosing repository's packages import from, as `harness run` finds it: a
    --cov target mapped onto a module file becomes its import name from there."""
    from harness.detect import detect
    from harness.gitutil import resolve_repo

    try:
        return detect(resolve_repo()).source_root
    except HarnessError:
        return "."


def _mapped(
    script: StepsScript, provider_name: str | None, model: str | None, script_file: Path | None
) -> StepsScript:
    from harness.budget import Budget, limits, metered
    from harness.policy import load_policy
    from harness.providers.registry import default_provider_name, make_provider

    if (provider_name or default_provider_name()) == "builtin":
        raise UsageError(builtin_refusal())
    policy = load_policy()
    chosen = make_provider(provider_name, model=model, policy=policy, script=script_file)
    # The default policy's budget holds here too: the provider has none of its own.
    return map_unplaced(script, metered(chosen, Budget(*limits(policy.loop))))
