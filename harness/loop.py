"""The agent loop: for each STEPS block, PLAN -> TODO -> EXECUTE, then gates, then revert.

Read `Loop.run` top to bottom: it is the whole product. Everything the model says is validated
(`ask`), every patch goes through the guard (`execute_item`), every block is judged by the real
gates against its own starting point (`run_block`), and only the commits that caused a
regression are reverted (`revert_culprits`). Every step is an event in the run record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import git
from pydantic import BaseModel, TypeAdapter, ValidationError

from harness import __version__, prompts
from harness.approve import Approver, BlockReview, carry_out, make_approver, patch_review
from harness.budget import Budget, Metered, Spend, limits
from harness.clock import Clock, Purpose, WallClock
from harness.context import (
    FileView,
    block_commands,
    block_context,
    block_gates,
    file_view,
    finding_line,
    findings_text,
    goal_met,
    named_lines,
    read_repo_file,
    repo_map,
    wanted_range,
)
from harness.culprits import find_culprits
from harness.errors import (
    BudgetExceeded,
    ExitCode,
    GateError,
    GitError,
    HarnessError,
    Interrupted,
    ItemSkipped,
    PatchEdited,
    PatchError,
    PatchRejected,
    ProviderError,
    SupervisorQuit,
)
from harness.gates import ruff as ruff_gate
from harness.gates.base import GATES, CommandGate
from harness.gates.compare import Rerun, blocking, compare, make_rerunner, new_findings
from harness.gates.imported import measured_packages, require_worktree_imports
from harness.gates.models import Finding, GateResult, GateRun, GateStatus, Regression
from harness.gates.runner import context_for, gate_config, interpreter, run_gates, run_tests
from harness.gates.summary import seed_summary
from harness.gitutil import (
    applied,
    change_key,
    commit_change_key,
    commit_paths,
    head,
    is_dirty,
    open_repo,
    restore_on_failure,
    revert_commits,
    tidy,
    worktree,
)
from harness.guard import Verdict, Violation, check_patch
from harness.guard.behaviour import BehaviourCheck, check_behaviour, check_with_verifier
from harness.guard.commit import write_contents
from harness.guard.globs import match_any
from harness.guard.mutation import MutationResult, check_patch_tests
from harness.outcome import BlockOutcome, Revert, RunSummary, progress_entry
from harness.policy import POLICY_FILE, GateConfig, GuardConfig, Policy
from harness.providers.base import Message, ModelRequest, Phase, Provider, ToolSpec
from harness.providers.builtin import notes_at_end
from harness.record import RECORD_FORMAT, Manifest, Recorder, digest, utcnow
from harness.schemas import (
    PHASE_TOOLS,
    PatchProposal,
    Plan,
    ReadFiles,
    Review,
    TodoItem,
    TodoList,
)
from harness.steps import Block, StepsScript, apply_to_policy, block_lanes, mapping
from harness.steps.account import Residue, account_commands, check_targets, fixer_residues
from harness.verify import PatchCheck, Verifier

Progress = Callable[[str], None]
T = TypeVar("T")
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_RULE = re.compile(r"\b[A-Z]{1,4}\d{3,4}\b")  # a ruff rule code in an item's title
LINTED_AT_LANDING = (".py", ".pyi")


class InvalidOutput(HarnessError):
    """The model kept answering with output that does not validate."""


@dataclass
class Resumed:
    """Where an interrupted run stands, read from its record by harness/resume.py: the blocks
    it finished, the state the last one's `checkpoint` event carries, the spend so far."""

    manifest: Manifest
    outcomes: list[BlockOutcome]
    state: dict[str, Any]
    spent: Spend
    head: str  # the branch's commit at the last checkpoint: where the run goes on from
    note: dict[str, Any] = field(default_factory=dict)  # for the run_resumed event


@dataclass
class RunOptions:
    steps: StepsScript
    steps_text: str
    repo: Path
    policy: Policy
    policy_text: str
    policy_path: Path | None
    provider: Provider
    runs_dir: Path
    blocks: list[int] | None = None
    progress: Progress = field(default=lambda _msg: None)
    clock: Clock = field(default_factory=WallClock)  # a replay's comes from the record
    map_unplaced: bool = False  # ask the model to map the script's unplaced text (optional)
    approver: Approver | None = None  # default: the policy's rules, then `[approve] unattended`
    resume: Resumed | None = None  # `harness resume`: go on with an interrupted run


