"""`harness resume RUN_DIR`: go on with an interrupted run (Ctrl-C, a crash, kill -9, a budget)
on its own branch, from its last finished block.

The record makes it possible. Events are fsynced one by one; at each block's end a `checkpoint`
event holds the branch's commit and what the rest of the run needs (the ledger of changes taken
out, the commits landed, the progress-log entries, the spend). A resume:

- keeps the events up to the last checkpoint in `events.jsonl` and moves the rest (the
  unfinished block) to `events.interrupted-N.jsonl`: no event is lost, and the main log reads
  as the run would have without the interruption;
- sets the branch back to the checkpoint's commit, so what the unfinished block left (a commit
  whose `applied` event never came, a progress-log commit made on the way out) is not kept twice;
- runs that block again from its start, the way a replay does: each request the loop sends that
  the unfinished block already sent is answered from the record, not by the model; the times
  and the gate results it recorded are handed back (`CatchUp`), so its commits come out as they
  were, to the byte; from the first request the record cannot answer on, the run is live.
  A landing's checks (the guard's behaviour and mutation layers, the per-patch verifier, the
  quick lint) are handed back too where what decides them is what it was (`ResumeLoop.recorded`):
  a landing caught up on is not tested again.

Finished blocks are never run again: their outcomes come from the record. A block a person
quit in (`q` at a patch) was cut short, not finished: it is the one gone on with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import git
from pydantic import ValidationError

from harness import __version__
from harness.approve import (
    Approval,
    Approver,
    BlockReview,
    PatchReview,
    block_matches,
    decided,
    make_approver,
    patch_matches,
)
from harness.budget import Budget, Spend
from harness.clock import Purpose, WallClock
from harness.errors import ExitCode, GitError, NotResumable, UsageError
from harness.gates.models import GateRun
from harness.gitutil import open_repo, tree_hash, worktrees
from harness.loop import Loop, Resumed, RunOptions
from harness.outcome import BlockOutcome, RunSummary
from harness.policy import Policy
from harness.providers.base import ModelRequest, ModelResponse, Provider, Usage
from harness.providers.scripted import ScriptedProvider
from harness.record import RECORD_FORMAT, Manifest, read_events, request_digest, request_pairs
from harness.redact import REDACTED
from harness.steps import StepsScript, mapping

RESUMABLE = (ExitCode.INTERRUPTED, ExitCode.BUDGET)
_META = ("seq", "ts", "kind")


@dataclass
class Interrupted:
    """A run record split where the run can go on from."""

    dir: Path
    manifest: Manifest
    steps: StepsScript
    steps_text: str
    policy: Policy
    kept: list[str]  # raw lines of events.jsonl up to the last checkpoint
    tail: list[dict[str, Any]]  # the unfinished block's events to catch up on (bodies resolved)
    tail_lines: list[str]  # the unfinished block's events in this log, to be set aside
    outcomes: list[BlockOutcome]
    checkpoint: dict[str, Any]
    tail_from: str | None = None  # the set-aside log the tail was read from, if not this one

    @cached_property
    def kept_events(self) -> list[dict[str, Any]]:
        """`kept`, parsed once."""
        return [json.loads(line) for line in self.kept]

    @property
    def head(self) -> str:
        return str(self.checkpoint.get("head") or self.manifest.base_commit)

    def recorded_responses(self) -> int:
        """Answers the model gave in the whole record: what a scripted provider has served."""
        events = [*self.kept_events, *self.tail]
        return sum(1 for e in events if e.get("kind") == "model_response")

    def spent(self) -> Spend:
        """The spend up to the last checkpoint (without one, the calls made before the first
        block: the mapping of the script) and the unfinished block's wall time; its calls are
        charged as the catch-up hands them back or gives them up (`CatchUpProvider.owed`)."""
        spent = Spend.model_validate(self.checkpoint.get("spent") or {})
        if not self.checkpoint:
            kept = self.kept_events
            for _asked, answer in request_pairs(kept):
                spent.charge(_usage(answer))
            if kept:
                spent.seconds += _seconds(kept[0], kept[-1])
        if self.tail:
            spent.seconds += _seconds(self.tail[0], self.tail[-1])
        return spent


def _usage(answer: dict[str, Any]) -> Usage | None:
    """What a recorded answer spent; None for a call that failed."""
    if answer.get("kind") != "model_response":
        return None
    return Usage.model_validate(answer.get("usage") or {})


def _seconds(first: dict[str, Any], last: dict[str, Any]) -> float:
    try:
        took = datetime.fromisoformat(last["ts"]) - datetime.fromisoformat(first["ts"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, took.total_seconds())


def _raw_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [line for line in fh if line.strip()]


def load(run_dir: Path) -> Interrupted:
    """Read an interrupted run's record; NotResumable says why one cannot go on."""
    if not (run_dir / "manifest.json").is_file():
        raise NotResumable(f"{run_dir}: not a run record (no manifest.json)")
    try:
        manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_bytes())
        events = read_events(run_dir)
        lines = _raw_lines(run_dir / "events.jsonl")
        steps = StepsScript.model_validate_json((run_dir / "steps.json").read_bytes())
        steps_text = (run_dir / "steps.md").read_text(encoding="utf-8")
        policy = Policy.model_validate_json((run_dir / "policy.json").read_bytes())
    except (OSError, ValueError, ValidationError) as exc:
        raise NotResumable(f"{run_dir}: unreadable record: {exc}") from exc
    if manifest.record_format < RECORD_FORMAT:
        raise NotResumable(
            f"run {manifest.run_id} was recorded in format {manifest.record_format}, "
            f"without the checkpoints a resume needs"
        )
    if manifest.finished is not None and manifest.exit_code not in RESUMABLE:
        raise NotResumable(
            f"run {manifest.run_id} finished (exit {manifest.exit_code}): there is nothing to "
            "resume; start a new run"
        )
    marks = [i for i, e in enumerate(events) if e["kind"] == "checkpoint"]
    # A block the person quit in was cut short, not finished: it is the one to go on with.
    quit_in = {
        e.get("number") for e in events if e["kind"] == "block_outcome" and e["status"] == "stopped"
    }
    while marks and events[marks[-1]].get("block") in quit_in:
        marks.pop()
    if marks:
        cut = marks[-1] + 1
    else:
        # No block finished: the run goes on from its first block, after what started it.
        starts = [i for i, e in enumerate(events) if e["kind"] in _SESSION_END]
        cut = starts[0] if starts else len(events)
    steps = _mapped(steps, events[:cut])
    tail, tail_lines = events[cut:], lines[cut:]
    # A resume killed in its turn set the block's events aside already, and may have got less
    # far than the attempt before it: the attempt that got furthest is the one to catch up on.
    after = int(events[marks[-1]]["seq"]) if marks else 0
    tail_from = None
    for aside in sorted(run_dir.glob("events.interrupted-*.jsonl")):
        earlier = read_events(run_dir, name=aside.name)
        if (
            earlier
            and int(earlier[0].get("seq", 0)) > after
            and len(request_pairs(earlier)) > len(request_pairs(tail))
        ):
            tail, tail_from = earlier, aside.name
    outcomes = [
        BlockOutcome.model_validate({k: v for k, v in e.items() if k not in _META})
        for e in events[:cut]
        if e["kind"] == "block_outcome"
    ]
    return Interrupted(
        dir=run_dir,
        manifest=manifest,
        steps=steps,
        steps_text=steps_text,
        policy=policy,
        kept=lines[:cut],
        tail=tail,
        tail_lines=tail_lines,
        outcomes=outcomes,
        checkpoint=events[marks[-1]] if marks else {},
        tail_from=tail_from,
    )


