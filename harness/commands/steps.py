"""`harness steps FILE`: show what the parser understood of a STEPS script, and what it did not."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.tree import Tree

from harness import ui
from harness.steps import GateMapping, StepsScript, Target, load_steps


def _at(line: int | None) -> str:
    return f"[dim]line {line}[/dim]  " if line is not None else ""


def _target_label(t: Target) -> str:
    value = f"start - {t.value:g}" if t.reduction else f"{t.value:g}"
    return f"{_at(t.line)}{t.metric} {t.op} {value}  [dim]{escape(t.source)}[/dim]"


def _mapping_label(m: GateMapping) -> str:
    cmd = f"{_at(m.line)}[bold]{escape(m.command)}[/bold]"
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
    return tree


def command(
    file: Path = typer.Argument(..., help="The STEPS markdown script."),
    json_: bool = typer.Option(False, "--json", help="Print the parsed script as JSON."),
) -> None:
    """Show what was understood of a STEPS script: blocks, gates, guardrails, and what was not.

    Each block, gate command and target names the script line it was read from.
    """
    script = load_steps(file)
    if json_:
        ui.print_json(script.model_dump(mode="json"))
        return
    ui.out.print(render(script), soft_wrap=False)
