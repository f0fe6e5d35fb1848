"""A recorded run read into what its report shows: the header, each block's goal, metrics,
items with their proposals and who decided each, reverts, costs, and the findings left at the
end. Read from the record only (manifest.json, events.jsonl, bodies, summary.json, steps.json),
so a report can be made of any run, live or replayed, on any machine.

Events this module does not know (a newer harness's, such as supervision decisions) are kept
where they occurred and shown as they are, never dropped and never an error."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, computed_field

from harness.errors import UsageError
from harness.outcome import seed_keys
from harness.record import Manifest, read_bodies

# Every kind the loop writes today: the others are shown generically (see `OtherEvent`).
KNOWN = frozenset(
    {
        "run_started", "run_finished", "run_error", "imports_checked", "user_changes_ignored",
        "steps_mapped", "block_started", "block_outcome", "gates", "plan", "todos",
        "model_request", "model_response", "model_error", "invalid_output", "clock",
        "verdict", "behaviour", "quick_check", "patch_check", "test_filter", "mutation",
        "review", "refused_again", "applied", "item_skipped", "stuck", "file_regions",
        "regressions", "start_rerun", "reverted", "regression_persists",
        "refusals_forgotten", "verify_disagreed", "approval",
        # Bookkeeping for replay and resume, nothing a reader of the report acts on.
        "measured", "checkpoint", "progress_commit",
    }
)  # fmt: skip
# Kinds that end a proposal's window: what follows belongs to the next attempt or phase.
_CLOSES = frozenset({"verdict", "item_skipped", "stuck", "plan", "todos", "gates", "block_outcome"})
# Words that mark an event as a person's (or an approval rule's) decision.
_DECISION_WORDS = ("supervis", "approv", "decision", "decided")


class Tokens(BaseModel):
    """What the model calls cost, summed from the recorded responses' usage, and how many
    requests were sent and HTTP attempts made for them."""

    requests: int = Field(
        0, description="requests sent to the model (an invalid answer re-asked too)"
    )
    calls: int = Field(0, description="answers the model gave")
    failed: int = Field(0, description="requests the provider failed on, retries spent")
    attempts: int = Field(
        0, description="HTTP attempts the answers took, failed and retried ones included"
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    @computed_field(description="attempts beyond one per answer: each was billed")  # type: ignore[prop-decorator]
    @property
    def retries(self) -> int:
        return max(0, self.attempts - self.calls)

    @property
    def said(self) -> str:
        """The requests, and what went wrong with them where anything did."""
        said = f"{self.requests} model request{'' if self.requests == 1 else 's'}"
        if self.calls != self.requests:
            said += f", {self.calls} answered"
        if self.failed:
            said += f", {self.failed} failed"
        if self.retries:
            said += f", {self.attempts} HTTP attempts ({self.retries} retried)"
        return said

    def plus(self, other: Tokens) -> Tokens:
        return Tokens.model_validate(
            {k: getattr(self, k) + getattr(other, k) for k in Tokens.model_fields}
        )

    def add(self, usage: dict[str, Any], attempts: int = 1) -> None:
        self.calls += 1
        self.attempts += attempts
        self.input_tokens += int(usage.get("input_tokens") or 0)
        self.output_tokens += int(usage.get("output_tokens") or 0)
        self.cache_creation_input_tokens += int(usage.get("cache_creation_input_tokens") or 0)
        self.cache_read_input_tokens += int(usage.get("cache_read_input_tokens") or 0)
        self.cost_usd += float(usage.get("cost_usd") or 0.0)


class Header(BaseModel):
    run_id: str
    harness_version: str
    target: str = Field(description="the repository the run was made in")
    base_commit: str
    branch: str
    head_commit: str | None = Field(None, description="the branch's last commit at the end")
    steps_script: str
    steps_sha256: str
    policy: str = Field(description="the policy file, or the default policy")
    policy_sha256: str
    provider: str
    model: str
    started: str
    finished: str | None = Field(None, description="None: killed, or still running")
    seconds: float | None = None
    exit_code: int | None = None
    cost_usd: float = Field(description="summary.json's cost, else the responses' sum")
    tokens: Tokens
    goals_met: bool | None = None
    stopped: str | None = None
    checks_reused: int = Field(
        0,
        description="a resumed run's checks (guard layers, per-patch verification, lint) "
        "taken from the interrupted session's record instead of run again",
    )


class OtherEvent(BaseModel):
    """An event shown as it was recorded (a kind this report does not know)."""

    seq: int
    kind: str
    fields: dict[str, Any]

    @property
    def is_decision(self) -> bool:
        return any(word in self.kind for word in _DECISION_WORDS)


class Decider(BaseModel):
    """The layer and rule that decided a proposal, with its message."""

    layer: str
    rule: str
    message: str = ""


class Check(BaseModel):
    """A check made at landing, after the guard's static and secrets layers accepted."""

    kind: str = Field(description="behaviour, quick_check, patch_check, test_filter, ...")
    ok: bool | None
    summary: str