def _mapped(steps: StepsScript, events: list[dict[str, Any]]) -> StepsScript:
    """The script as the run used it, its recorded `--map-unplaced` mapping applied again."""
    try:
        return mapping.as_recorded(steps, events)
    except ValidationError as exc:
        raise NotResumable(f"the recorded mapping of the script does not validate: {exc}") from exc


_WAY_OUT = ("progress_commit", "run_error", "budget_exhausted")
# What ends the part of the record a run without a finished block goes on after.
_SESSION_END = ("block_started", "run_error", "budget_exhausted", "run_finished")


def supervised(record: Interrupted) -> bool:
    """Whether a person decided anything in the run so far."""
    events = record.kept_events + record.tail
    return any(
        e.get("kind") == "approval" and str(e.get("by", "")).startswith("person") for e in events
    )


def still_running(repo: git.Repo, branch: str) -> int | None:
    """The pid of a live harness process that has the run's branch checked out, if any."""
    for entry in worktrees(repo):
        if entry.get("branch") != f"refs/heads/{branch}":
            continue
        pid = entry.get("locked", "").rpartition(" ")[2]
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                return int(pid)
            return int(pid)
    return None


def set_aside(record: Interrupted) -> dict[str, Any]:
    """Move the unfinished block's events out of the main log, and the patches they name out
    of `patches/` (to `patches/interrupted-N/`), and say what was done: the block starts over
    with the numbering it had. The tail is written (and fsynced) before the log is cut, so a
    kill in between loses nothing (the next resume sets the same events aside again)."""
    n = len(list(record.dir.glob("events.interrupted-*.jsonl"))) + 1
    aside = record.dir / f"events.interrupted-{n}.jsonl"
    if record.tail_lines:
        _write_durably(aside, record.tail_lines)
    named = {str(json.loads(line).get("patch")) for line in record.kept if '"patch"' in line}
    moved = []
    for patch in sorted((record.dir / "patches").glob("*.diff")):
        if f"patches/{patch.name}" not in named:
            folder = record.dir / "patches" / f"interrupted-{n}"
            folder.mkdir(exist_ok=True)
            patch.replace(folder / patch.name)
            moved.append(patch.name)
    _write_durably(record.dir / "events.jsonl", record.kept)
    lines = record.tail_lines or record.kept[-1:]
    last = json.loads(lines[-1]) if lines else {}
    return {
        "after_block": record.checkpoint.get("block"),
        "head": record.head,
        "interrupted_at": {"seq": last.get("seq"), "kind": last.get("kind")},
        "set_aside": aside.name if record.tail_lines else None,
        "events_set_aside": len(record.tail_lines),
        "patches_set_aside": moved,
    }


