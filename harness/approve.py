"""Who approves a patch before it lands, and whether a run goes on after a block.

The loop asks an `Approver` about each patch once the guard and every landing check passed (the
patch is written in the worktree, not committed) and, after each block but the last, whether
the run goes on. The policy's `[[approve.rules]]` decide first, in order, the first match
wins; what no rule decides (no match, or `ask`) goes to the person supervising at the terminal
(`harness run --supervised`), or, unattended, is decided by `[approve] unattended`. A replay
hands out the recorded decisions (`RecordedApprover`) and never asks.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field
from rich.console import Console
from rich.syntax import Syntax

from harness.errors import ItemSkipped, PatchEdited, PatchRejected, ReplayDiverged, SupervisorQuit
from harness.guard.globs import match_any
from harness.guard.models import Verdict
from harness.outcome import BlockOutcome, deltas
from harness.policy import ApproveConfig, ApproveRule
from harness.schemas import TodoItem

Decision = Literal["approve", "reject", "edit", "skip", "quit", "go_on", "stop"]


class FileChange(BaseModel):
    """One file of a patch: its lines added and removed, as `git diff --numstat` counts them."""

    path: str
    added: int = Field(ge=0)
    removed: int = Field(ge=0)

    @property
    def changed(self) -> int:
        return self.added + self.removed


class PatchReview(BaseModel):
    """What an approver is shown of a patch: everything the guard and the checks said."""

    block: int = Field(description="the STEPS block")
    item: str = Field(description="the todo item's id")
    title: str = Field(description="the todo item's title")
    attempt: int = Field(description="the model's attempt at the item, from 1")
    diff: str = Field(description="the diff as the guard will apply it (repaired)")
    files: list[FileChange] = Field(description="each file and its changed lines")
    guard: str = Field(description="the guard's verdict, one line")
    repairs: list[str] = Field(default_factory=list, description="what the guard repaired")
    checks: dict[str, str] = Field(
        default_factory=dict, description="the landing checks' results (the commit's trailers)"
    )
    verified: str | None = Field(
        None, description="the per-patch verification's result; None: not run for this patch"
    )

    @property
    def changed_lines(self) -> int:
        return sum(f.changed for f in self.files)

    @property
    def digest(self) -> str:
        return diff_digest(self.diff)


class BlockReview(BaseModel):
    """What an approver is shown after a block: its outcome and the gate deltas."""

    block: int
    title: str
    status: str = Field(description="the block's outcome (goal_met, nothing_left, ...)")
    deltas: str = Field(description="the gates at the block's start and end, one line")
    kept: int
    reverted: int
    rejected: int
    next_block: int = Field(description="the block the run would go on with")

    @classmethod
    def after(cls, out: BlockOutcome, next_block: int) -> BlockReview:
        return cls(
            block=out.number,
            title=out.title,
            status=out.status,
            deltas=deltas(out),
            kept=len(out.commits),
            reverted=len(out.reverted),
            rejected=out.rejected,
            next_block=next_block,
        )


class Approval(BaseModel):
    """One decision, and who or which rule made it."""

    decision: Decision
    by: str = Field(description="person, rule N (its name), unattended, or the record's")
    reason: str = Field("", description="a rejection's reason, sent to the model")
    diff: str | None = Field(None, description="an edit: the diff the person wrote")

    def recorded(self) -> dict[str, Any]:
        """As the `approval` event holds it."""
        return self.model_dump(exclude_none=True)

    def line(self) -> str:
        return f"{self.decision} by {self.by}" + (f": {self.reason}" if self.reason else "")

    def stopped_at(self, where: str) -> str:
        return f"stopped by {self.by} at {where}" + (f" ({self.reason})" if self.reason else "")


class Approver(Protocol):
    def patch(self, review: PatchReview) -> Approval: ...

    def block(self, review: BlockReview) -> Approval: ...


def diff_digest(diff: str) -> str:
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()[:16]


# Trailers of every commit, or shown apart (the per-patch verification).
_NOT_CHECKS = ("Harness-Run", "Harness-Block", "Harness-Item", "Harness-Verified")


def patch_review(
    block: int, item: TodoItem, attempt: int, verdict: Verdict, trailers: dict[str, str]
) -> PatchReview:
    """The review of a written patch: the guard's verdict and the landing checks' trailers."""
    return PatchReview(
        block=block,
        item=item.id,
        title=item.title,
        attempt=attempt,
        diff=verdict.diff,
        files=[FileChange(path=f.path, added=f.added, removed=f.removed) for f in verdict.files],
        guard=verdict.summary(),
        repairs=verdict.repairs,
        checks={
            k.removeprefix("Harness-").lower(): v
            for k, v in trailers.items()
            if k not in _NOT_CHECKS
        },
        verified=trailers.get("Harness-Verified"),
    )


def carry_out(said: Approval, where: str) -> dict[str, str]:
    """A patch decision, done: approved returns the commit's trailer (none when nobody was
    asked), anything else raises for the loop to undo the written patch."""
    if said.decision == "approve":
        return {} if said.by == "unattended" else {"Harness-Approved": said.by}
    if said.decision == "reject":
        raise PatchRejected(f"rejected by {said.by}", [f"rejected by {said.by}: {said.reason}"])
    if said.decision == "edit" and said.diff is not None:
        raise PatchEdited(f"edited by {said.by}", said.diff)
    if said.decision == "skip":
        raise ItemSkipped(f"{where}: skipped by {said.by}")
    raise SupervisorQuit(said.stopped_at(where))


# ---------------------------------------------------------------------------------- unattended


class Unattended:
    """Nobody to ask: `[approve] unattended` decides every patch, and the run always goes on."""

    def __init__(self, decision: Literal["approve", "reject"] = "approve") -> None:
        self.decision = decision

    def patch(self, review: PatchReview) -> Approval:
        if self.decision == "reject":
            return Approval(
                decision="reject",
                by="unattended",
                reason="no approval rule approves this patch and nobody supervises the run",
            )
        return Approval(decision="approve", by="unattended")

    def block(self, review: BlockReview) -> Approval:
        return Approval(decision="go_on", by="unattended")


# ---------------------------------------------------------------------------------- rules


def rule_name(rule: ApproveRule, index: int) -> str:
    return f"rule {index}" + (f" ({rule.name})" if rule.name else "")


def matches(rule: ApproveRule, review: PatchReview) -> bool:
    if rule.max_changed_lines is not None and review.changed_lines > rule.max_changed_lines:
        return False
    if not rule.paths:
        return True
    hits = [match_any(f.path, rule.paths) for f in review.files]
    return bool(hits) and (all(hits) if rule.match == "all" else any(hits))


class RuleChain:
    """The policy's rules in order, the first match deciding; `ask` and no match go to `then`."""

    def __init__(self, rules: list[ApproveRule], then: Approver) -> None:
        self.rules = rules
        self.then = then

    def decide(self, review: PatchReview) -> tuple[int, ApproveRule] | None:
        """The first rule that matches, numbered from 1."""
        return next(
            ((i, r) for i, r in enumerate(self.rules, 1) if matches(r, review)),
            None,
        )

    def patch(self, review: PatchReview) -> Approval:
        found = self.decide(review)
        if found is None or found[1].decision == "ask":
            return self.then.patch(review)
        index, rule = found
        name = rule_name(rule, index)
        if rule.decision == "reject":
            return Approval(decision="reject", by=name, reason=rule.reason or f"refused by {name}")
        return Approval(decision="approve", by=name)

    def block(self, review: BlockReview) -> Approval:
        return self.then.block(review)


