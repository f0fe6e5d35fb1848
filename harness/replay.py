"""Replay a recorded run exactly: the same loop, guard, git and gates, with the model's recorded
answers handed out only to the recorded questions, and time and identity from the record.

A replay starts from the run's base commit on a branch of its own (`harness/replay/<run-id>`)
and writes its own record in a temporary directory. Every request the loop would send is
compared (by the hash of its rendered messages and tools) with the one the run sent; at the
first difference it stops and shows both. At the end every verdict, every block outcome and the
final tree must equal the recorded ones.

What the run measured is taken from the record where it would measure the same thing: a gate
run whose tree, configuration and tool versions match, and each other measurement (the guard's
behaviour and mutation layers, the per-patch check, the quick lint, re-runs of failing tests)
whose key matches: the tree and the files written over it, the baseline it is judged against,
the policy and the tools' versions (`Loop.measured`). What does not match is measured again, and
`regate` measures everything. The per-patch verifier (a coverage map and a mypy daemon) starts
only when a check must really run, and then as the run's did, at the block's start.
"""

from __future__ import annotations

import difflib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, Field, ValidationError

from harness.approve import RecordedApprover
from harness.clock import Purpose, RecordedClock
from harness.errors import (
    GitError,
    ProviderError,
    RecordUnusable,
    ReplayDiverged,
)
from harness.gates.base import GATES
from harness.gates.models import GateRun
from harness.gates.runner import interpreter
from harness.gitutil import applied, delete_branch, head, open_repo, tidy, tree_hash
from harness.loop import Loop, RunOptions
from harness.policy import Policy, resolve_policy
from harness.providers.base import ModelRequest, ModelResponse, Phase, Usage
from harness.record import (
    RECORD_FORMAT,
    Manifest,
    Recorder,
    digest,
    read_events,
    rendered,
    request_digest,
    request_pairs,
)
from harness.redact import redact
from harness.steps import StepsScript
from harness.verify import CoverageMap, PatchCheck, Verifier

_SAME = ("seq", "ts")  # what two runs of the same steps never share
# How long a step took, which environment the tools ran in ("ruff 0.17.6 (env 2f52...)":
# another machine's venv has another digest), the command lines that name that env's
# interpreter and temporary files, and whether a result came from the gate cache are not what
# the step did.
_DURATIONS = ("seconds", "tool_version", "command", "cached")
_DIFF_LINES = 60


class ReplayReport(BaseModel):
    """What a replay found: reproduced, or the first difference."""

    run_id: str
    record: str = Field(description="the recorded run directory")
    repo: str
    base_commit: str
    reproduced: bool
    difference: str | None = Field(None, description="the first difference, in words")
    where: str | None = Field(None, description="block, item and phase of the difference")
    diff: str | None = Field(None, description="the two requests, as a unified diff")
    requests: int = Field(0, description="recorded requests the replay matched")
    recorded_requests: int = 0
    gates_reused: int = Field(0, description="gate runs taken from the record")
    gates_run: int = Field(0, description="gate runs measured again")
    measures_reused: int = Field(
        0,
        description="other measurements (guard layers, per-patch checks, quick lint, re-runs) "
        "taken from the record",
    )
    measures_run: int = Field(0, description="other measurements made again")
    verifiers_started: int = Field(
        0, description="per-patch verifiers started (a coverage map and mypy's baseline each)"
    )
    tree: str | None = Field(None, description="the replay's final tree")
    recorded_tree: str | None = None
    branch: str | None = Field(None, description="the replay's branch, kept when it diverged")
    seconds: float = 0.0
    recorded_seconds: float | None = Field(None, description="the original run's wall time")

    @property
    def exit_code(self) -> int:
        return 0 if self.reproduced else ReplayDiverged.exit_code


# ---------------------------------------------------------------------------------- the record