def _write_durably(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)  # as read: a last line a kill cut short stays recognisably short
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


# ---------------------------------------------------------------------------------- catching up


class CatchUpClock:
    """The times the unfinished block was handed, in order while they fit, then the wall's."""

    def __init__(self, manifest: Manifest, tail: list[dict[str, Any]]) -> None:
        self._run_id = manifest.run_id
        self._identity = dict(manifest.identity)
        # Up to the way out: the progress-log commit a Ctrl-C or a budget stop makes is made
        # again, once, at the real end.
        ends = [i for i, e in enumerate(tail) if e["kind"] in _WAY_OUT]
        self._stamps = [
            (str(e["purpose"]), str(e["value"]))
            for e in tail[: ends[0] if ends else len(tail)]
            if e["kind"] == "clock"
        ]
        self._wall = WallClock()
        self.used = 0

    def run_id(self) -> str:
        return self._run_id

    def now(self, purpose: Purpose) -> str:
        if self.used < len(self._stamps) and self._stamps[self.used][0] == purpose:
            self.used += 1
            return self._stamps[self.used - 1][1]
        self.used = len(self._stamps)  # off the recorded path: the wall clock from here on
        return self._wall.now(purpose)

    def identity(self, repo: git.Repo) -> dict[str, str]:
        return dict(self._identity) or self._wall.identity(repo)