class Loop:
    recorder: type[Recorder] = Recorder  # a replay's record is scratch (harness/replay.py)

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        # The script's gate commands and guardrails (e.g. "<=20 lines/file") refine the policy.
        self.policy = apply_to_policy(opts.steps, opts.policy)
        self.provider = opts.provider
        self.say = opts.progress
        # Bad input fails here, before anything is recorded or created.
        self.user_repo = open_repo(opts.repo)
        self.base = head(self.user_repo)
        self.clock = opts.clock
        self.run_id = self.clock.run_id()
        self.identity: dict[str, str] = {}
        self.branch = f"harness/{self.run_id}"
        self.resumed = opts.resume
        self.rec = self.recorder(opts.runs_dir, self.run_id, resume=opts.resume is not None)
        self.budget = Budget(
            *limits(self.policy.loop), spent=opts.resume.spent if opts.resume else None
        )
        # A provider that retries inside one call is handed the budget, to check each attempt.
        self._metered = hasattr(self.provider, "meter")
        if self._metered:
            self.provider.meter = self.budget  # type: ignore[attr-defined]
        self.wt = Path()
        self.current: GateRun | None = None
        self.commands: dict[str, str] = {}
        self.stopped: str | None = None  # why the run stopped early (provider failure)
        self.approver = opts.approver or make_approver(self.policy.approve, None)
        self.quit = False  # the approver stopped the run (a person, or a replayed decision)
        self.failed_gate: str | None = None  # a gate a block depends on could not run
        self.block_base = ""  # the commit the current block started from
        self._steady: dict[str, bool] = {}  # test id -> passed every full run at block start
        # Changes refused at landing or reverted: none of them lands again in this run.
        self.avoid: list[dict[str, Any]] = []
        self._pids: dict[str, str] = {}  # landed commit -> patch-id of its change
        self._titles: dict[str, str] = {}
        self.verifier: Verifier | None = None
        self._verified: set[str] = set()  # commits the per-patch check passed
        # Progress-log entries of finished blocks, committed once when the run ends: a commit
        # per block would change the tree between one block's end gates and the next one's
        # start, so every block would start with an uncached run of all its gates.
        self._progress: list[tuple[int, str]] = []
        self._landing_pytest: GateResult | None = None  # the suite with the patch being landed
        self._versions: dict[str, dict[str, str]] = {}  # interpreter -> gate -> tool version
        self._wt_repo: git.Repo | None = None
        self._trees: dict[str, str] = {}  # commit -> its tree
        self.use_cache = True  # the gate result cache (a replay with --regate measures anew)

    # ------------------------------------------------------------------ the run
    def run(self) -> RunSummary:
        user_repo, base = self.user_repo, self.base
        blocks = [
            b
            for b in self.opts.steps.blocks
            if not self.opts.blocks or b.number in self.opts.blocks
        ]
        self.identity = self.clock.identity(user_repo)
        resumed = self.resumed
        if resumed is not None:
            manifest = resumed.manifest.model_copy(
                update={
                    "finished": None,
                    "exit_code": None,
                    "resumed": [*resumed.manifest.resumed, utcnow()],
                }
            )
            self.rec.write_json("manifest.json", manifest.model_dump())
            self.restore(resumed)
        else:
            manifest = self._manifest(base, [b.number for b in blocks])
            self.rec.write_json("manifest.json", manifest.model_dump())
            # What a replay needs besides the repository: the script and the policy as used.
            self.rec.write_text("steps.md", self.opts.steps_text)
            self.rec.write_json("steps.json", self.opts.steps.model_dump(mode="json"))
            self.rec.write_json("policy.json", self.opts.policy.model_dump(mode="json"))
            self.rec.event("run_started", **manifest.model_dump())
        self.say(f"run {self.run_id}: provider {self.provider.name} ({self.provider.model})")
        if resumed is None and self.map_unplaced():
            blocks = [self.opts.steps.block(b.number) for b in blocks]
        changed = self._user_changes(user_repo) if resumed is None else []
        if changed:
            # The run starts from HEAD in its own worktree; the user's edits are not in it.
            self.say(
                f"note: uncommitted changes in {self.opts.repo.resolve()} are not part of this "
                f"run ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})"
            )
            self.rec.event("user_changes_ignored", base=base, paths=changed)
        outcomes: list[BlockOutcome] = list(resumed.outcomes) if resumed else []
        done = {o.number for o in outcomes}
        exit_code = 2
        try:
            start_at = resumed.head if resumed else base
            with worktree(user_repo, self.branch, start_at, reuse=resumed is not None) as wt:
                self.wt = wt
                # The gates must judge this worktree's code, not a copy installed elsewhere.
                found = require_worktree_imports(
                    wt, self.policy, measured_packages(wt, self.policy)
                )
                self.policy = found.policy
                self.rec.event("imports_checked", **found.record())
                for note in found.notes():
                    self.say(note)
                if resumed is not None:
                    self.rec.event("run_resumed", **resumed.note)
                    self.say(f"resumed: {len(done)} block(s) done; {self.budget.shown()} spent")
                try:
                    for n, block in enumerate(blocks):
                        if block.number in done:
                            # Finished before the interruption: never done again. The decision
                            # to go on after it comes after its checkpoint: it is asked again.
                            later = blocks[n + 1] if n + 1 < len(blocks) else None
                            if later is not None and later.number not in done:
                                ended = next(o for o in outcomes if o.number == block.number)
                                if not self.go_on(ended, later):
                                    break
                            continue
                        outcomes.append(self.run_block(block))
                        if self.stopped or self.failed_gate:
                            break
                        if n + 1 < len(blocks) and not self.go_on(outcomes[-1], blocks[n + 1]):
                            break
                    final = self.latest() if self.failed_gate else self.gates("final")
                finally:
                    self.commit_progress()  # what finished is logged, also when a block fails
                summary = self.summarize(base, outcomes, final)
            exit_code = summary.exit_code
            return summary
        except KeyboardInterrupt as exc:
            exit_code = ExitCode.INTERRUPTED
            self.rec.event("run_error", error="interrupted", type=type(exc).__name__)
            # The worktree is gone by now; the branch and the record are what is left to see.
            branch = self.branch if self.branch in [h.name for h in user_repo.heads] else None
            record = str(self.rec.dir.resolve())
            where = f"record in {record}" + (f", work so far on branch {branch}" if branch else "")
            where += f"; go on with: harness resume {record}"
            raise Interrupted(where, run_dir=record, branch=branch) from exc
        except BudgetExceeded as exc:
            # Stopped before the call, like a Ctrl-C at that point: resumable, with more budget.
            exit_code = exc.exit_code
            self.rec.event(
                "budget_exhausted",
                budget=exc.budget,
                scope=exc.scope,
                where=exc.where,
                spent=exc.spent,
                limit=exc.limit,
                run=self.budget.run.model_dump(),
            )
            record = str(self.rec.dir.resolve())
            raise BudgetExceeded(
                f"{exc}; record in {record}, work so far on branch {self.branch}; go on with "
                f"a larger budget: harness resume {record} {_budget_option(exc)}",
                budget=exc.budget,
                scope=exc.scope,
                where=exc.where,
                spent=exc.spent,
                limit=exc.limit,
            ) from exc
        except BaseException as exc:
            exit_code = exc.exit_code if isinstance(exc, HarnessError) else ExitCode.INTERNAL
            self.rec.event("run_error", error=str(exc), type=type(exc).__name__)
            raise
        finally:
            manifest.finished, manifest.exit_code = utcnow(), exit_code
            if self.current is not None:
                manifest.tool_versions = {
                    k: r.tool_version or "" for k, r in self.current.results.items()
                }
            self.rec.write_json("manifest.json", manifest.model_dump())
            self.rec.event("run_finished", exit_code=exit_code, **self._branch_tip())
            self.rec.close()

    def map_unplaced(self) -> bool:
        """With a model, if asked: the script's unplaced text mapped onto gates and targets
        (harness/steps/mapping.py; never replacing what the parser placed). True if the
        script changed."""
        steps = self.opts.steps
        if not steps.unplaced or not mapping.wanted(self.provider, self.opts.map_unplaced):
            return False
        try:
            self.budget.at("the mapping of the script's unplaced text")
            # A provider handed the budget checks its own calls; any other is checked here.
            asked = self.provider if self._metered else Metered(self.provider, self.budget)
            mapped = mapping.map_unplaced(steps, asked, self.rec.event)
        except BudgetExceeded:
            raise
        except (mapping.MappingUnavailable, ProviderError) as exc:
            # Optional help: without it the run goes on with what the parser placed.
            self.say(f"unplaced text not mapped: {exc}")
            self.rec.event("steps_mapped", error=str(exc), mapped=[])
            return False
        self.rec.event("steps_mapped", mapped=[m.model_dump(mode="json") for m in mapped.mapped])
        for entry in mapped.mapped:
            self.say(f"model mapping: {mapping.describe(entry)}")
        self.opts.steps = mapped
        self.policy = apply_to_policy(mapped, self.opts.policy)
        return True

    def _user_changes(self, repo: git.Repo) -> list[str]:
        """Paths the user changed that the run will not see; the harness's own files (an
        untracked harness.toml or STEPS script, read from the checkout) are not among them."""
        if not is_dirty(repo):
            return []
        own = {POLICY_FILE}
        root = Path(repo.working_tree_dir or ".").resolve()
        steps = Path(self.opts.steps.source).resolve()
        if steps.is_relative_to(root):
            own.add(steps.relative_to(root).as_posix())
        changed = [d.a_path or d.b_path or "" for d in repo.index.diff(None)]
        changed += [d.a_path or d.b_path or "" for d in repo.index.diff("HEAD")]
        changed += [p for p in repo.untracked_files if p not in own]
        return sorted(set(changed) - {""})

    def run_block(self, block: Block) -> BlockOutcome:
        gates = block_gates(block)
        # A gate the policy turned off (no import contracts in this repository) judges nothing.
        off = [g for g in gates if g in GATES and not gate_config(self.policy, g).enabled]
        gates = [g for g in gates if g not in off]
        self.commands = block_commands(block)
        lanes, why = block_lanes(block, gates, self.policy)
        guard = self.policy.guard_for_block(block.number, default_lanes=lanes)
        override = self.policy.blocks.get(str(block.number))
        max_iter = (override and override.max_iterations) or self.policy.loop.max_iterations
        self.say(f"block {block.number}: {block.title} (gates: {', '.join(gates) or 'none'})")
        if off:
            self.say(f"  not judged: {', '.join(off)} (off in the policy)")
        self.say(
            f"  lanes: {', '.join(guard.lanes)}" + (f" ({why})" if guard.lanes == lanes else "")
        )
        self.rec.event(
            "block_started",
            block=block.number,
            title=block.title,
            gates=gates,
            not_judged=off,
            lanes=guard.lanes,
        )
        self.budget.start_block(block.number)
        start = self.gates(f"block {block.number} start")
        self.block_base = head(open_repo(self.wt))
        self._steady = {}
        out = BlockOutcome(
            number=block.number,
            title=block.title,
            gates=gates,
            status="iteration_limit",
            before=seed_summary(start),
        )
        broken = [
            g for g in gates if g in start.results and start.results[g].status == GateStatus.ERROR
        ]
        if broken:
            # Nothing this block does could be judged: stop the run here, not after every block.
            first = start.results[broken[0]]
            out.status, out.after = "gate_error", out.before
            self.failed_gate = (
                f"block {block.number}: gate {first.gate} could not run at the block's start: "
                f"{first.reason}"
            )
            self.say(f"  {self.failed_gate}")
            self.account(block, start, start, guard, off, out, None)
            self.rec.event("block_outcome", **out.model_dump())
            self.checkpoint(block.number)
            return out
        residues = self.residues(block)  # what its fixers would change
        self.verifier = self.start_verifier(gates, start)
        try:
            self.iterations(block, gates, guard, start, out, max_iter)
        finally:
            if self.verifier is not None:
                self.verifier.close()
                self.verifier = None
        final = self.hold_the_contract(start, out, self.gates(f"block {block.number} end"))
        if self.provider.name == "builtin":
            # Its last plan counted what was left before that round's fixes and reverts.
            ctx = block_context(block, gates, guard, final, self.policy.loop.max_todo_items)
            out.cannot_do = notes_at_end(out.cannot_do, ctx)
        out.regressions = self.regressions(start, final, include_flaky=True)
        if any(final.results[g].status == GateStatus.ERROR for g in gates if g in final.results):
            out.status = "gate_error"
        elif blocking(out.regressions):
            out.status = "regression"
        elif goal_met(gates, final):
            out.status = "goal_met"
        out.after = seed_summary(final)
        ends = self.residues(block)
        self.account(block, start, final, guard, off, out, (residues, ends))
        if self.opts.steps.progress_log:
            entry = progress_entry(self.stamp("progress"), block.number, block.title, out)
            self._progress.append((block.number, entry))
        self.rec.event("block_outcome", **out.model_dump())
        self.checkpoint(block.number)
        self.say(
            f"block {block.number}: {out.status}; {len(out.commits)} kept, "
            f"{len(out.reverted)} reverted, {out.rejected} rejected; spent {self.budget.shown()}"
        )
        return out

    def checkpoint(self, number: int) -> None:
        """A finished block, durable: what the rest of the run needs from it (the ledger of
        changes taken out, the commits landed, the progress-log entries not yet committed, the
        spend), so that `harness resume` goes on after it without doing it again."""
        self.rec.event(
            "checkpoint",
            block=number,
            head=head(open_repo(self.wt)),
            avoid=self.avoid,
            landed=[[sha, pid, self._titles.get(sha, "")] for sha, pid in self._pids.items()],
            verified=sorted(self._verified),
            progress=[[n, entry] for n, entry in self._progress],
            spent=self.budget.run.model_dump(),
        )

    def restore(self, resumed: Resumed) -> None:
        """The state the last checkpoint carries, back in place."""
        state = resumed.state
        self.avoid = list(state.get("avoid", []))
        for sha, pid, title in state.get("landed", []):
            self._pids[sha], self._titles[sha] = pid, title
        self._verified = set(state.get("verified", []))
        self._progress = [(int(n), str(entry)) for n, entry in state.get("progress", [])]

    def account(
        self,
        block: Block,
        start: GateRun,
        final: GateRun,
        guard: GuardConfig,
        off: list[str],
        out: BlockOutcome,
        residues: tuple[dict[str, Residue], dict[str, Residue]] | None,
    ) -> None:
        """Every command of the block and every target it states, accounted for at its end."""
        out.commands = account_commands(
            block,
            start,
            final,
            policy=self.policy,
            guard=guard,
            off=off,
            residues=residues,
            avoid=self.avoid,
            stopped=self.failed_gate or "",
            ended=out.status,
        )
        out.targets = check_targets(block, start, final)
        for a in out.commands:
            self.say(f"  {a.command}: {a.result}")
        for t in out.targets:
            self.say(f"  target {t.result}")

    def iterations(
        self,
        block: Block,
        gates: list[str],
        guard: GuardConfig,
        start: GateRun,
        out: BlockOutcome,
        max_iter: int,
    ) -> None:
        """PLAN -> TODO -> EXECUTE rounds until the goal is met, nothing lands, or the limit;
        after each round that landed something, the gates, and reverts of what regressed."""
        for iteration in range(1, max_iter + 1):
            out.iterations = iteration
            if goal_met(gates, self.latest()):
                out.status = "goal_met"
                break
            try:
                landed = self.iterate(block, gates, guard, out)
            except BudgetExceeded:
                raise  # the run stops here, resumable: not a provider failure to finish after
            except InvalidOutput as exc:
                self.say(f"  model output invalid: {exc}")
                out.status, landed = "model_error", None
            except ProviderError as exc:
                # Stop asking the model, but finish the block: what landed is still judged.
                self.say(f"  model provider failed: {exc}")
                out.status, landed, self.stopped = "provider_error", None, str(exc)
            except SupervisorQuit as exc:
                self.say(f"  {exc}")  # what landed is judged as after a provider failure
                out.status, landed, self.stopped, self.quit = "stopped", None, str(exc), True
            if out.commits:
                after = self.gates(f"block {block.number} iteration {iteration}")
                if self.regressions(start, after):
                    reverted = len(out.reverts)
                    self.revert_culprits(start, out)
                    for r in out.reverts[reverted:]:
                        if r.sha in self._verified:
                            # The full gates win; how often they disagree is measured here.
                            self.rec.event("verify_disagreed", sha=r.sha, because=r.because)
                    if self.verifier is not None:
                        self.verifier.refresh()
            if not landed:
                out.status = "nothing_left" if landed == 0 else out.status
                break

    def iterate(self, block: Block, gates: list[str], guard: GuardConfig, out: BlockOutcome) -> int:
        """One PLAN -> TODO -> EXECUTE round. Returns how many items landed."""
        self.budget.end_item()
        plan = self.plan(block, gates, guard)
        out.cannot_do = plan.cannot_do
        todos = self.todos(block, gates, guard, plan)
        landed = 0
        for item in todos.items[: self.policy.loop.max_todo_items]:
            sha, rejected = self.execute_item(block, gates, guard, item)
            out.rejected += rejected
            if sha:
                out.commits.append(sha)
                landed += 1
        return landed

    # ------------------------------------------------------------------ phases
    def plan(self, block: Block, gates: list[str], guard: GuardConfig) -> Plan:
        run = self.latest()
        ctx = block_context(block, gates, guard, run, self.policy.loop.max_todo_items) | {
            "avoid": list(self.avoid),
            "lint": self.lint_command(),
        }
        text = prompts.render(
            "plan",
            block=ctx["block"],
            findings=findings_text(gates, run),
            repo_map=repo_map(self.wt),
            avoid=[f"{a['title']} ({', '.join(a['paths'])}): {a['reason']}" for a in self.avoid],
        )
        plan = self.ask("plan", [Message(role="user", content=text)], ctx, guard)
        if not isinstance(plan, Plan):
            raise InvalidOutput(f"plan: expected submit_plan, got {type(plan).__name__}")
        self.rec.event("plan", block=block.number, plan=plan.model_dump())
        return plan

    def todos(self, block: Block, gates: list[str], guard: GuardConfig, plan: Plan) -> TodoList:
        ctx = block_context(block, gates, guard, self.latest(), self.policy.loop.max_todo_items) | {
            "plan": plan.model_dump(),
            "avoid": list(self.avoid),
            "lint": self.lint_command(),
        }
        text = prompts.render(
            "todo",
            block=ctx["block"],
            plan=plan.model_dump(),
            max_items=self.policy.loop.max_todo_items,
        )
        todos = self.ask("todo", [Message(role="user", content=text)], ctx, guard)
        if not isinstance(todos, TodoList):
            raise InvalidOutput(f"todo: expected submit_todos, got {type(todos).__name__}")
        self.rec.event("todos", block=block.number, items=[i.model_dump() for i in todos.items])
        self.say(f"  {len(todos.items)} todo items")
        return todos

    def execute_item(
        self, block: Block, gates: list[str], guard: GuardConfig, item: TodoItem
    ) -> tuple[str | None, int]:
        """Ask for a patch until one lands or attempts run out. Returns (sha, rejections)."""
        self.budget.start_item(block.number, item.id)
        self.say(f"  [{item.id}] {item.title} (spent {self.budget.shown()})")
        files, missing = self.read_files(item.files)
        wanted: dict[str, list[tuple[int, int]]] = {}  # line ranges the model asked to see
        told: dict[str, tuple[tuple[int, int], ...]] = {}  # the regions last said on the console
        messages: list[Message] = []
        seen: set[str] = set()
        rejected = 0
        attempt = 0
        reads = 0
        while attempt < self.policy.loop.max_patch_attempts:
            try:
                findings = self.quick_findings(list(files))
            except PatchRejected as exc:
                self.say(f"    cannot check this item's files: {exc}")
                self.rec.event("item_skipped", item=item.id, reason=str(exc))
                return None, rejected
            views = {
                p: self.view(p, t, item, gates, findings, wanted.get(p, []), told)
                for p, t in files.items()
            }
            text = prompts.render(
                "execute",
                item=item.model_dump(),
                files=[{"path": p, "text": v.text} for p, v in views.items()]
                + [{"path": p, "text": f"(not shown: {why})"} for p, why in missing.items()],
                in_regions=[p for p, v in views.items() if not v.whole],
                findings=[finding_line(f) for f in findings],
                max_lines=guard.max_changed_lines_per_file,
                can_read=reads < self.policy.loop.max_read_files,
            )
            ctx = {
                "item": item.model_dump(),
                # Whole texts, even of files the model sees only regions of: an offline
                # provider patches from the text, not from what fits in a prompt.
                "files": files,
                "missing": missing,
                "findings": [f.model_dump() for f in findings],
                "max_lines": guard.max_changed_lines_per_file,
                "attempt": attempt,
                "block": {
                    "number": block.number,
                    "gates": gates,
                    "gate_commands": block.gate_commands,
                },
                "lint": self.lint_command(),
                "avoid": list(self.avoid),
            }
            convo = [Message(role="user", content=text), *messages]
            try:
                answer = self.ask("execute", convo, ctx, guard)
            except InvalidOutput as exc:
                self.say(f"    gave up: {exc}")
                return None, rejected
            call = Message(role="assistant", content=json.dumps(answer.model_dump()))
            if isinstance(answer, ReadFiles):
                reads += len(answer.paths) + len(answer.ranges)
                note, more = self.read_more(answer, files, missing, wanted)
                if reads > self.policy.loop.max_read_files or not more:
                    attempt += 1
                messages += [call, Message(role="user", content=note)]
                continue
            attempt += 1
            if not isinstance(answer, PatchProposal):
                return None, rejected
            if answer.action == "skip":
                # Said as a refusal or a landing is: an item that ends in silence reads as lost.
                self.say(f"    skipped: {answer.explanation}")
                self.rec.event("item_skipped", item=item.id, reason=answer.explanation)
                return None, rejected
            digest = hashlib.sha256(answer.diff.encode()).hexdigest()[:16]
            if digest in seen:
                self.rec.event("stuck", item=item.id, diff_sha=digest)
                self.say("    same patch proposed again: stopping this item")
                return None, rejected
            seen.add(digest)
            try:
                sha = self.land_edited(block, gates, guard, item, answer, attempt)
            except ItemSkipped as exc:
                self.say(f"    {exc}")
                self.rec.event("item_skipped", item=item.id, reason=str(exc))
                return None, rejected
            except (PatchError, PatchRejected) as exc:
                rejected += 1
                reasons = [str(v) for v in getattr(exc, "violations", [])] or [str(exc)]
                self.say(f"    rejected: {reasons[0]}")
                feedback = prompts.render("rejected", item_id=item.id, reasons=reasons)
                messages += [call, Message(role="user", content=feedback)]
                files, missing = self.read_files(list(files) + list(missing))
                continue
            self.say(f"    landed {sha[:10]}")
            return sha, rejected
        return None, rejected

    def view(
        self,
        path: str,
        text: str,
        item: TodoItem,
        gates: list[str],
        quick: list[Finding],
        wanted: list[tuple[int, int]],
        told: dict[str, tuple[tuple[int, int], ...]],
    ) -> FileView:
        """What the model sees of one file: whole, or (too large) the regions around the
        item's findings, the lines its title names and the ranges asked for."""
        latest = self.latest().results
        # ruff's findings come fresh from the quick check; the other gates' from the last run.
        found = quick + [
            f for g in gates if g != "ruff" and g in latest for f in latest[g].findings
        ]
        focus = [(f.line, f.line) for f in found if f.path == path and f.line]
        shown = file_view(
            path, text, self.policy.loop.max_read_bytes, focus + named_lines(item.title), wanted
        )
        if not shown.whole and told.get(path) != shown.regions:
            told[path] = shown.regions
            count = len(shown.regions)
            self.say(
                f"    file {path} ({round(shown.size / 1000)} kB) is shown to the model as "
                f"{count} region{'s' if count != 1 else ''} {shown.basis}"
            )
            self.rec.event(
                "file_regions", item=item.id, path=path, size=shown.size, regions=shown.regions
            )
        return shown

    def read_more(
        self,
        ask: ReadFiles,
        files: dict[str, str],
        missing: dict[str, str],
        wanted: dict[str, list[tuple[int, int]]],
    ) -> tuple[str, bool]:
        """Serve a read_files call (more files, more lines of a large one), updating the
        item's files in place. Returns the note for the model and whether it got anything."""
        asked = [*ask.paths, *(r.path for r in ask.ranges if r.path not in files)]
        got, refused = self.read_files(list(dict.fromkeys(asked)))
        files.update(got)
        for path in got:
            missing.pop(path, None)
        added = []
        for r in ask.ranges:
            if r.path not in files:
                continue  # refused above, with the reason
            span = wanted_range(files[r.path], self.policy.loop.max_read_bytes, r.start, r.end)
            if isinstance(span, str):
                refused[f"{r.path} lines {r.start}-{r.end}"] = span
            else:
                wanted.setdefault(r.path, []).append(span)
                added.append(f"{r.path} lines {span[0]}-{span[1]}")
        note = " ".join(
            ([f"Added {sorted(got)} to the files shown."] if got else [])
            + ([f"Added {', '.join(added)} to the regions shown."] if added else [])
            + [f"Not shown: {p} ({why})." for p, why in refused.items()]
        )
        return note, bool(got or added)

    def land(
        self,
        block: Block,
        gates: list[str],
        guard: GuardConfig,
        item: TodoItem,
        proposal: PatchProposal,
        attempt: int,
    ) -> str:
        """Guard, apply, check, commit: all or nothing (raises PatchError/PatchRejected)."""
        name = f"b{block.number}-{item.id}-{attempt}"
        patch_file = self.rec.save_patch(name, proposal.diff)
        verdict: Verdict = check_patch(proposal.diff, self.wt, guard)
        self.rec.event(
            "verdict",
            block=block.number,
            item=item.id,
            patch=patch_file,
            **verdict.model_dump(mode="json"),
        )
        if not verdict.accepted:
            raise PatchRejected("patch rejected by the guard", verdict.violations)
        repo = open_repo(self.wt)
        pid = change_key(verdict.diff)
        earlier = next((a for a in self.avoid if pid and a["patch_id"] == pid), None)
        if earlier is not None:
            self.rec.event("refused_again", item=item.id, patch_id=pid, reason=earlier["reason"])
            raise PatchRejected(
                "this change was taken out earlier in this run",
                [f"the same change was {earlier['reason']}; propose a different one"],
            )
        trailers = {
            "Harness-Run": self.run_id,
            "Harness-Block": str(block.number),
            "Harness-Item": item.id,
        }
        # Stubs too, at landing: a stub's per-patch check is ruff and mypy (harness/verify.py).
        before = self.quick_findings([f.path for f in verdict.files], LINTED_AT_LANDING)
        self._landing_pytest = None
        tidy(repo)
        paths = [f.path for f in verdict.files]
        with restore_on_failure(repo):
            write_contents(self.wt, verdict)
            try:
                patch_check = self.behaviour(block, item, guard, paths)
                trailers |= self.check_landed(block, gates, verdict, before)
                trailers |= self.verify(paths, patch_check)
                trailers |= self.mutation(guard, verdict, paths)
                trailers |= self.review(guard, item, verdict)
                trailers |= self.approve(block, item, attempt, verdict, trailers, patch_file)
            except PatchRejected as exc:
                first = str(exc.violations[0]) if exc.violations else str(exc)
                self.remember(pid, paths, item.title, f"refused at landing: {first}", refused=True)
                raise
            sha = commit_paths(
                repo, list(verdict.contents), f"harness: {item.title}", trailers, self.commit_env()
            )
        if self._landing_pytest is not None and self.current is not None:
            self.current.results["pytest"] = self._landing_pytest
        self._pids[sha], self._titles[sha] = pid, f"harness: {item.title}"
        if "Harness-Verified" in trailers:
            self._verified.add(sha)
        tidy(repo)  # a test run may have left files behind
        self.rec.event("applied", block=block.number, item=item.id, sha=sha, patch=patch_file)
        return sha

    def land_edited(
        self,
        block: Block,
        gates: list[str],
        guard: GuardConfig,
        item: TodoItem,
        proposal: PatchProposal,
        attempt: int,
    ) -> str:
        """`land`, taking a person's edit of the patch: the edited diff goes through the guard
        and every landing check in the model's place; refused, the person is told why and asked
        again about the model's patch (the model hears nothing of it)."""
        current = proposal
        while True:
            try:
                return self.land(block, gates, guard, item, current, attempt)
            except PatchEdited as edit:
                current = proposal.model_copy(update={"diff": edit.diff})
            except (PatchError, PatchRejected) as exc:
                if current is proposal:
                    raise
                reasons = [str(v) for v in getattr(exc, "violations", [])] or [str(exc)]
                self.say(f"    the edited patch was refused: {reasons[0]}; back to the model's")
                self.rec.event("edit_refused", item=item.id, reasons=reasons)
                current = proposal

    def approve(
        self,
        block: Block,
        item: TodoItem,
        attempt: int,
        verdict: Verdict,
        trailers: dict[str, str],
        patch_file: str,
    ) -> dict[str, str]:
        """The approver's decision on a written patch every check passed (harness/approve.py):
        a refusal, an edit, a skip or a quit raises, undoing the patch. Returns its trailer."""
        review = patch_review(block.number, item, attempt, verdict, trailers)
        said = self.approver.patch(review)
        self.rec.event("approval", on="patch", block=block.number, item=item.id, attempt=attempt,
                       patch=patch_file, diff_sha=review.digest, **said.recorded())  # fmt: skip
        if said.by != "unattended" and said.decision in ("approve", "edit"):
            self.say(f"    {said.line()}")  # a refusal, a skip and a quit are said as they act
        return carry_out(said, f"block {block.number}, item {item.id}")

    def go_on(self, out: BlockOutcome, following: Block) -> bool:
        """After a block: whether the run goes on with the next one (the approver decides)."""
        said = self.approver.block(BlockReview.after(out, following.number))
        self.rec.event("approval", on="block", block=out.number, **said.recorded())
        if said.decision == "go_on":
            return True
        self.stopped, self.quit = said.stopped_at(f"the end of block {out.number}"), True
        self.say(self.stopped)
        return False

    def mutation(self, guard: GuardConfig, verdict: Verdict, paths: list[str]) -> dict[str, str]:
        """The mutation layer on a patch that adds or changes tests (after the new-test filter
        kept it), and a source patch where the policy judges the provider's (`source_patches`,
        'auto': a model's, not the builtin's): new or changed tests must catch
        mutants of the code they run, and the tests that cover the changed code must catch as
        many of its mutants as before. Raise PatchRejected to undo the patch."""
        cfg = guard.mutation
        tests = any(match_any(p, guard.test_globs) for p in paths)
        source = cfg.judges_source(self.provider.name) and any(
            p.endswith(".py") and not match_any(p, guard.test_globs) for p in paths
        )
        if not (cfg.enabled and self.policy.gates.pytest.enabled and (tests or source)):
            return {}

        def measure() -> MutationResult:
            # The verifier's coverage map already says which tests run the changed lines.
            covering: list[str] | None = None
            if source and self.verifier is not None and self.verifier.map is not None:
                selection, selected, _why = self.verifier.select(paths)
                covering = None if selection == "all" else selected
            # It works in a throw-away copy: the written, uncommitted patch stays as it is.
            return check_patch_tests(
                self.wt,
                self.policy,
                verdict.contents,
                guard=guard,
                covering=covering,
                provider=self.provider.name,
            )

        result = self.measured(
            "mutation", self.checked_against(guard), measure, MutationResult, paths
        )
        self.rec.event(
            "mutation",
            accepted=result.accepted,
            layer=result.layer.model_dump(),
            violations=[v.model_dump() for v in result.violations],
            mutants=result.mutants,
            tried=result.tried,
            score_before=result.score_before,
            score_after=result.score_after,
            score_mutants=result.score_mutants,
            score_complete=result.score_complete,
            lost=result.lost[:20],
            survived=result.survived[:20],
            budget_exhausted=result.budget_exhausted,
        )
        if not result.accepted:
            raise PatchRejected("the mutation layer refused the tests", result.violations)
        if not result.layer.ran:
            return {"Harness-Mutation": f"not judged: {result.layer.why}"[:200]}
        said = f"{result.caught} of {result.tried} mutant(s) caught by its checks"
        if result.score_before is not None and result.score_after is not None:
            said += (
                f"; score {result.score_before:.2f} -> {result.score_after:.2f} on "
                f"{result.score_mutants} mutant(s)"
            )
        return {"Harness-Mutation": said}

    def review_mode(self, guard: GuardConfig) -> str:
        """The reviewer layer's mode for this block. 'auto' asks the Anthropic model, and a
        scripted provider whose script (or recorded run) has review answers, so a replay asks
        exactly where the recorded run did; the builtin provider cannot review."""
        mode = guard.review.mode
        if self.provider.name == "builtin":
            return "off"
        if mode != "auto":
            return mode
        scripted = "review" in getattr(self.provider, "phases", ())
        return "flag" if self.provider.name == "anthropic" or scripted else "off"

    def review(self, guard: GuardConfig, item: TodoItem, verdict: Verdict) -> dict[str, str]:
        """A second model's opinion on a patch every other layer accepted. Its 'games a gate'
        refuses the patch in 'refuse' mode and is recorded (and shown) in 'flag' mode."""
        mode = self.review_mode(guard)
        if mode == "off":
            return {}
        note = prompts.render(
            "review", item_id=item.id, title=item.title, gate=item.gate or "", diff=verdict.diff
        )
        context = {"item": item.model_dump(), "diff": verdict.diff}
        system = prompts.render("review_system")
        asked = [Message(role="user", content=note)]
        try:
            answer = self.ask("review", asked, context, guard, system)
        except InvalidOutput as exc:
            self.rec.event("review", item=item.id, mode=mode, games_gate=None, how=str(exc))
            if mode == "refuse":  # fail closed: no opinion is not a clean bill
                raise PatchRejected(
                    "the reviewer gave no valid answer",
                    [Violation(rule="review.no_answer", layer="review", message=str(exc))],
                ) from exc
            self.say(f"    reviewer: no valid answer ({exc})")
            return {"Harness-Review": "no valid answer"}
        if not isinstance(answer, Review):  # ask() validated it against submit_review
            raise InvalidOutput(f"review: expected submit_review, got {type(answer).__name__}")
        self.rec.event(
            "review", item=item.id, mode=mode, games_gate=answer.games_gate, how=answer.how
        )
        if not answer.games_gate:
            return {"Harness-Review": "no gaming seen"}
        how = " ".join(answer.how.split()) or "(no reason given)"
        if mode == "refuse":
            raise PatchRejected(
                "the reviewer says the patch games a gate",
                [Violation(rule="review.games_gate", layer="review", message=how)],
            )
        self.say(f"    reviewer flags this patch: {how[:200]}")
        return {"Harness-Review": f"flagged: {how[:200]}"}

    def start_verifier(self, gates: list[str], start: GateRun) -> Verifier | None:
        """Per-patch verification for this block (harness/verify.py), when the policy wants it
        and there is something to verify with."""
        wanted = self.policy.loop.verify_patches and (
            self.policy.gates.pytest.enabled or "mypy" in gates
        )
        if not wanted:
            return None
        verifier = self.make_verifier(gates, start)
        try:
            verifier.start()
        except BaseException:
            verifier.close()
            raise
        tidy(open_repo(self.wt))
        return verifier

    def make_verifier(self, gates: list[str], start: GateRun) -> Verifier:
        return Verifier(self.wt, self.policy, gates, start)

    def verifies(self, paths: list[str]) -> bool:
        """Whether the per-patch verifier checks this patch: new tests are judged by
        check_new_tests instead, on the whole suite."""
        test_globs = self.policy.guard.test_globs
        return self.verifier is not None and not any(match_any(p, test_globs) for p in paths)

    def verify(self, paths: list[str], check: PatchCheck | None) -> dict[str, str]:
        """The per-patch check of the written patch (made with the behaviour layer's, when it
        was); raise PatchRejected to undo it."""
        if self.verifier is None or not self.verifies(paths):
            return {}
        if check is None:
            check = self.verifier.check(paths)
            self.rec.event("patch_check", **check.model_dump())
        if not check.ok:
            raise PatchRejected("the patch makes worse what was fine before it", check.reasons)
        return {"Harness-Verified": f"{len(check.tests_run)} test(s), {check.selection}"}

    def behaviour(
        self, block: Block, item: TodoItem, guard: GuardConfig, paths: list[str]
    ) -> PatchCheck | None:
        """The guard's behaviour layer on the written patch (harness/guard/behaviour.py), first:
        its refusals say what pytest did, where the landing checks would say it could not run.
        A patch the per-patch verifier checks gets one pytest run for both: the verifier's
        check is made here, and returned for `verify` to act on."""
        before = self.latest().results.get("pytest")
        patch_check = None
        verifier = self.verifier
        if verifier is not None and self.verifies(paths):
            check, patch_check = self.measured(
                "behaviour+verify",
                self.checked_against(guard),
                lambda: check_with_verifier(self.wt, self.policy, paths, before, verifier, guard),
                tuple[BehaviourCheck, PatchCheck],
                paths,
            )
            self.rec.event("patch_check", **patch_check.model_dump())
        else:
            check = self.measured(
                "behaviour",
                self.checked_against(guard),
                lambda: check_behaviour(self.wt, self.policy, paths, before, guard),
                BehaviourCheck,
                paths,
            )
        self.rec.event("behaviour", block=block.number, item=item.id, **check.model_dump())
        if not check.ok:
            raise PatchRejected("the patch changes what the tests check", check.violations)
        return patch_check

    def check_landed(
        self, block: Block, gates: list[str], verdict: Verdict, before: list[Finding]
    ) -> dict[str, str]:
        """Quick checks on the written files; raise PatchRejected to undo the change.
        Returns the gate deltas, as commit trailers."""
        paths = [f.path for f in verdict.files]
        after = self.quick_findings(paths, LINTED_AT_LANDING)
        new = new_findings(before, after)
        if new:
            reasons = [f"new ruff finding: {finding_line(f)}" for f in new[:10]]
            self.rec.event("quick_check", ok=False, reasons=reasons)
            raise PatchRejected("patch adds lint findings", reasons)
        deltas = {"Harness-Ruff": f"{len(before)} -> {len(after)} (changed files)"}
        if (
            any(match_any(p, self.policy.guard.test_globs) for p in paths)
            and self.policy.gates.pytest.enabled
        ):
            deltas |= self.check_new_tests(block, gates)
        return deltas

    def check_new_tests(self, block: Block, gates: list[str]) -> dict[str, str]:
        """TestGen-LLM's filter: new tests must pass N runs in a row with the network blocked,
        and in a coverage block they must raise coverage."""
        base = self.latest().results.get("pytest")
        after = self.measured(
            "new_tests",
            self.checked_against(),
            lambda: run_gates(
                self.wt, self.policy, only=["pytest"], use_cache=self.use_cache
            ).results["pytest"],
            GateResult,
            self.written(),
        )
        if after.status == GateStatus.ERROR:
            raise PatchRejected("tests do not run", [f"pytest could not run: {after.reason}"])
        known = {t.id: t.outcome for t in base.tests} if base else {}
        fresh = [t.id for t in after.tests if t.id not in known]
        # Only what this patch changed counts: new tests, and tests that passed before it.
        reasons = [
            f"test {t.id} {t.outcome}"
            for t in after.tests
            if t.outcome in ("failed", "error") and known.get(t.id, "passed") == "passed"
        ]
        for n in range(self.policy.loop.test_stability_runs if fresh and not reasons else 0):
            try:
                outcomes = self.measured(
                    "new_tests_again",
                    {"tests": fresh, "round": n},
                    lambda: run_tests(self.wt, self.policy, fresh, block_network=True),
                    dict[str, str],
                    self.written(),
                )
            except GateError as exc:
                raise PatchRejected("new tests could not be re-run", [str(exc)]) from exc
            reasons += [
                f"new test {tid} is not deterministic or needs the network ({o})"
                for tid, o in outcomes.items()
                if o != "passed"
            ]
            if reasons:
                break
        was, now = (base.coverage if base else None), after.coverage
        # Only new tests must earn their place by coverage; a fix to an existing test (a ruff
        # fix in tests/, toolz) adds none, and the other layers judge what it does to them.
        if fresh and "pytest" in gates and was and now and now.percent <= was.percent:
            reasons.append(
                f"coverage did not rise ({was.percent:.2f}% -> {now.percent:.2f}%): "
                "tests that cover nothing new are not kept"
            )
        self.rec.event("test_filter", new_tests=fresh, ok=not reasons, reasons=reasons)
        if reasons:
            raise PatchRejected("new tests rejected", sorted(set(reasons)))
        # The suite with this patch becomes the latest result only once the patch lands: a
        # later layer (mutation, review) may still refuse it.
        self._landing_pytest = after
        deltas = {"Harness-Tests": f"{len(known)} -> {len(after.tests)}"}
        if was and now:
            deltas["Harness-Coverage"] = f"{was.percent:.2f}% -> {now.percent:.2f}%"
        return deltas

    # ------------------------------------------------------------------ regressions
    def regressions(
        self, start: GateRun, after: GateRun, include_flaky: bool = False
    ) -> list[Regression]:
        found = compare(start, after, self.policy.regression, rerun=self.rerunner())
        # Passing alone is not being flaky: a test that fails in the full run after the change
        # and passed every full run at the block's start fails because of the change (order).
        suspects = [r.subject for r in found if r.flaky and r.gate == "pytest"]
        steady = self.steady_at_start(suspects)
        for r in found:
            if r.flaky and r.subject in steady:
                r.flaky = False
                r.message += (
                    f"; it passed {self.policy.regression.rerun_failed + 1} full runs at the "
                    "block's start: it fails with this change in the suite (order-dependent)"
                )
        if found:
            self.rec.event("regressions", items=[r.model_dump() for r in found])
        return found if include_flaky else blocking(found)

    def steady_at_start(self, test_ids: list[str]) -> set[str]:
        """The tests among `test_ids` that pass every full run of the suite at the block's start
        (measured once per block, not assumed)."""
        todo = [t for t in test_ids if t not in self._steady]
        if todo:
            failed: set[str] = set()
            for i in range(self.policy.regression.rerun_failed):
                result = self.measured(
                    "start_rerun",
                    {"base": self.block_base, "round": i},
                    self.suite_at_block_start,
                    GateResult,
                )
                failed |= {t.id for t in result.tests if t.outcome in ("failed", "error")}
                self.rec.event("start_rerun", round=i + 1, failed=sorted(failed & set(todo)))
            for t in todo:
                self._steady[t] = t not in failed
        return {t for t in test_ids if self._steady.get(t)}

    def suite_at_block_start(self) -> GateResult:
        repo = open_repo(self.wt)
        with applied(repo, self.block_base, []):
            run = run_gates(self.wt, self.policy, only=["pytest"], use_cache=False)
        tidy(repo)
        return run.results["pytest"]

    def rerunner(self) -> Rerun:
        """compare()'s re-run of failing tests, as a measurement of the tree it runs on."""
        run = make_rerunner(self.wt, self.policy)

        def rerun(test_ids: list[str]) -> dict[str, str]:
            return self.measured(
                "rerun", {"tests": test_ids}, lambda: run(test_ids), dict[str, str]
            )

        return rerun

    def revert_culprits(self, start: GateRun, out: BlockOutcome) -> None:
        """Find the commits that cause a regression by delta debugging over the block's kept
        commits (harness/culprits.py: single culprits, several, an interacting pair), each look
        at the block's start with exactly a subset applied, and revert them. A culprit whose
        revert conflicts with later commits is reverted together with them (they depend on it).
        """
        repo = open_repo(self.wt)
        commits = list(out.commits)
        seen: dict[tuple[str, ...], list[Regression]] = {}

        def fails(subset: list[str]) -> bool | None:
            with applied(repo, self.block_base, subset) as clean:
                if not clean:
                    return None  # cannot stand without a commit left out: not shown to fail
                label = f"bisect: {len(subset)} of {len(commits)} commits"
                regs = self.regressions(start, self.gates(label))
            seen[tuple(subset)] = regs
            return bool(regs)

        for culprit, minimal in find_culprits(commits, fails):
            if culprit not in out.commits:
                continue  # already reverted with a culprit it depends on
            because = [r.message for r in seen.get(tuple(minimal), [])] or ["regression"]
            later = [c for c in out.commits if commits.index(c) > commits.index(culprit)]
            try:
                revert_commits(
                    repo,
                    [culprit],
                    f"harness: revert {culprit[:10]} (regression)",
                    self.commit_env(),
                )
                gone = [culprit]
            except GitError:
                gone = [culprit, *later]
                revert_commits(
                    repo,
                    list(reversed(gone)),
                    f"harness: revert {culprit[:10]} and the {len(later)} commit(s) built on it",
                    self.commit_env(),
                )
            for sha in gone:
                self.taken_out(out, sha, because, "culprit" if sha == culprit else "with_culprit")
            self.say(f"  reverted {culprit[:10]}: {because[0]}")

    def hold_the_contract(self, start: GateRun, out: BlockOutcome, final: GateRun) -> GateRun:
        """At a block's end the branch shows no blocking regression against the block's start.
        When no culprit could be isolated, the block's commits are reverted newest first until
        none is left, down to the block's start if need be."""
        repo = open_repo(self.wt)
        regs = self.regressions(start, final)
        while regs and out.commits:
            sha = out.commits[-1]
            revert_commits(
                repo,
                [sha],
                f"harness: revert {sha[:10]} (regression not isolated)",
                self.commit_env(),
            )
            self.taken_out(out, sha, [r.message for r in regs], "contract")
            self.say(f"  reverted {sha[:10]}: a regression no single culprit explains")
            final = self.gates(f"block {out.number} end, after reverting {sha[:10]}")
            regs = self.regressions(start, final)
        if regs:
            # Every commit of the block is out: what is left is not this block's doing.
            self.rec.event("regression_persists", items=[r.model_dump() for r in regs])
            self.say("  a regression persists with all of this block's commits reverted")
        return final

    def taken_out(self, out: BlockOutcome, sha: str, because: list[str], how: str) -> None:
        """Record a revert: in the outcome, in the record, and in the ledger of changes that
        must not land again in this run."""
        repo = open_repo(self.wt)
        pid = self._pids.get(sha) or commit_change_key(repo, sha)
        title = self._titles.get(sha) or str(repo.commit(sha).summary)
        out.commits = [c for c in out.commits if c != sha]
        out.reverted.append(sha)
        out.reverts.append(Revert(sha=sha, title=title, patch_id=pid, because=because, how=how))
        files = [str(p) for p in repo.commit(sha).stats.files]
        self.remember(pid, files, title, f"reverted: {because[0]}")
        if how == "culprit":
            self.forget_refusals_after(sha)
        self.rec.event("reverted", sha=sha, patch_id=pid, because=because, how=how)

    def remember(
        self, pid: str, files: list[str], title: str, reason: str, *, refused: bool = False
    ) -> None:
        if pid and all(a["patch_id"] != pid for a in self.avoid):
            rule = _RULE.search(title)
            self.avoid.append(
                {
                    "patch_id": pid,
                    "path": files[0] if files else "",
                    "paths": files,
                    "rule": rule.group(0) if rule else None,
                    "title": title,
                    "reason": reason,
                    # A refusal may be a culprit's doing: it is forgotten if one landed earlier
                    # and is reverted (see forget_refusals_after).
                    "after": len(self._pids) if refused else None,
                }
            )

    def forget_refusals_after(self, sha: str) -> None:
        """A reverted culprit that landed before some refusals may have caused them (a test it
        broke failed every later patch's check): those patches deserve another chance."""
        landed = list(self._pids)
        if sha not in landed:
            return
        k = landed.index(sha)
        kept = [a for a in self.avoid if a["after"] is None or a["after"] <= k]
        if len(kept) != len(self.avoid):
            self.rec.event("refusals_forgotten", culprit=sha, count=len(self.avoid) - len(kept))
        self.avoid = kept

    # ------------------------------------------------------------------ model calls
    def ask(
        self,
        phase: Phase,
        messages: list[Message],
        context: dict[str, Any],
        guard: GuardConfig,
        system: str | None = None,
    ) -> BaseModel:
        """One validated structured answer; invalid output goes back, a bounded number of times.
        `system` replaces the worker's system prompt (the reviewer has its own)."""
        allowed = dict(PHASE_TOOLS[phase])
        tools = [
            ToolSpec(
                name=n, description=(m.__doc__ or n).strip(), input_schema=m.model_json_schema()
            )
            for n, m in allowed.items()
        ]
        if system is None:
            system = prompts.render(
                "system",
                guardrails=[g.text for g in self.opts.steps.guardrails],
                max_lines=guard.max_changed_lines_per_file,
                lanes=guard.lanes,
            )
        convo = list(messages)
        for _ in range(self.policy.loop.max_invalid_outputs + 1):
            request = ModelRequest(
                phase=phase,
                system=system,
                messages=convo,
                tools=tools,
                tool_choice=next(iter(allowed)) if len(allowed) == 1 else None,
                context=context,
            )
            # Checked before the request is recorded: a call the budget refuses is not made.
            self.budget.at(_where(phase, context))
            self.budget.before_call()
            self.rec.model_request(request)
            try:
                response = self.provider.complete(request)
            except BudgetExceeded:
                raise
            except ProviderError as exc:
                if not self._metered:
                    self.budget.charge(None)
                self.rec.event("model_error", phase=phase, error=str(exc))
                raise
            if not self._metered:
                self.budget.charge(response.usage)
            self.rec.event("model_response", phase=phase, **response.model_dump())
            try:
                if response.tool not in allowed:
                    raise ValueError(
                        f"expected a call to one of {sorted(allowed)}, "
                        f"got {response.tool or 'text'}"
                    )
                return allowed[response.tool].model_validate(response.input or {})
            except (ValueError, ValidationError) as exc:
                # A ValidationError is a ValueError too, whose first line names no field.
                error = (
                    _short(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
                )
                self.rec.event("invalid_output", phase=phase, error=error)
                said = response.text if response.input is None else json.dumps(response.input)
                convo += [
                    Message(role="assistant", content=said or "(empty answer)"),
                    Message(
                        role="user",
                        content=prompts.render("invalid", tool=str(response.tool), error=error),
                    ),
                ]
        tries = self.policy.loop.max_invalid_outputs + 1
        raise InvalidOutput(f"{phase}: no valid answer in {tries} tries")

    # ------------------------------------------------------------------ helpers
    def recorded_gate_run(self, label: str, tree: str, results: dict[str, Any]) -> GateRun:
        """A gate run taken from a record (replay, resume) instead of measured: said, recorded
        and made current as a measured one is."""
        run = GateRun(
            tree=tree, results={k: GateResult.model_validate(v) for k, v in results.items()}
        )
        for r in run.results.values():
            self.say(f"    gate {r.gate}: {r.status.value} (from the record) [{label}]")
        return self._made_current(label, run)

    def gates(self, label: str) -> GateRun:
        run = run_gates(
            self.wt,
            self.policy,
            use_cache=self.use_cache,
            on_result=lambda r: self._gate_done(label, r),
        )
        tidy(open_repo(self.wt))  # what the tools wrote is not part of the tree
        for name, command in self.commands.items():
            ctx = context_for(self.wt, self.policy, GateConfig())
            run.results[name] = CommandGate(name, command).run(ctx)
            self._gate_done(label, run.results[name])
        return self._made_current(label, run)

    def _made_current(self, label: str, run: GateRun) -> GateRun:
        self.rec.gates(
            label,
            run.tree,
            seed_summary(run),
            {k: v.model_dump(mode="json") for k, v in run.results.items()},
            self.gate_setup(),
        )
        self.current = run
        return run

    def gate_setup(self) -> str:
        """What configures the gates (the policy's gate tables, the block's commands)."""
        return digest(
            {"gates": self.policy.gates.model_dump(mode="json"), "commands": self.commands}
        )

    def measured(
        self,
        layer: str,
        inputs: dict[str, Any],
        measure: Callable[[], T],
        kind: Any,
        written: Sequence[str] = (),
    ) -> T:
        """A measurement a patch or a block is judged by besides the gates (a guard layer, the
        per-patch check, the quick lint, a re-run), recorded under the key of what decides it:
        the commit's tree and the files `written` over it, `inputs`, the policy, the block's
        commands and the tools' versions. A replay takes it from the record where the key
        matches (`recorded`)."""
        key = digest(
            {
                "layer": layer,
                "tree": self.head_tree(),
                "written": {p: _file_digest(self.wt / p) for p in sorted(set(written))},
                "inputs": inputs,
                "setup": self.gate_setup(),
                "policy": self.judged_under(),
                "versions": self.tool_versions(),
            }
        )
        adapter = _ADAPTERS.setdefault(kind, TypeAdapter(kind))
        found = self.recorded(layer, key)
        if found is not None:
            return cast(T, adapter.validate_python(found))
        result = measure()
        self.rec.measured(layer, key, adapter.dump_python(result, mode="json"))
        return result

    def recorded(self, layer: str, key: str) -> Any:
        """The recorded result of a measurement with this key, or None: a run has none."""
        return None

    def judged_under(self) -> dict[str, Any]:
        """The policy as a measurement's key holds it."""
        return self.policy.model_dump(mode="json")

    def checked_against(self, guard: GuardConfig | None = None) -> dict[str, Any]:
        """What a per-patch check compares with: the latest gate results, the block's start
        (the verifier's baseline) and the block's guard."""
        latest = self.latest()
        return {
            "latest": digest({k: r.model_dump(mode="json") for k, r in latest.results.items()}),
            "block_base": self.block_base,
            "guard": guard.model_dump(mode="json") if guard is not None else None,
        }

    def written(self) -> list[str]:
        """The files changed over HEAD (a patch written and not committed yet)."""
        out = self.wt_repo().git.status("--porcelain", "-z", "--untracked-files=all")
        # Nothing is staged in a harness worktree: no entry is a rename's second path.
        return sorted({e[3:] for e in out.split("\0") if len(e) > 3 and e[2] == " "})

    def head_tree(self) -> str:
        repo = self.wt_repo()
        # HEAD read from its ref files; only a commit not seen before costs an object lookup.
        commit = git.SymbolicReference.dereference_recursive(repo, "HEAD")
        if commit not in self._trees:
            self._trees[commit] = str(repo.commit(commit).tree.hexsha)
        return self._trees[commit]

    def wt_repo(self) -> git.Repo:
        # One Repo for the worktree: each new one starts its own `git cat-file` process.
        if self._wt_repo is None or self._wt_repo.working_tree_dir != str(self.wt):
            self._wt_repo = open_repo(self.wt)
        return self._wt_repo

    def tool_versions(self) -> dict[str, str]:
        """Each enabled gate's tool version in this environment (probed once)."""
        python = interpreter(self.policy)
        if python not in self._versions:
            self._versions[python] = {
                name: gate.version(python)
                for name, gate in GATES.items()
                if gate_config(self.policy, name).enabled
            }
        return self._versions[python]

    def residues(self, block: Block) -> dict[str, Residue]:
        if not any(m.kind == "fixer" for m in block.gates):
            return {}
        return self.measured(
            "fixers",
            {"block": block.number},
            lambda: fixer_residues(block, self.wt, self.policy),
            dict[str, Residue],
        )

    def _gate_done(self, label: str, r: GateResult) -> None:
        cached = " (cached)" if r.cached else ""
        self.say(f"    gate {r.gate}: {r.status.value} in {r.seconds:.1f}s{cached} [{label}]")

    def latest(self) -> GateRun:
        return self.current if self.current is not None else self.gates("initial")

    def quick_findings(
        self, paths: list[str], suffixes: tuple[str, ...] = (".py",)
    ) -> list[Finding]:
        py = [p for p in paths if p.endswith(suffixes) and (self.wt / p).is_file()]
        if not py or not self.policy.gates.ruff.enabled:
            return []
        policy = self.policy.model_copy(deep=True)
        policy.gates.ruff.paths = py

        def lint() -> tuple[str | None, list[Finding]]:
            run = run_gates(self.wt, policy, only=["ruff"], use_cache=self.use_cache)
            result = run.results["ruff"]
            if result.status == GateStatus.ERROR:
                return result.reason or "", []
            return None, result.findings

        error, findings = self.measured(
            "quick", {"paths": py}, lint, tuple[str | None, list[Finding]], py
        )
        if error is not None:
            raise PatchRejected("ruff could not run on the patched files", [error])
        return findings

    def lint_command(self) -> dict[str, Any]:
        """How the ruff gate lints, so an offline provider can check candidate text the same way."""
        return ruff_gate.lint_command(context_for(self.wt, self.policy, self.policy.gates.ruff))

    def read_files(self, paths: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The whole texts of the readable paths (however large: `view` decides what the model
        is shown), and why each other one could not be read."""
        texts: dict[str, str] = {}
        missing: dict[str, str] = {}
        for path in paths:
            text, why = read_repo_file(self.wt, path)
            if text is None:
                missing[path] = why
            else:
                texts[path] = text
        return texts, missing

    def commit_progress(self) -> None:
        """Append the finished blocks' entries to the script's progress log, as one commit."""
        log = self.opts.steps.progress_log
        if not log or not self._progress:
            return
        entries, self._progress = self._progress, []
        path = self.wt / log
        repo = open_repo(self.wt)
        tidy(repo)
        blocks = [str(number) for number, _entry in entries]
        self.rec.event("progress_commit", blocks=[number for number, _entry in entries])
        with restore_on_failure(repo):
            path.parent.mkdir(parents=True, exist_ok=True)  # after tidy, which removes new dirs
            with path.open("a", encoding="utf-8") as fh:
                fh.write("".join(entry for _number, entry in entries))
            commit_paths(
                repo,
                [log],
                f"harness: progress log for block{'s' if len(blocks) > 1 else ''} "
                f"{', '.join(blocks)}",
                {"Harness-Run": self.run_id, "Harness-Blocks": ", ".join(blocks)},
                self.commit_env(),
            )

    def stamp(self, purpose: Purpose) -> str:
        """A time from the run's clock, recorded: a replay is handed the same one."""
        value = self.clock.now(purpose)
        self.rec.event("clock", purpose=purpose, value=value)
        return value

    def commit_env(self) -> dict[str, str]:
        when = self.stamp("commit")
        return {**self.identity, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}

    def _branch_tip(self) -> dict[str, str]:
        """The branch's last commit and its tree, for a replay's final check."""
        try:
            tip = open_repo(self.opts.repo).commit(self.branch)
        except (ValueError, git.BadName, GitError):
            return {}
        return {"head": tip.hexsha, "tree": tip.tree.hexsha}

    def summarize(self, base: str, outcomes: list[BlockOutcome], final: GateRun) -> RunSummary:
        summary = RunSummary(
            run_id=self.run_id,
            run_dir=str(self.rec.dir),
            repo=str(self.opts.repo),
            branch=self.branch,
            base_commit=base,
            head_commit=str(open_repo(self.opts.repo).commit(self.branch).hexsha),
            provider=self.provider.name,
            model=self.provider.model,
            blocks=outcomes,
            summary=seed_summary(final),
            cost_usd=self.budget.run.cost_usd,  # earlier sessions of a resumed run included
            goals_met=all(o.status == "goal_met" for o in outcomes),
            stopped=self.stopped or self.failed_gate,
            interrupted=self.quit,
        )
        self.rec.write_json("summary.json", summary.report())
        return summary

    def _manifest(self, base: str, blocks: list[int]) -> Manifest:
        return Manifest(
            run_id=self.run_id,
            harness_version=__version__,
            record_format=RECORD_FORMAT,
            identity=self.identity,
            steps_path=self.opts.steps.source,
            steps_sha256=_sha(self.opts.steps_text),
            policy_path=str(self.opts.policy_path) if self.opts.policy_path else None,
            policy_sha256=_sha(self.opts.policy_text),
            prompt_sha256=prompts.prompt_hashes(),
            repo=str(self.opts.repo.resolve()),
            base_commit=base,
            branch=self.branch,
            provider=self.provider.name,
            model=self.provider.model,
            blocks=blocks,
            started=utcnow(),
        )


def _where(phase: Phase, context: dict[str, Any]) -> str:
    """The step a model call is for, as a budget error names it."""
    block, item = context.get("block"), context.get("item")
    parts = [f"block {block['number']}"] if isinstance(block, dict) and "number" in block else []
    parts += [f"item {item['id']}"] if isinstance(item, dict) and "id" in item else []
    return ", ".join([*parts, f"phase {phase}"])


def _budget_option(exc: BudgetExceeded) -> str:
    """The `harness resume` option that raises the budget that ran out."""
    option = {
        "cost_usd": "max-cost",
        "tokens": "max-tokens",
        "calls": "max-calls",
        "seconds": "max-time",
        "item_calls": "max-item-calls",
    }.get(exc.budget, "max-calls")
    name = f"--block-{option}" if exc.scope == "block" else f"--{option}"
    return f"{name} N"


def _file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "input"
    return f"{loc}: {first['msg']} ({exc.error_count()} error(s))"
