"""A parsed script written back as a STEPS script in the canonical shape.

Re-parsing the result gives the same blocks, gates and targets (a property the tests hold
the parser to): every block a `## BLOCK n — title` heading, its goals as bullets, its
commands in one `**Gate:**` shell block.
"""

from __future__ import annotations

from harness.steps.model import StepsScript


def to_markdown(script: StepsScript) -> str:
    out = [f"# {script.title}", ""]
    if script.intro:
        out += [f"> {line}" if line else ">" for line in script.intro.split("\n")] + [""]
    if script.goals:
        out += ["## Goals", "", *(f"- {g}" for g in script.goals), ""]
    for b in script.blocks:
        out += [f"## BLOCK {b.number} — {b.title}", ""]
        out += [f"- {g}" for g in b.goals]
        if b.goals:
            out.append("")
        if b.gate_commands:
            out += ["**Gate:**", "```bash", *b.gate_commands, "```", ""]
    if script.guardrails:
        out += ["## Guardrails", "", *(f"- {g.text}" for g in script.guardrails), ""]
    if script.output_template:
        out += ["## Output JSON", "", "```json", script.output_template, "```", ""]
    return "\n".join(out)