class Proposal(BaseModel):
    seq: int
    item: str
    title: str = Field("", description="the item's title")
    patch: str = Field(description="the proposed diff, relative to the run directory")
    diff: str = Field(description="the diff as the guard read it (repaired where it was)")
    files: list[dict[str, Any]] = Field(default_factory=list)
    repairs: list[str] = Field(default_factory=list)
    layers: list[dict[str, Any]] = Field(default_factory=list, description="guard layers run")
    outcome: Literal["landed", "refused", "reverted"] = "refused"
    decided_by: list[Decider] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    sha: str | None = None
    reverted_because: list[str] = Field(default_factory=list)
    other: list[OtherEvent] = Field(default_factory=list)


class Item(BaseModel):
    id: str
    title: str
    files: list[str] = Field(default_factory=list)
    gate: str | None = None
    iteration: int = 1
    proposals: list[Proposal] = Field(default_factory=list)
    skipped: str | None = Field(None, description="why the model skipped it, if it did")
    stuck: bool = Field(False, description="the same patch was proposed twice")


class Measure(BaseModel):
    """One gate run of a block (start, each iteration, end): the numbers its charts plot."""

    label: str
    coverage: float | None = None
    counts: dict[str, int | None] = Field(
        default_factory=dict, description="findings per counting gate; None: the gate errored"
    )
    tests_passed: int | None = None
    tests_failed: int | None = None
    statuses: dict[str, str] = Field(default_factory=dict)


class GateTiming(BaseModel):
    label: str
    gate: str
    status: str
    seconds: float
    cached: bool


class RevertView(BaseModel):
    sha: str
    title: str = ""
    how: str
    because: list[str]
    item: str | None = None


class BlockReport(BaseModel):
    number: int
    title: str
    goals: list[str] = Field(default_factory=list, description="the STEPS text of the goal")
    targets: list[dict[str, Any]] = Field(default_factory=list)
    gates: list[str] = Field(default_factory=list)
    lanes: list[str] = Field(default_factory=list)
    status: str = Field("unfinished", description="the block outcome's, or unfinished")
    iterations: int = 0
    commits: list[str] = Field(default_factory=list)
    reverted: list[str] = Field(default_factory=list)
    rejected: int = 0
    cannot_do: list[str] = Field(default_factory=list)
    regressions: list[dict[str, Any]] = Field(default_factory=list)
    reverts: list[RevertView] = Field(default_factory=list)
    commands: list[dict[str, Any]] = Field(default_factory=list)
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    plans: list[str] = Field(default_factory=list)
    measures: list[Measure] = Field(default_factory=list)
    items: list[Item] = Field(default_factory=list)
    decisions: list[OtherEvent] = Field(
        default_factory=list, description="supervised decisions, as recorded"
    )
    other: list[OtherEvent] = Field(default_factory=list)
    timings: list[GateTiming] = Field(default_factory=list)
    tokens: Tokens = Field(default_factory=Tokens)
    seconds: float | None = Field(None, description="wall time from its start to its outcome")

    @property
    def gate_seconds(self) -> float:
        return sum(t.seconds for t in self.timings if not t.cached)

    @property
    def landed(self) -> list[Proposal]:
        return [p for i in self.items for p in i.proposals if p.outcome == "landed"]