@dataclass
class Record:
    """A run directory, read and checked for what a replay needs."""

    dir: Path
    manifest: Manifest
    events: list[dict[str, Any]]
    steps: StepsScript
    steps_text: str
    policy: Policy
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: Path) -> Record:
        if not (run_dir / "manifest.json").is_file():
            raise RecordUnusable(f"{run_dir}: not a run record (no manifest.json)")
        try:
            manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_bytes())
            events = read_events(run_dir)
        except (OSError, ValueError) as exc:
            raise RecordUnusable(f"{run_dir}: unreadable record: {exc}") from exc
        if manifest.record_format < RECORD_FORMAT:
            raise RecordUnusable(
                f"run {manifest.run_id} was recorded by harness {manifest.harness_version}, "
                f"without request hashes or a clock (record format {manifest.record_format}): "
                "re-drive it with `harness run --provider scripted --script RUN_DIR` instead"
            )
        finished = [e for e in events if e["kind"] == "run_finished"]
        if manifest.finished is None or not finished:
            last = events[-1] if events else {}
            asked = [e for e in events if e["kind"] == "model_request"]
            at = _where(asked[-1]) if asked else "before any request"
            raise RecordUnusable(
                f"run {manifest.run_id} did not finish (killed or still running): its record "
                f"ends at event #{last.get('seq', 0)} ({last.get('kind', 'none')}), "
                f"{len(asked)} request(s) in, last at {at}; it has no block outcomes and no "
                "final tree to reproduce"
            )
        try:
            steps = StepsScript.model_validate_json((run_dir / "steps.json").read_bytes())
            steps_text = (run_dir / "steps.md").read_text(encoding="utf-8")
            policy = Policy.model_validate_json((run_dir / "policy.json").read_bytes())
        except (OSError, ValidationError) as exc:
            raise RecordUnusable(
                f"{run_dir}: the run's script or policy is missing: {exc}"
            ) from exc
        record = cls(run_dir, manifest, events, steps, steps_text, policy)
        record.pairs = request_pairs(events)
        return record

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    @property
    def seconds(self) -> float | None:
        if not self.manifest.finished:
            return None
        took = datetime.fromisoformat(self.manifest.finished) - datetime.fromisoformat(
            self.manifest.started
        )
        return took.total_seconds()