class CatchUpProvider:
    """The recorded answers of the unfinished block, each to the request it answered, while
    the loop asks what it asked before; then the live provider. A scripted provider is moved
    on past the answers the record holds, as the run had used them.

    The budget counts what the interrupted session spent, once: each answer handed back is
    charged as its call was (with the failed HTTP attempts before it, for a provider that
    charges each attempt), and when the run goes live, what the record holds that was not
    handed back (answers after the point it went another way, calls a kill or a budget stop
    left without an answer) is charged too (`owed`): those calls were made."""

    def __init__(self, live: Provider, record: Interrupted) -> None:
        self.live = live
        self.name = live.name
        self.model = live.model
        self.pairs = request_pairs(record.tail)
        self.served = 0
        self.caught_up = not self.pairs
        self._used_before = record.recorded_responses() - sum(
            1 for _, answer in self.pairs if answer["kind"] == "model_response"
        )
        # The builtin provider remembers what it proposed (to split a refused patch in halves,
        # to give each item the fixes its todo list planned): it is offline, free and
        # deterministic, so it is asked each request the record answers, its answer set aside,
        # and goes live knowing what it would have known.
        self.warm = _remembers(live)
        self.per_attempt = hasattr(live, "meter")
        if self.per_attempt:
            self.meter: Any = None  # the loop hands the budget here; passed on to `live`
        self.budget: Budget | None = None  # the run's, handed in by ResumeLoop
        self._unanswered = _unanswered(record, self.pairs, self.per_attempt)
        self._settled = False
        self.totals = Usage()
        if self.caught_up:
            self._go_live()

    @property
    def phases(self) -> set[str]:
        return set(getattr(self.live, "phases", set()))

    def charges(self, answer: dict[str, Any]) -> list[Usage | None]:
        """What one recorded call was charged: its failed attempts, then its answer."""
        attempts = int(answer.get("attempts") or 1) if self.per_attempt else 1
        return [None] * (attempts - 1) + [_usage(answer)]

    def owed(self) -> list[Usage | None]:
        """The recorded calls not handed back, as charges."""
        rest = [c for _, answer in self.pairs[self.served :] for c in self.charges(answer)]
        return rest + [None] * self._unanswered

    def hand_budget(self, budget: Budget) -> None:
        """The run's budget; a catch-up with nothing to hand back owes the record's calls to
        the block about to start."""
        self.budget = budget
        if self.caught_up and not self._settled:
            self._settled = True
            budget.carry(self.owed(), into_next_block=True)

    def complete(self, request: ModelRequest) -> ModelResponse:
        if not self.caught_up:
            asked, answer = self.pairs[self.served]
            if answer["kind"] == "model_response" and request_digest(request) == asked["request"]:
                charges = self.charges(answer)
                if self.warm:
                    self.live.complete(request)
                self.served += 1
                response = ModelResponse.model_validate(
                    {k: v for k, v in answer.items() if k in ModelResponse.model_fields}
                )
                meter = getattr(self, "meter", None)
                if meter is not None:
                    for usage in charges:  # the loop leaves a metered provider's to it
                        meter.charge(usage)
                if self.served >= len(self.pairs):
                    self._go_live()
                self.totals = self.totals + response.usage
                return response
            self._go_live()  # another request, or one the model failed on: ask it now
            if self.budget is not None:
                self.budget.before_call()  # with what the record spent and did not hand back
        if hasattr(self.live, "meter"):
            self.live.meter = getattr(self, "meter", None)
        response = self.live.complete(request)
        self.totals = self.totals + response.usage
        return response

    def _go_live(self) -> None:
        self.caught_up = True
        if isinstance(self.live, ScriptedProvider):
            # Its next answer is the one after those the record holds and the run used.
            self.live.calls = self._used_before + self.served
        if self.budget is not None and not self._settled:
            self._settled = True
            self.budget.carry(self.owed())


def _remembers(provider: Provider) -> bool:
    from harness.providers.builtin import BuiltinProvider

    return isinstance(provider, BuiltinProvider)