class RunReport(BaseModel):
    record: str = Field(description="the run directory")
    header: Header
    blocks: list[BlockReport]
    outside: Tokens = Field(
        default_factory=Tokens, description="model calls outside any block (mapping the script)"
    )
    other: list[OtherEvent] = Field(default_factory=list, description="unknown run-level events")
    seed: dict[str, Any] = Field(default_factory=dict, description="the STEPS output keys")
    summary: dict[str, Any] | None = Field(None, description="summary.json, when written")
    final_label: str | None = Field(None, description="the last gate run's label")
    final: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="the last gate run's results: the findings left"
    )
    errors: list[str] = Field(default_factory=list, description="run_error events")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _events(run_dir: Path) -> list[dict[str, Any]]:
    events = []
    with (run_dir / "events.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                events.append(json.loads(line))
    return events


def _other(event: dict[str, Any]) -> OtherEvent:
    fields = {k: v for k, v in event.items() if k not in ("seq", "ts", "kind")}
    return OtherEvent(seq=int(event.get("seq", 0)), kind=str(event.get("kind")), fields=fields)


def measure(label: str, summary: dict[str, Any]) -> Measure:
    """The numbers of one gate run, from its seed summary (what summary.json holds too)."""
    out = Measure(label=label)
    for name, entry in (summary.get("gates") or {}).items():
        if not isinstance(entry, dict):
            continue
        status = str(entry.get("status"))
        out.statuses[name] = status
        found = entry.get("findings")
        if name == "coverage":
            if status != "error" and isinstance(found, dict):
                percent = found.get("percent")
                out.coverage = float(percent) if isinstance(percent, int | float) else None
        elif name == "pytest":
            if status != "error" and isinstance(found, dict):
                out.tests_passed = int(found.get("passed") or 0)
                out.tests_failed = int(found.get("failed") or 0) + int(found.get("errors") or 0)
        elif isinstance(found, int) or status == "error":
            out.counts[name] = None if status == "error" else int(found or 0)
    return out


def _check(event: dict[str, Any]) -> tuple[Check, list[Decider]]:
    """A landing check's event as a Check, and the deciders if it refused."""
    kind = event["kind"]
    if kind in ("behaviour", "mutation"):
        violations = event.get("violations") or []
        layer = event.get("layer") or {}
        refused = bool(violations) or event.get("accepted") is False
        ok = None if not layer.get("ran", True) and not refused else not refused
        said = "; ".join(str(v.get("message", v)) for v in violations) or (
            f"not run: {layer.get('why')}" if not layer.get("ran", True) else "passed"
        )
        deciders = [
            Decider(layer=str(v.get("layer", kind)), rule=str(v.get("rule", kind)),
                    message=str(v.get("message", "")))
            for v in violations
        ]  # fmt: skip
        return Check(kind=kind, ok=ok, summary=said), deciders if refused else []
    if kind == "review":
        flagged = bool(event.get("games_gate"))
        how = str(event.get("how") or "")
        said = f"{event.get('mode')}: " + (f"games a gate: {how}" if flagged else "no gaming seen")
        refused = event.get("mode") == "refuse" and (flagged or event.get("games_gate") is None)
        rule = "review.games_gate" if flagged else "review.no_answer"
        deciders = [Decider(layer="review", rule=rule, message=how)] if refused else []
        return Check(kind=kind, ok=not refused, summary=said), deciders
    if kind == "refused_again":
        reason = str(event.get("reason", ""))
        decider = Decider(layer="ledger", rule="refused_again", message=f"the same change {reason}")
        return Check(kind=kind, ok=False, summary=decider.message), [decider]
    ok = bool(event.get("ok", True))
    reasons = [str(r) for r in event.get("reasons") or []]
    said = "; ".join(reasons) or "passed"
    if kind == "patch_check" and ok:
        said = f"{len(event.get('tests_run') or [])} test(s), {event.get('selection')}"
    deciders = [Decider(layer=kind, rule=kind, message=r) for r in reasons] if not ok else []
    return Check(kind=kind, ok=ok, summary=said), deciders


class _Reader:
    """One pass over the events, in order, keeping the block and proposal they belong to."""

    def __init__(self, bodies: dict[str, Any], steps: dict[str, Any]) -> None:
        self.bodies = bodies
        self.goals = {b.get("number"): b.get("goals") or [] for b in steps.get("blocks") or []}
        self.blocks: list[BlockReport] = []
        self.block: BlockReport | None = None
        self.started: str | None = None
        self.proposal: Proposal | None = None
        self.refusal: list[Decider] = []
        self.supervised: Decider | None = None
        self.iteration = 0
        self.outside = Tokens()
        self.other: list[OtherEvent] = []
        self.errors: list[str] = []
        self.final: tuple[str, dict[str, dict[str, Any]]] | None = None
        self.by_sha: dict[str, Proposal] = {}
        self.reused = 0

    def read(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("kind", "")
            if kind in _CLOSES or (kind == "model_request" and event.get("phase") != "review"):
                self.close()
            handler = getattr(self, f"on_{kind}", None) if kind in KNOWN else None
            if handler is not None:
                handler(event)
            elif kind not in KNOWN:
                self.unknown(_other(event))
        self.close()

    def unknown(self, other: OtherEvent) -> None:
        """Shown where it happened: with its proposal, else its block, else the run; a
        decision is also listed with its block's supervised decisions."""
        if self.block is None:
            self.other.append(other)
            return
        if other.is_decision:
            self.block.decisions.append(other)
        if self.proposal is not None:
            self.proposal.other.append(other)
            if other.is_decision:
                # If the patch then does not land, the decision is what stopped it.
                said = ", ".join(f"{k}={v}" for k, v in other.fields.items())
                self.supervised = Decider(layer="supervision", rule=other.kind, message=said)
        elif not other.is_decision:
            self.block.other.append(other)

    def on_block_started(self, e: dict[str, Any]) -> None:
        number = int(e["block"])
        self.block = BlockReport(
            number=number,
            title=str(e.get("title", "")),
            goals=[str(g) for g in self.goals.get(number, [])],
            gates=list(e.get("gates") or []),
            lanes=list(e.get("lanes") or []),
        )
        self.blocks.append(self.block)
        self.started = e.get("ts")
        self.iteration = 0

    def on_block_outcome(self, e: dict[str, Any]) -> None:
        b = self.block
        if b is None or int(e.get("number", -1)) != b.number:
            return
        b.status = str(e.get("status"))
        b.iterations = int(e.get("iterations") or 0)
        b.commits, b.reverted = list(e.get("commits") or []), list(e.get("reverted") or [])
        b.rejected = int(e.get("rejected") or 0)
        b.cannot_do = [str(c) for c in e.get("cannot_do") or []]
        b.regressions = list(e.get("regressions") or [])
        b.commands, b.targets = list(e.get("commands") or []), list(e.get("targets") or [])
        b.before, b.after = dict(e.get("before") or {}), dict(e.get("after") or {})
        titles = {r.get("sha"): r.get("title", "") for r in e.get("reverts") or []}
        for revert in b.reverts:
            revert.title = str(titles.get(revert.sha, revert.title))
        b.seconds = _seconds(self.started, e.get("ts"))
        self.block = None

    def on_gates(self, e: dict[str, Any]) -> None:
        label = str(e.get("label", ""))
        results = {
            name: self.bodies.get(ref, {}) if isinstance(ref, str) else ref
            for name, ref in (e.get("results") or {}).items()
        }
        self.final = (label, results)
        if self.block is None:
            return
        for name, r in results.items():
            self.block.timings.append(
                GateTiming(
                    label=label,
                    gate=name,
                    status=str(r.get("status", "?")),
                    seconds=float(r.get("seconds") or 0.0),
                    cached=bool(r.get("cached")),
                )
            )
        # Bisection measures subsets of the block's commits, not the block's progress.
        if not label.startswith("bisect"):
            self.block.measures.append(measure(label, e.get("summary") or {}))

    def on_plan(self, e: dict[str, Any]) -> None:
        self.iteration += 1
        if self.block is not None:
            self.block.plans.append(str((e.get("plan") or {}).get("summary", "")))

    def on_todos(self, e: dict[str, Any]) -> None:
        if self.block is None:
            return
        for raw in e.get("items") or []:
            self.block.items.append(
                Item(
                    id=str(raw.get("id")),
                    title=str(raw.get("title", "")),
                    files=list(raw.get("files") or []),
                    gate=raw.get("gate"),
                    iteration=max(self.iteration, 1),
                )
            )

    def item(self, item_id: str) -> Item | None:
        if self.block is None:
            return None
        for item in reversed(self.block.items):
            if item.id == item_id:
                return item
        made = Item(id=item_id, title="(not in a todo list)", iteration=max(self.iteration, 1))
        self.block.items.append(made)
        return made

    def on_verdict(self, e: dict[str, Any]) -> None:
        item = self.item(str(e.get("item")))
        proposal = Proposal(
            seq=int(e.get("seq", 0)),
            item=str(e.get("item")),
            title=item.title if item is not None else "",
            patch=str(e.get("patch", "")),
            diff=str(e.get("diff") or ""),
            files=list(e.get("files") or []),
            repairs=[str(r) for r in e.get("repairs") or []],
            layers=list(e.get("layers") or []),
        )
        if item is not None:
            item.proposals.append(proposal)
        self.proposal = proposal
        self.refusal = [
            Decider(layer=str(v.get("layer")), rule=str(v.get("rule")),
                    message=str(v.get("message", "")))
            for v in e.get("violations") or []
        ]  # fmt: skip
        if not e.get("accepted") and not self.refusal:
            self.refusal = [Decider(layer="guard", rule="refused")]

    def _landing_check(self, e: dict[str, Any]) -> None:
        if self.proposal is None:
            return
        check, deciders = _check(e)
        self.proposal.checks.append(check)
        if deciders and not self.refusal:
            self.refusal = deciders

    on_behaviour = on_quick_check = on_patch_check = on_test_filter = _landing_check
    on_mutation = on_review = on_refused_again = _landing_check

    def on_approval(self, e: dict[str, Any]) -> None:
        """The approver's decision (harness/approve.py): on a patch, a landing check (a
        refusal, skip or quit decides it); after a block, whether the run went on. Decisions
        by a person or a rule are the block's supervised decisions; `unattended` ones are not."""
        decision, by = str(e.get("decision", "")), str(e.get("by", ""))
        said = f"{decision} by {by}" + (f": {e.get('reason')}" if e.get("reason") else "")
        if e.get("on") == "patch" and self.proposal is not None:
            ok = decision in ("approve", "edit")
            self.proposal.checks.append(Check(kind="approval", ok=ok, summary=said))
            if not ok and not self.refusal:
                self.refusal = [Decider(layer="approval", rule=f"{decision} by {by}",
                                        message=str(e.get("reason") or ""))]  # fmt: skip
        if by == "unattended":
            return
        number = e.get("block")
        owner = self.block or next((b for b in self.blocks if b.number == number), None)
        if owner is None:
            self.other.append(_other(e))
        else:
            owner.decisions.append(_other(e))

    def on_applied(self, e: dict[str, Any]) -> None:
        if self.proposal is None:
            return
        self.proposal.outcome, self.proposal.sha = "landed", str(e.get("sha"))
        ran = [str(layer.get("layer")) for layer in self.proposal.layers if layer.get("ran")]
        ran += [c.kind for c in self.proposal.checks if c.ok]
        self.proposal.decided_by = [
            Decider(layer="all", rule="accepted", message="passed: " + ", ".join(ran))
        ]
        self.by_sha[self.proposal.sha] = self.proposal
        self.proposal, self.refusal, self.supervised = None, [], None

    def close(self) -> None:
        if self.proposal is not None:
            unknown = Decider(layer="landing", rule="not_landed", message="no landing recorded")
            self.proposal.decided_by = self.refusal or [self.supervised or unknown]
        self.proposal, self.refusal, self.supervised = None, [], None

    def on_item_skipped(self, e: dict[str, Any]) -> None:
        item = self.item(str(e.get("item")))
        if item is not None:
            item.skipped = str(e.get("reason", ""))

    def on_stuck(self, e: dict[str, Any]) -> None:
        item = self.item(str(e.get("item")))
        if item is not None:
            item.stuck = True

    def on_reverted(self, e: dict[str, Any]) -> None:
        sha = str(e.get("sha"))
        because = [str(b) for b in e.get("because") or []]
        landed = self.by_sha.get(sha)
        if landed is not None:
            landed.outcome, landed.reverted_because = "reverted", because
        if self.block is not None:
            self.block.reverts.append(
                RevertView(
                    sha=sha,
                    how=str(e.get("how", "")),
                    because=because,
                    item=landed.item if landed else None,
                )
            )

    def tokens(self) -> Tokens:
        return self.block.tokens if self.block is not None else self.outside

    def on_model_request(self, e: dict[str, Any]) -> None:
        self.tokens().requests += 1

    def on_model_response(self, e: dict[str, Any]) -> None:
        self.tokens().add(e.get("usage") or {}, int(e.get("attempts") or 1))

    def on_measured(self, e: dict[str, Any]) -> None:
        if e.get("reused"):
            self.reused += 1

    def on_model_error(self, e: dict[str, Any]) -> None:
        self.tokens().failed += 1

    def on_run_error(self, e: dict[str, Any]) -> None:
        self.errors.append(f"{e.get('type')}: {e.get('error')}")


def load(run_dir: Path) -> RunReport:
    """Read a run directory into its report (raises UsageError on what is not a record)."""
    if not (run_dir / "manifest.json").is_file() or not (run_dir / "events.jsonl").is_file():
        raise UsageError(f"{run_dir}: not a run record (no manifest.json and events.jsonl)")
    try:
        manifest = Manifest.model_validate(_json(run_dir / "manifest.json"))
        events = _events(run_dir)
        bodies = read_bodies(run_dir)
        steps = _json(run_dir / "steps.json") if (run_dir / "steps.json").is_file() else {}
        summary = _json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else None
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(f"{run_dir}: unreadable record: {first}") from None
    reader = _Reader(bodies, steps)
    reader.read(events)
    tokens = Tokens()
    for part in [reader.outside, *(b.tokens for b in reader.blocks)]:
        tokens = tokens.plus(part)
    finished: dict[str, Any] = next(
        (e for e in reversed(events) if e.get("kind") == "run_finished"), {}
    )
    header = Header(
        run_id=manifest.run_id,
        harness_version=manifest.harness_version,
        target=manifest.repo,
        base_commit=manifest.base_commit,
        branch=manifest.branch,
        head_commit=(summary or {}).get("head_commit") or finished.get("head"),
        steps_script=manifest.steps_path,
        steps_sha256=manifest.steps_sha256,
        policy=manifest.policy_path or "the default policy",
        policy_sha256=manifest.policy_sha256,
        provider=manifest.provider,
        model=manifest.model,
        started=manifest.started,
        finished=manifest.finished,
        seconds=_seconds(manifest.started, manifest.finished),
        exit_code=manifest.exit_code,
        cost_usd=float((summary or {}).get("cost_usd", tokens.cost_usd)),
        tokens=tokens,
        goals_met=(summary or {}).get("goals_met"),
        stopped=(summary or {}).get("stopped"),
        checks_reused=reader.reused,
    )
    final_label, final = reader.final if reader.final else (None, {})
    seed = seed_keys(summary) if summary else {}
    return RunReport(
        record=str(run_dir.resolve()),
        header=header,
        blocks=reader.blocks,
        outside=reader.outside,
        other=reader.other,
        seed=seed,
        summary=summary,
        final_label=final_label,
        final=final,
        errors=reader.errors,
    )
