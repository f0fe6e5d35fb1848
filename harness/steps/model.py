"""What a STEPS script says, as data: blocks, gate mappings, targets, guardrails."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from harness.errors import StepsError

GateName = Literal["ruff", "mypy", "pytest", "bandit", "imports", "secrets"]
GuardrailKind = Literal[
    "max_lines_per_file",
    "no_network_tests",
    "utc",
    "lane_separation",
    "security_clean",
    "progress_log",
    "other",
]
Metric = Literal["coverage", "tests_failed", "ruff", "mypy", "bandit", "imports", "secrets"]


class GateMapping(BaseModel):
    """How one command of the script maps onto the configured gates."""

    command: str = Field(description="the command as written in the script")
    argv: list[str] = Field(description="the command split with shlex")
    kind: Literal["gate", "command", "fixer"] = Field(
        description="gate: a configured gate; command: run as is, judged by exit code; "
        "fixer: rewrites code, never run as a gate"
    )
    gate: GateName | None = Field(None, description="the configured gate it maps onto")
    paths: list[str] = Field(default_factory=list, description="paths the command checks")
    config: str | None = Field(None, description="tool config file named by the command")
    cov: list[str] = Field(default_factory=list, description="pytest --cov targets")
    fail_under: float | None = Field(None, description="pytest --cov-fail-under")
    args: list[str] = Field(
        default_factory=list, description="the command's other options, carried to the gate"
    )
    shell: bool = Field(
        False, description="uses pipes or redirects: mapped on the part before them"
    )
    line: int | None = Field(None, description="the script line the command was read from")
    origin: Literal["parser", "model"] = Field(
        "parser", description="model: mapped from unplaced text by the model (never overrides)"
    )


class Target(BaseModel):
    """A measurable goal: `metric op value`, e.g. coverage >= 60 or ruff <= 0."""

    metric: Metric
    op: Literal[">=", "<="]
    value: float
    reduction: bool = Field(
        False,
        description="the value is a reduction from the block's starting count "
        "(at most start - value), as in 'ruff \u2212300'",
    )
    source: str = Field(description="the text the target was read from")
    line: int | None = Field(None, description="the script line the target was read from")
    origin: Literal["parser", "model"] = Field(
        "parser", description="model: mapped from unplaced text by the model (never overrides)"
    )


class Block(BaseModel):
    number: int
    title: str
    goals: list[str] = Field(
        default_factory=list, description="bullets and prose; nested bullets carry their parent"
    )
    gate_commands: list[str] = Field(default_factory=list, description="commands, in order")
    gates: list[GateMapping] = Field(default_factory=list, description="one per gate command")
    targets: list[Target] = Field(default_factory=list)
    final: bool = Field(False, description="the script's final gates")
    line: int | None = Field(None, description="the script line of the block's heading")


class Guardrail(BaseModel):
    text: str
    kind: GuardrailKind
    value: int | str | None = Field(None, description="20 for '<=20 lines/file', a log path")
    source: Literal["guardrails", "intro", "block", "section"] = Field(
        "guardrails",
        description="where it was read: the guardrails section, the intro, a block, "
        "or another section (the progress log is found wherever it is stated)",
    )


class Mapped(BaseModel):
    """One mapping the model proposed for a piece of unplaced text, and what became of it."""

    unplaced: str = Field(description="the unplaced text, verbatim")
    block: int
    kind: Literal["gate", "target"]
    command: str | None = None
    target: Target | None = None
    why: str = Field("", description="the model's reason")
    accepted: bool
    verdict: str = Field(description="'added', or why it was refused")


class StepsScript(BaseModel):
    source: str
    title: str
    repaired_encoding: bool = Field(description="the text was mis-decoded and repaired")
    intro: str = ""
    goals: list[str] = Field(default_factory=list, description="the script-wide goals section")
    blocks: list[Block]
    final_gates: list[str] = Field(default_factory=list, description="the final block's commands")
    guardrails: list[Guardrail] = Field(default_factory=list)
    output_keys: list[str] = Field(default_factory=list, description="top-level output JSON keys")
    output_subkeys: dict[str, list[str]] = Field(
        default_factory=dict, description="keys of nested objects, e.g. pytest: passed, failed"
    )
    output_template: str = ""
    progress_log: str | None = None
    unplaced: list[str] = Field(
        default_factory=list, description="text the parser could not place, verbatim"
    )
    mapped: list[Mapped] = Field(
        default_factory=list,
        description="what the model mapped of the unplaced text (optional, never overrides)",
    )

    def block(self, number: int) -> Block:
        for b in self.blocks:
            if b.number == number:
                return b
        raise StepsError(f"{self.source}: no block {number}")

    def max_lines_per_file(self) -> int | None:
        for g in self.guardrails:
            if g.kind == "max_lines_per_file" and isinstance(g.value, int):
                return g.value
        return None