def _unanswered(
    record: Interrupted, pairs: list[tuple[dict[str, Any], dict[str, Any]]], per_attempt: bool
) -> int:
    """Calls the unfinished block made that the record holds no answer to. A budget stop
    recorded the run's spend: what it does not owe its answers is exactly those (the failed
    attempts of a call stopped at a retry included). Without one (a kill, a Ctrl-C), each
    request left unanswered counts once: it may have been made, and billed."""
    asked = sum(1 for e in record.tail if e["kind"] == "model_request")
    stops = [
        e for e in record.tail if e["kind"] == "budget_exhausted" and isinstance(e.get("run"), dict)
    ]
    if not stops:
        return max(0, asked - len(pairs))
    before = (
        Spend.model_validate(record.checkpoint.get("spent") or {}).calls
        if record.checkpoint
        else len(request_pairs(record.kept_events))
    )
    answered = sum(
        int(answer.get("attempts") or 1)
        if per_attempt and answer["kind"] == "model_response"
        else 1
        for _, answer in pairs
    )
    return max(0, int(stops[-1]["run"].get("calls", 0)) - before - answered)


class CatchUpApprover:
    """The decisions recorded in the unfinished block, each handed back to the patch (or block
    end) it was about while the run asks about what it asked about before, as a replay
    honours them; then the live approver (the policy's rules, then the person with
    `--supervised`, or `[approve] unattended`). A quit or a stop is not handed back: whoever
    stopped the run is asked again, as resuming it is going on."""

    def __init__(self, live: Approver, tail: list[dict[str, Any]]) -> None:
        self.live = live
        self.recorded = [e for e in tail if e["kind"] == "approval"]
        self.served = 0
        self.caught_up = not self.recorded

    def _recorded(self, same: Callable[[dict[str, Any]], bool]) -> Approval | None:
        if self.caught_up or self.served >= len(self.recorded):
            self.caught_up = True
            return None
        event = self.recorded[self.served]
        if not same(event):
            self.caught_up = True  # the run went another way: nothing after this applies
            return None
        self.served += 1
        said = decided(event)
        return None if said.decision in ("quit", "stop") else said

    def patch(self, review: PatchReview) -> Approval:
        return self._recorded(lambda e: patch_matches(e, review)) or self.live.patch(review)

    def block(self, review: BlockReview) -> Approval:
        return self._recorded(lambda e: block_matches(e, review)) or self.live.block(review)


