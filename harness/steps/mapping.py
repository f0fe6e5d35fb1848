"""Optional: a model maps what the parser could not place onto gates and targets.

The answer is validated twice: by its schema (`schemas.UnplacedMap`), then against the script.
A command must be written in the item it is mapped from and be a command; a number must be
stated in the item; a block must exist; and nothing the parser placed is replaced: a block
that has a gate (or a target on a metric) from the parser keeps it, and the model's mapping for
it is refused with the reason. What was added and what was refused is kept in `script.mapped`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from harness import prompts
from harness.errors import ExitCode, HarnessError, StepsError
from harness.providers.base import Message, ModelRequest, Provider, ToolSpec
from harness.schemas import PHASE_TOOLS, MappedGate, MappedTarget, UnplacedMap
from harness.steps.commands import map_command, not_a_command
from harness.steps.model import Mapped, StepsScript, Target

Record = Callable[..., None]


class MappingUnavailable(HarnessError):
    """The model gave no valid mapping; the parse stands as it is."""

    exit_code = ExitCode.PROVIDER


def wanted(provider: Provider, asked: bool) -> bool:
    """Whether to ask: never the builtin provider (it has no model); the Anthropic model when
    asked; a scripted provider whose script (or recorded run) has the answer, so a replay maps
    exactly where the recorded run did."""
    if provider.name == "builtin":
        return False
    if provider.name == "scripted":
        return "steps" in getattr(provider, "phases", ())
    return asked


def _tools() -> list[ToolSpec]:
    return [
        ToolSpec(name=n, description=(m.__doc__ or n).strip(), input_schema=m.model_json_schema())
        for n, m in PHASE_TOOLS["steps"]
    ]


def _target_text(t: Target) -> str:
    value = f"start - {t.value:g}" if t.reduction else f"{t.value:g}"
    return f"{t.metric} {t.op} {value}"


def prompt(script: StepsScript) -> str:
    blocks = [
        {
            "number": b.number,
            "title": b.title,
            "final": b.final,
            "gates": [m.command for m in b.gates],
            "targets": [_target_text(t) for t in b.targets],
        }
        for b in script.blocks
    ]
    return prompts.render(
        "map_unplaced", title=script.title, blocks=blocks, unplaced=script.unplaced
    )


def ask(script: StepsScript, provider: Provider, record: Record, tries: int = 3) -> UnplacedMap:
    """The model's validated answer; an invalid one goes back with the error, `tries` times.
    `record(kind, **data)` receives the same events the loop records for its own calls, so a
    recorded run replays this answer too."""
    convo = [Message(role="user", content=prompt(script))]
    context = {
        "unplaced": list(script.unplaced),
        "blocks": [b.model_dump(mode="json") for b in script.blocks],
    }
    system = prompts.render("map_system")
    for _ in range(tries):
        request = ModelRequest(
            phase="steps",
            system=system,
            messages=convo,
            tools=_tools(),
            tool_choice="map_unplaced",
            context=context,
        )
        record("model_request", phase="steps", messages=[m.model_dump() for m in convo])
        response = provider.complete(request)
        record("model_response", phase="steps", **response.model_dump())
        try:
            if response.tool != "map_unplaced":
                raise ValueError(f"expected a call to map_unplaced, got {response.tool or 'text'}")
            return UnplacedMap.model_validate(response.input or {})
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "input"
                error = f"{loc}: {first['msg']} ({exc.error_count()} error(s))"
            else:
                error = str(exc).splitlines()[0]
            record("invalid_output", phase="steps", error=error)
            said = response.text if response.input is None else json.dumps(response.input)
            convo += [
                Message(role="assistant", content=said or "(empty answer)"),
                Message(
                    role="user",
                    content=prompts.render("invalid", tool="map_unplaced", error=error),
                ),
            ]
    raise MappingUnavailable(f"map_unplaced: no valid answer in {tries} tries")


def _flat(text: str) -> str:
    return " ".join(text.replace("`", " ").split())


def _judge_gate(script: StepsScript, g: MappedGate, item: str) -> str | None:
    """Why a mapped gate is refused, or None to add it."""
    block = next(b for b in script.blocks if b.number == g.block)
    command = " ".join(g.command.split())
    if command not in _flat(item):
        return "the command is not written in the item"
    why = not_a_command(command)
    if why is not None:
        return f"not a command: {why}"
    try:
        mapped = map_command(command)
    except StepsError as exc:
        return str(exc)
    if mapped.kind == "fixer":
        return "a fixer, never a gate"
    for m in block.gates:
        same_gate = mapped.kind == "gate" and m.kind == "gate" and m.gate == mapped.gate
        if same_gate or m.command == command:
            at = f" (line {m.line})" if m.line is not None else ""
            return f"the block has `{m.command}`{at}: a mapping never replaces what is placed"
    return None


def _judge_target(script: StepsScript, t: MappedTarget, item: str) -> str | None:
    block = next(b for b in script.blocks if b.number == t.block)
    numbers = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", item)}
    if t.value not in numbers:
        return f"the item states no {t.value:g}"
    for placed in block.targets:
        if placed.metric == t.metric and placed.reduction == t.reduction:
            return (
                f"the block has the target {_target_text(placed)}: a mapping never replaces "
                "what is placed"
            )
    return None


def judge(script: StepsScript, answer: UnplacedMap) -> StepsScript:
    """The script with the model's acceptable mappings added (origin "model") and every
    mapping, added or refused, in `mapped`. What the parser placed is never changed."""
    new = script.model_copy(deep=True)
    numbers = {b.number for b in new.blocks}
    entries: list[tuple[str, MappedGate | MappedTarget]] = [
        *(("gate", g) for g in answer.gates),
        *(("target", t) for t in answer.targets),
    ]
    for kind, m in entries:
        item = new.unplaced[m.unplaced - 1] if m.unplaced <= len(new.unplaced) else ""
        target = None
        if isinstance(m, MappedTarget):
            target = Target(
                metric=m.metric,
                op=m.op,
                value=m.value,
                reduction=m.reduction,
                source=item.splitlines()[0] if item else "",
                origin="model",
            )
        entry = Mapped(
            unplaced=item,
            block=m.block,
            kind="gate" if kind == "gate" else "target",
            command=m.command if isinstance(m, MappedGate) else None,
            target=target,
            why=m.why,
            accepted=False,
            verdict="",
        )
        if not item:
            entry.verdict = f"there is no unplaced item {m.unplaced}"
        elif m.block not in numbers:
            entry.verdict = f"there is no block {m.block}"
        elif isinstance(m, MappedGate):
            entry.verdict = _judge_gate(new, m, item) or ""
        else:
            entry.verdict = _judge_target(new, m, item) or ""
        if not entry.verdict:
            entry.accepted, entry.verdict = True, "added"
            block = new.block(m.block)
            if isinstance(m, MappedGate):
                command = " ".join(m.command.split())
                placed = map_command(command).model_copy(update={"origin": "model"})
                block.gates.append(placed)
                block.gate_commands.append(command)
                if block.final:
                    new.final_gates.append(command)
            elif target is not None:
                block.targets.append(target)
        new.mapped.append(entry)
    return new


def map_unplaced(
    script: StepsScript, provider: Provider, record: Record | None = None
) -> StepsScript:
    """Ask the model to map the script's unplaced text; the script with what was added."""
    if not script.unplaced:
        return script
    answer = ask(script, provider, record or (lambda *_a, **_k: None))
    return judge(script, answer)


def as_recorded(script: StepsScript, events: list[dict[str, Any]]) -> StepsScript:
    """The script as a run with `--map-unplaced` used it: the recorded mapping judged again
    (a record's steps.json holds the script before it), without asking the model. Raises
    ValidationError when the recorded answer does not validate."""
    mapped = [e for e in events if e["kind"] == "steps_mapped" and e.get("mapped")]
    answers = [
        e
        for e in events
        if e["kind"] == "model_response"
        and e.get("phase") == "steps"
        and e.get("tool") == "map_unplaced"
    ]
    if not mapped or not answers:
        return script
    return judge(script, UnplacedMap.model_validate(answers[-1].get("input") or {}))


def describe(entry: Mapped) -> str:
    what = f"gate `{entry.command}`" if entry.kind == "gate" else ""
    if entry.target is not None:
        what = f"target {_target_text(entry.target)}"
    first = entry.unplaced.splitlines()[0] if entry.unplaced else ""
    return f"BLOCK {entry.block}: {what} from {first!r}: {entry.verdict}"


def builtin_refusal() -> str:
    return (
        "--map-unplaced needs a model: --provider anthropic (ANTHROPIC_API_KEY), or "
        "--provider scripted --script FILE; the builtin provider has none"
    )