def make_approver(config: ApproveConfig, supervisor: Approver | None) -> Approver:
    """The policy's rules, then the person supervising, or nobody (`unattended`)."""
    then = supervisor if supervisor is not None else Unattended(config.unattended)
    return RuleChain(config.rules, then) if config.rules else then


# ---------------------------------------------------------------------------------- a person

_PATCH_CHOICES: dict[str, Decision] = {
    "a": "approve",
    "r": "reject",
    "e": "edit",
    "s": "skip",
    "q": "quit",
}
_BLOCK_CHOICES: dict[str, Decision] = {"y": "go_on", "n": "stop", "q": "stop"}


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def run_editor(path: Path) -> bool:
    """Open `path` in $VISUAL or $EDITOR (vi without either), on the terminal; False when the
    editor could not run or failed."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = [*shlex.split(command), str(path)]
        done = subprocess.run(argv, check=False)  # the person's own editor, on the terminal
    except (OSError, ValueError):
        return False
    return done.returncode == 0


class TerminalApprover:
    """A person at the terminal: shown the item, the highlighted diff, the guard's verdict with
    each file's changed lines and the checks' results, asked what to do. End of input (the
    terminal went away) quits: the run never waits on a closed stdin."""

    def __init__(
        self,
        console: Console,
        read: Callable[[str], str] | None = None,
        editor: Callable[[Path], bool] = run_editor,
    ) -> None:
        self.console = console
        self.read = read or (lambda prompt: console.input(prompt, markup=False))
        self.editor = editor
        self.by = "person" + (f" ({user})" if (user := _user()) else "")

    def ask(self, prompt: str, choices: dict[str, Decision]) -> Decision | None:
        """The choice by its first letter; None at end of input."""
        while True:
            try:
                answer = self.read(prompt).strip().lower()
            except EOFError:
                return None
            if answer and answer[0] in choices:
                return choices[answer[0]]
            self.console.print(f"answer one of: {', '.join(choices)}", markup=False)

    def show(self, review: PatchReview) -> None:
        c = self.console
        c.rule(
            f"block {review.block}, item {review.item} (attempt {review.attempt})",
            style="bold",
        )
        c.print(review.title, markup=False)
        c.print(Syntax(review.diff, "diff", theme="ansi_dark", background_color="default"))
        c.print(f"guard: {review.guard}", markup=False)
        for repair in review.repairs:
            c.print(f"  repaired: {repair}", markup=False)
        for f in review.files:
            lines = "line" if f.changed == 1 else "lines"
            c.print(
                f"  {f.path}: {f.changed} changed {lines} (+{f.added}/-{f.removed})", markup=False
            )
        for name, said in review.checks.items():
            c.print(f"check {name}: {said}", markup=False)
        c.print(
            f"per-patch verification: {review.verified or 'not run for this patch'}",
            markup=False,
        )

    def patch(self, review: PatchReview) -> Approval:
        self.show(review)
        while True:
            choice = self.ask("[a]pprove, [r]eject, [e]dit, [s]kip item, [q]uit? ", _PATCH_CHOICES)
            if choice is None:
                return Approval(decision="quit", by=self.by, reason="end of input on the terminal")
            if choice == "reject":
                try:
                    reason = self.read("reason (sent to the model): ").strip()
                except EOFError:
                    return Approval(
                        decision="quit", by=self.by, reason="end of input on the terminal"
                    )
                return Approval(
                    decision="reject", by=self.by, reason=reason or "rejected without a reason"
                )
            if choice == "edit":
                edited = self.edit(review.diff)
                if edited is None:
                    continue
                return Approval(decision="edit", by=self.by, diff=edited)
            return Approval(decision=choice, by=self.by)

    def edit(self, diff: str) -> str | None:
        """The diff as the person left it in their editor; None (said why) when unchanged."""
        fd, name = tempfile.mkstemp(prefix="harness-edit-", suffix=".diff")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(diff)
            if not self.editor(path):
                self.console.print("the editor failed; the patch is unchanged", markup=False)
                return None
            edited = path.read_text(encoding="utf-8")
        finally:
            path.unlink(missing_ok=True)
        if not edited.strip() or edited == diff:
            self.console.print("the diff is unchanged", markup=False)
            return None
        return edited

    def block(self, review: BlockReview) -> Approval:
        c = self.console
        c.rule(f"block {review.block} done: {review.status}", style="bold")
        c.print(f"gates: {review.deltas or 'none'}", markup=False)
        c.print(
            f"{review.kept} kept, {review.reverted} reverted, {review.rejected} rejected",
            markup=False,
        )
        choice = self.ask(f"go on with block {review.next_block}? [y]es, [n]o: ", _BLOCK_CHOICES)
        if choice is None:
            return Approval(decision="stop", by=self.by, reason="end of input on the terminal")
        return Approval(decision=choice, by=self.by)


# ---------------------------------------------------------------------------------- a record


def decided(event: dict[str, Any]) -> Approval:
    """The decision an `approval` event holds."""
    return Approval.model_validate(
        {k: event.get(k) for k in ("decision", "by", "reason", "diff") if k in event}
    )


def patch_matches(event: dict[str, Any], review: PatchReview) -> bool:
    """Whether a recorded decision was made about this patch (its item and diff)."""
    return (
        event.get("on") == "patch"
        and event.get("item") == review.item
        and event.get("diff_sha") == review.digest
    )


def block_matches(event: dict[str, Any], review: BlockReview) -> bool:
    return event.get("on") == "block" and event.get("block") == review.block


class RecordedApprover:
    """The decisions of a recorded run, handed out in order, each only to the patch (or block)
    it was made about: a replay applies them and never asks."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.used = 0

    def _next(self, where: str, same: Callable[[dict[str, Any]], bool]) -> Approval:
        n = self.used + 1
        if self.used >= len(self.events):
            raise ReplayDiverged(
                f"the replay asks for approval #{n} ({where}); the run recorded {len(self.events)}",
                where=where,
            )
        event = self.events[self.used]
        if not same(event):
            raise ReplayDiverged(
                f"approval #{n} is asked about {where}; the run's was about {_about(event)}",
                where=where,
            )
        self.used += 1
        return decided(event)

    def patch(self, review: PatchReview) -> Approval:
        return self._next(
            f"block {review.block}, item {review.item}, patch {review.digest}",
            lambda e: patch_matches(e, review),
        )

    def block(self, review: BlockReview) -> Approval:
        return self._next(f"the end of block {review.block}", lambda e: block_matches(e, review))


def _about(event: dict[str, Any]) -> str:
    if event.get("on") == "block":
        return f"the end of block {event.get('block')}"
    return f"block {event.get('block')}, item {event.get('item')}, patch {event.get('diff_sha')}"