class ResumeLoop(Loop):
    """The loop, going on from a checkpoint; the unfinished block's gate runs are taken from
    the record while the tree and the gates' configuration are the recorded ones, and its other
    measurements where their key is the recorded one (`recorded`).

    `limits` are the budget limits the resume was given in place of the recorded ones, with
    the recorded values: a budget decides when a run stops, never how a patch is judged, so a
    measurement's key holds the recorded value (`judged_under`)."""

    def __init__(
        self,
        opts: RunOptions,
        record: Interrupted,
        *,
        source: str | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(opts)
        if isinstance(self.provider, CatchUpProvider):
            self.provider.hand_budget(self.budget)
        self.base = record.manifest.base_commit
        self.recorded_gates = [e for e in record.tail if e["kind"] == "gates"]
        self.reused = 0
        self._reusing = True
        self.source = record.tail_from or source or "the record"
        self.limits = dict(limits or {})
        self.recorded_measures = _measures(record)
        self.measures_reused = 0

    def gates(self, label: str) -> GateRun:
        if self._reusing and self.reused < len(self.recorded_gates):
            recorded = self.recorded_gates[self.reused]
            tree = tree_hash(open_repo(self.wt))
            same = (
                recorded.get("label") == label
                and recorded.get("tree") == tree
                and recorded.get("setup") == self.gate_setup()
            )
            if same:
                self.reused += 1
                return self.recorded_gate_run(label, tree, recorded["results"])
        self._reusing = False
        return super().gates(label)

    def recorded(self, layer: str, key: str) -> Any:
        """The unfinished block's result of a measurement with this key, each once and in the
        order measured (a flaky test measured twice under one key gets both answers), or None:
        measured again. The key holds all that decides it (`Loop.measured`): the commit's tree
        and the written files (the patch), the gate results and the block's start it is judged
        against, the block's guard, the gates' configuration, the policy and each tool's
        version; a kill during a check leaves no result, and the check runs again."""
        waiting = self.recorded_measures.get(key)
        if not waiting:
            return None
        result = waiting.pop(0)
        self.measures_reused += 1
        # Recorded again where the run records what it measured, saying where it came from:
        # the log reads as the uninterrupted run's, and a replay of it finds the result.
        self.rec.event(
            "measured", layer=layer, key=key, result=self.rec.store(result), reused=self.source
        )
        self.say(f"    {layer}: from the record")
        return result

    def judged_under(self) -> dict[str, Any]:
        policy = super().judged_under()
        policy["loop"] |= self.limits
        return policy


def _measures(record: Interrupted) -> dict[str, list[Any]]:
    """The unfinished block's measurements by key, those a resume may hand back: none from
    another version of the harness (its checks may judge differently under the same key), and
    none whose result was redacted before it was recorded (it is not what was measured)."""
    if record.manifest.harness_version != __version__:
        return {}
    found: dict[str, list[Any]] = {}
    for e in record.tail:
        if e["kind"] == "measured" and REDACTED not in json.dumps(e.get("result")):
            found.setdefault(str(e["key"]), []).append(e["result"])
    return found


# ---------------------------------------------------------------------------------- the command


def resume(
    run_dir: Path,
    make_provider: Callable[[Manifest, Policy], Provider],
    *,
    budget: dict[str, Any] | None = None,
    supervisor: Approver | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> RunSummary:
    """Go on with the run recorded in `run_dir`; `supervisor` is the person asked about what
    neither the record nor the policy's rules decide (`--supervised`)."""
    record = load(run_dir)
    manifest = record.manifest
    try:
        repo = open_repo(Path(manifest.repo))
    except GitError as exc:
        raise NotResumable(f"run {manifest.run_id}: its repository is gone: {exc}") from exc
    if manifest.branch not in [h.name for h in repo.heads]:
        raise NotResumable(
            f"run {manifest.run_id}: its branch {manifest.branch} is gone from {manifest.repo}"
        )
    pid = still_running(repo, manifest.branch)
    if pid is not None and pid != os.getpid():
        raise NotResumable(f"run {manifest.run_id} is still running (pid {pid})")
    data = record.policy.model_dump(mode="json")
    given = {k: v for k, v in (budget or {}).items() if v is not None}
    limits = {k: data["loop"].get(k) for k in given}
    data["loop"] |= given
    try:
        policy = Policy.model_validate(data)  # budget options are held to the policy's rules
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"budget option {where}: {first['msg']}") from exc
    provider = make_provider(manifest, policy)
    if supervisor is None and supervised(record):
        progress(
            "note: a person supervised this run; it goes on unattended: what no approval rule "
            f"decides is decided by [approve] unattended ({policy.approve.unattended}); "
            "harness resume --supervised asks instead"
        )
    note = set_aside(record)
    loop = ResumeLoop(
        RunOptions(
            steps=record.steps,
            steps_text=record.steps_text,
            repo=Path(manifest.repo),
            policy=policy,
            policy_text="",
            policy_path=Path(manifest.policy_path) if manifest.policy_path else None,
            provider=CatchUpProvider(provider, record),
            runs_dir=run_dir.parent,
            blocks=manifest.blocks,
            progress=progress,
            clock=CatchUpClock(manifest, record.tail),
            approver=CatchUpApprover(make_approver(policy.approve, supervisor), record.tail),
            resume=Resumed(
                manifest=manifest,
                outcomes=record.outcomes,
                state=record.checkpoint,
                spent=record.spent(),
                head=record.head,
                note=note,
            ),
        ),
        record,
        source=note["set_aside"],
        limits=limits,
    )
    return loop.run()
