"""What the model must return in each phase. Model output is untrusted: validated here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Plan(_Out):
    """submit_plan: the approach for one STEPS block."""

    summary: str = Field(description="one paragraph: what will be done in this block and why")
    steps: list[str] = Field(default_factory=list, description="ordered approach, short lines")
    cannot_do: list[str] = Field(
        default_factory=list, description="goals of the block this model will not work on, and why"
    )


class TodoItem(_Out):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="short unique id, e.g. T1")
    title: str = Field(min_length=1, max_length=200)
    files: list[str] = Field(default_factory=list, description="repo-relative files to change")
    gate: str | None = Field(None, description="gate this item improves: ruff, mypy, pytest, ...")


class TodoList(_Out):
    """submit_todos: the concrete items for this block (may be empty: nothing left to do)."""

    items: list[TodoItem] = Field(default_factory=list, max_length=50)


class PatchProposal(_Out):
    """propose_patch: one unified diff for one TODO item, or give up on the item."""

    item_id: str
    action: Literal["patch", "skip"] = "patch"
    diff: str = Field("", description="unified diff (git style, a/ b/ prefixes)")
    explanation: str = Field("", max_length=2000)


class LineRange(_Out):
    path: str = Field(description="repo-relative file")
    start: int = Field(ge=1, description="first line, as numbered in the file (1-based)")
    end: int = Field(ge=1, description="last line, inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> LineRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class ReadFiles(_Out):
    """read_files: ask to see more files, or more lines of a file too large to show whole,
    before proposing a patch."""

    paths: list[str] = Field(
        default_factory=list, max_length=8, description="repo-relative files to show"
    )
    ranges: list[LineRange] = Field(
        default_factory=list,
        max_length=8,
        description="line ranges to add to a large file's view (its other lines stay hidden)",
    )

    @model_validator(mode="after")
    def _asks_something(self) -> ReadFiles:
        if not self.paths and not self.ranges:
            raise ValueError("give at least one path or line range")
        return self


class Review(_Out):
    """submit_review: your judgement of one patch another model wrote: does it game a gate
    (make a check pass or a number move without doing the work the item asks for)?"""

    games_gate: bool = Field(
        description="true if the patch games a gate, a test or the guard instead of fixing"
    )
    how: str = Field(
        "",
        max_length=1000,
        description="if true: how it games, naming the file and lines; else empty or one line",
    )


class MappedGate(_Out):
    unplaced: int = Field(ge=1, description="the number of the unplaced item, as listed")
    block: int = Field(description="the block whose gate it is")
    command: str = Field(
        min_length=1, max_length=500, description="the command, exactly as the item writes it"
    )
    why: str = Field("", max_length=300, description="one line: why this text is that gate")


class MappedTarget(_Out):
    unplaced: int = Field(ge=1, description="the number of the unplaced item, as listed")
    block: int = Field(description="the block whose target it is")
    metric: Literal["coverage", "tests_failed", "ruff", "mypy", "bandit", "imports", "secrets"]
    op: Literal[">=", "<="]
    value: float = Field(ge=0, description="the number, as the item states it")
    reduction: bool = Field(
        False, description="true when the item states a reduction from the block's start"
    )
    why: str = Field("", max_length=300, description="one line: why this text is that target")


class UnplacedMap(_Out):
    """map_unplaced: the gate commands and targets stated in text the parser could not place.
    Map only what an item clearly states; leave out everything else (an empty answer is fine).
    """

    gates: list[MappedGate] = Field(default_factory=list, max_length=50)
    targets: list[MappedTarget] = Field(default_factory=list, max_length=50)


PHASE_TOOLS: dict[str, list[tuple[str, type[_Out]]]] = {
    "plan": [("submit_plan", Plan)],
    "todo": [("submit_todos", TodoList)],
    "execute": [("propose_patch", PatchProposal), ("read_files", ReadFiles)],
    "review": [("submit_review", Review)],
    "steps": [("map_unplaced", UnplacedMap)],
}