def _where(event: dict[str, Any]) -> str:
    parts = []
    if event.get("block") is not None:
        parts.append(f"block {event['block']}")
    if event.get("item"):
        parts.append(f"item {event['item']}")
    parts.append(f"phase {event.get('phase')}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------- the model


class ReplayProvider:
    """The recorded answers, each handed out only to the question it answered."""

    def __init__(self, record: Record) -> None:
        self.name = record.manifest.provider
        self.model = record.manifest.model
        self.pairs = record.pairs
        self.calls = 0
        self.totals = Usage()

    @property
    def phases(self) -> set[Phase]:
        """The phases answered: the loop asks for a review only where the run did."""
        return {a["phase"] for a, _ in self.pairs}

    def complete(self, request: ModelRequest) -> ModelResponse:
        where = _where(_context_where(request))
        n = self.calls + 1
        if self.calls >= len(self.pairs):
            raise ReplayDiverged(
                f"the replay sends request #{n} ({where}); the run sent {len(self.pairs)}",
                where=where,
            )
        asked, answer = self.pairs[self.calls]
        if request_digest(request) != asked["request"]:
            # What the loop did with the answer before decides this request: name it.
            after = (
                f", after the answer to request #{n - 1} ({_where(self.pairs[n - 2][0])})"
                if n > 1
                else ""
            )
            raise ReplayDiverged(
                f"request #{n} differs from the recorded one{after}",
                where=where,
                diff=request_diff(asked, rendered(request)),
            )
        self.calls += 1
        if answer["kind"] == "model_error":
            raise ProviderError(str(answer.get("error", "provider error")))
        response = ModelResponse.model_validate(
            {k: v for k, v in answer.items() if k in ModelResponse.model_fields}
        )
        self.totals = self.totals + response.usage
        return response


def _context_where(request: ModelRequest) -> dict[str, Any]:
    block, item = request.context.get("block"), request.context.get("item")
    return {
        "phase": request.phase,
        "block": block.get("number") if isinstance(block, dict) else None,
        "item": item.get("id") if isinstance(item, dict) else None,
    }


def _readable(request: dict[str, Any]) -> list[str]:
    """A request as lines: the messages first (where requests differ, nearly always), then the
    system prompt, then each tool by name and the digest of its schema."""
    lines = [f"phase: {request.get('phase')}", f"tool_choice: {request.get('tool_choice')}"]
    for i, m in enumerate(request.get("messages", []), 1):
        lines += [f"message {i} ({m.get('role')}):", *str(m.get("content", "")).splitlines()]
    lines += ["system:", *str(request.get("system", "")).splitlines()]
    for tool in request.get("tools") or []:
        lines.append(f"tool {tool.get('name')} (schema {digest(tool)[:12]})")
    return lines


def request_diff(recorded: dict[str, Any], replayed: dict[str, Any]) -> str:
    """The two requests as a unified diff (the replayed one redacted as the record is)."""
    lines = list(
        difflib.unified_diff(
            _readable(recorded),
            _readable(redact(replayed)),
            "recorded request",
            "replayed request",
            n=2,
            lineterm="",
        )
    )
    more = len(lines) - _DIFF_LINES
    return "\n".join(lines[:_DIFF_LINES] + ([f"... ({more} more lines)"] if more > 0 else []))


# ---------------------------------------------------------------------------------- the loop


# The events the final check compares (`first_difference`): the rest of what a replay does is
# checked as it happens (each request against the recorded one) or is the record's already.
_CHECKED = ("verdict", "block_outcome", "run_finished")


class ScratchRecorder(Recorder):
    """A replay's own record: read once for the final check (verdicts, block outcomes, the
    final tree, all in the events themselves), then deleted. It holds only those events,
    redacted as the run's were so that they compare equal; nothing is fsynced, and the bodies
    (requests, gate results), the manifest, script and policy are not written: the run's
    record has them."""

    durable = False

    def event(self, kind: str, **data: Any) -> None:
        if kind in _CHECKED:
            super().event(kind, **data)

    def store(self, body: Any) -> str:
        return ""

    def write_json(self, name: str, obj: Any) -> Path:
        return self.dir / name

    def write_text(self, name: str, text: str) -> Path:
        return self.dir / name


class ReplayLoop(Loop):
    """The loop, on its own branch, with gate runs and other measurements taken from the record
    where they match."""

    recorder = ScratchRecorder

    def __init__(self, opts: RunOptions, record: Record, base: str, regate: bool) -> None:
        super().__init__(opts)
        self.base = base
        self.branch = _free_branch(self.user_repo, f"harness/replay/{self.run_id}")
        self.recorded_gates = record.of("gates")
        self.recorded_measures = {e["key"]: e["result"] for e in record.of("measured")}
        self.regate = regate
        self.reused = 0
        self.remeasured = 0
        self.measures_reused = 0
        self.measures_run = 0
        self.verifiers_started = 0
        self.diverged: ReplayDiverged | None = None
        self._gate_versions: dict[str, str] = {}
        self.use_cache = not regate  # --regate: every tool runs, none is taken from a cache

    def ask(self, *args: Any, **kwargs: Any) -> BaseModel:
        try:
            return super().ask(*args, **kwargs)
        except ReplayDiverged as exc:
            self.diverged = exc
            raise

    def approve(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        try:
            return super().approve(*args, **kwargs)
        except ReplayDiverged as exc:
            self.diverged = exc
            raise

    def go_on(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return super().go_on(*args, **kwargs)
        except ReplayDiverged as exc:
            self.diverged = exc
            raise

    def stamp(self, purpose: Purpose) -> str:
        if self.diverged is not None:
            return ""  # off the recorded path: nothing more is committed for the record
        try:
            return super().stamp(purpose)
        except ReplayDiverged as exc:
            self.diverged = exc
            raise

    def commit_progress(self) -> None:
        if self.diverged is None:
            super().commit_progress()

    def gates(self, label: str) -> GateRun:
        index = self.reused + self.remeasured
        recorded = self.recorded_gates[index] if index < len(self.recorded_gates) else None
        if recorded is not None and not self.regate and recorded.get("label") == label:
            # A clean worktree is its HEAD's tree: one `git status` instead of four git calls.
            tree = self.head_tree() if not self.written() else tree_hash(open_repo(self.wt))
            if tree == recorded.get("tree") and self._same_setup(recorded):
                self.reused += 1
                return self.recorded_gate_run(label, tree, recorded["results"])
        self.remeasured += 1
        return super().gates(label)

    def recorded(self, layer: str, key: str) -> Any:
        found = None if self.regate else self.recorded_measures.get(key)
        if found is None:
            self.measures_run += 1
        else:
            self.measures_reused += 1
        return found

    def make_verifier(self, gates: list[str], start: GateRun) -> Verifier:
        if self.regate:
            self.verifiers_started += 1
            return super().make_verifier(gates, start)
        return LazyVerifier(self, gates, start)

    @contextmanager
    def at_commit(self, commit: str) -> Iterator[None]:
        """The worktree clean at `commit` for a look; then back where it was, with the files
        written over HEAD (a patch being landed) as they were."""
        saved = {p: _read(self.wt / p) for p in self.written()}
        repo = open_repo(self.wt)
        tidy(repo)
        try:
            with applied(repo, commit, []):
                yield
            tidy(repo)
        finally:
            for rel, data in saved.items():
                full = self.wt / rel
                if data is None:
                    full.unlink(missing_ok=True)
                else:
                    full.parent.mkdir(parents=True, exist_ok=True)
                    full.write_bytes(data)

    def _same_setup(self, recorded: dict[str, Any]) -> bool:
        """The configuration the gates ran with, and each tool's version, as recorded."""
        if recorded.get("setup") != self.gate_setup():
            return False
        python = interpreter(self.policy)
        for name, result in recorded["results"].items():
            gate = GATES.get(name)
            if gate is None or not result.get("tool_version"):
                continue  # a STEPS command: its configuration is its command line
            if name not in self._gate_versions:
                self._gate_versions[name] = gate.version(python)
            if self._gate_versions[name] != result["tool_version"]:
                return False
        return True


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


class LazyVerifier(Verifier):
    """The block's per-patch verifier, started only when a check must really run (its key is
    not in the record): a replay that takes every check from the record never records a
    coverage map or starts mypy. Started late, it is started as the run's was: the map at the
    block's start commit, mypy's baseline there too, or where the run last refreshed it."""

    def __init__(self, loop: ReplayLoop, gates: list[str], baseline: GateRun) -> None:
        self.loop = loop
        self.started = False
        self.refreshed_at: str | None = None
        self._map: CoverageMap | None = None
        super().__init__(loop.wt, loop.policy, gates, baseline)

    @property
    def map(self) -> CoverageMap | None:
        self.ensure()
        return self._map

    @map.setter
    def map(self, value: CoverageMap | None) -> None:
        self._map = value

    def start(self) -> None:
        return None  # until a check needs it (ensure)

    def ensure(self) -> None:
        if self.started:
            return
        self.started = True
        self.loop.verifiers_started += 1
        with self.loop.at_commit(self.loop.block_base):
            super().start()
        if self.refreshed_at is not None:
            with self.loop.at_commit(self.refreshed_at):
                super().refresh()

    def refresh(self) -> None:
        if self.started:
            super().refresh()
        else:
            self.refreshed_at = head(open_repo(self.loop.wt))

    def check(self, changed: list[str]) -> PatchCheck:
        self.ensure()
        return super().check(changed)

    def select(
        self, changed: list[str]
    ) -> tuple[Literal["selected", "all", "none"], list[str], str]:
        self.ensure()
        return super().select(changed)


def _free_branch(repo: git.Repo, wanted: str) -> str:
    names = {h.name for h in repo.heads}
    if wanted not in names:
        return wanted
    n = 2
    while f"{wanted}-{n}" in names:
        n += 1
    return f"{wanted}-{n}"


# ---------------------------------------------------------------------------------- the check


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    return {k: _timeless(v) for k, v in event.items() if k not in _SAME}


def _timeless(value: Any) -> Any:
    """`value` without the durations and tool environments it holds (`_DURATIONS`)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in _DURATIONS}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _first_change(a: Any, b: Any, path: str = "") -> str:
    """The first leaf where the two differ, named by its path (`after.gates.ruff.count`): a
    whole outcome cut at 160 characters would hide what changed."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_change(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_change(x, y, f"{path}[{i}]")
    if a == b:
        return "equal"
    return f"{path or 'value'}: recorded {_short(a)}, replayed {_short(b)}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def first_difference(record: Record, replayed: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first verdict, block outcome or final tree that differs, as (what, where)."""
    for kind in _CHECKED[:2]:
        mine = [e for e in replayed if e["kind"] == kind]
        theirs = record.of(kind)
        for i, (a, b) in enumerate(zip(theirs, mine, strict=False), 1):
            if _comparable(a) != _comparable(b):
                where = (
                    _where(a | {"phase": "execute"})
                    if kind == "verdict"
                    else f"block {a.get('number')}"
                )
                return (
                    f"{kind} #{i} differs: {_first_change(_comparable(a), _comparable(b))}",
                    where,
                )
        if len(theirs) != len(mine):
            return f"the run recorded {len(theirs)} {kind} event(s), the replay {len(mine)}", kind
    recorded_tree = next((e.get("tree") for e in record.of("run_finished")), None)
    tree = next((e.get("tree") for e in replayed if e["kind"] == "run_finished"), None)
    if recorded_tree != tree:
        return f"final tree differs: recorded {recorded_tree}, replayed {tree}", "end of run"
    return None


# ---------------------------------------------------------------------------------- the replay


def resolve_target(record: Record, repo: Path | None) -> Path:
    """The repository to replay in: --repo, else the one the run was made in; it must hold the
    run's base commit."""
    candidates = [repo] if repo is not None else [Path(record.manifest.repo)]
    where = candidates[0]
    try:
        target = open_repo(where)
    except GitError as exc:
        raise RecordUnusable(
            f"{where}: not a git repository; pass --repo with a clone of the run's target"
        ) from exc
    base = record.manifest.base_commit
    try:
        target.git.cat_file("-e", f"{base}^{{commit}}")
    except git.GitCommandError as exc:
        raise RecordUnusable(
            f"{where} has no commit {base[:12]}, the run's base: clone the target there "
            "(or fetch the commit) and try again"
        ) from exc
    return Path(target.working_tree_dir or where)


def _policy_here(record: Record, repo: Path) -> Policy:
    """The recorded policy; an interpreter path of another machine is found again here."""
    policy = record.policy.model_copy(deep=True)
    python = policy.gates.python
    if python and "/" in python and not Path(python).exists():
        policy.gates.python = resolve_policy(repo).policy.gates.python
    return policy


def replay(
    run_dir: Path,
    repo: Path | None = None,
    *,
    regate: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> ReplayReport:
    record = Record.load(run_dir)
    target = resolve_target(record, repo)
    manifest = record.manifest
    report = ReplayReport(
        run_id=manifest.run_id,
        record=str(run_dir.resolve()),
        repo=str(target),
        base_commit=manifest.base_commit,
        reproduced=False,
        recorded_requests=len(record.pairs),
        recorded_tree=next((e.get("tree") for e in record.of("run_finished")), None),
        recorded_seconds=record.seconds,
    )
    provider = ReplayProvider(record)
    clock = RecordedClock.from_events(manifest.run_id, manifest.identity, record.events)
    # The run's decisions, never asked again; a record from before approvals has none.
    approvals = RecordedApprover(record.of("approval")) if record.of("approval") else None
    scratch = Path(tempfile.mkdtemp(prefix="harness-replay-"))
    started = time.monotonic()
    loop = ReplayLoop(
        RunOptions(
            steps=record.steps,
            steps_text=record.steps_text,
            repo=target,
            policy=_policy_here(record, target),
            policy_text="",
            policy_path=None,
            provider=provider,
            runs_dir=scratch,
            blocks=manifest.blocks,
            progress=progress,
            clock=clock,
            approver=approvals,
        ),
        record,
        manifest.base_commit,
        regate,
    )
    report.branch = loop.branch
    try:
        loop.run()
    except ReplayDiverged as exc:
        report.difference, report.where, report.diff = str(exc), exc.where, exc.diff or None
    except ProviderError as exc:
        report.difference = f"the replay failed where the run did not: {exc}"
    report.seconds = round(time.monotonic() - started, 2)
    report.requests = provider.calls
    report.gates_reused, report.gates_run = loop.reused, loop.remeasured
    report.measures_reused, report.measures_run = loop.measures_reused, loop.measures_run
    report.verifiers_started = loop.verifiers_started
    replayed = read_events(loop.rec.dir, resolve=False)
    report.tree = next((e.get("tree") for e in replayed if e["kind"] == "run_finished"), None)
    if report.difference is None:
        found = first_difference(record, replayed)
        if found is None and provider.calls < len(record.pairs):
            found = (
                f"the run sent {len(record.pairs)} requests, the replay {provider.calls}",
                "end of run",
            )
        if found is None and approvals is not None and approvals.used < len(approvals.events):
            found = (
                f"the run recorded {len(approvals.events)} approvals, the replay used "
                f"{approvals.used}",
                "end of run",
            )
        if found is None and clock.used < len(record.of("clock")):
            found = (
                f"the run asked for {len(record.of('clock'))} times, the replay {clock.used}",
                "end of run",
            )
        if found is not None:
            report.difference, report.where = found
    report.reproduced = report.difference is None
    shutil.rmtree(scratch, ignore_errors=True)
    if report.reproduced:
        # The same commits as the run's: the branch adds nothing to look at.
        delete_branch(open_repo(target), loop.branch)
        report.branch = None
    return report
