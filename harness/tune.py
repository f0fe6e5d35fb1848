"""`harness tune`: how would the guard have judged under another policy?

Two kinds of input, one question. A labelled corpus (`*.diff` files and a label file saying
which are good and which bad) is judged by the guard under each policy variant against the
repository's HEAD. Recorded runs are walked event by event: the tree each proposal was judged
on is rebuilt in a scratch worktree from the run's base commit and its recorded landings and
reverts (checked against the tree hash of every recorded gate run), and each proposal is judged
again under each variant. Where a variant's verdict differs from the recorded one, the model
would have been told something else and what it did next is no longer evidence: everything
after that point is counted apart, as not comparable.

Each variant's report holds the gate metrics at every block's end: the recorded ones while the
variant's verdicts equal the record's, else measured on the tree the recorded landings it keeps
make (counterfactual: the model would have proposed other things). A refused proposal whose
gates improve is "blocked-good" only when the default guard's gaming rules (a suppression, a
weakened or deleted test, hiding code from a gate, a gate's configuration changed, a secret)
find nothing in it: a number improved by not measuring is "blocked-gaming", never good.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, Field, ValidationError

from harness.errors import GitError, PolicyError, RecordUnusable, UsageError
from harness.gates.base import GATES
from harness.gates.compare import blocking, compare
from harness.gates.models import GateResult, GateRun
from harness.gates.runner import run_gates
from harness.gates.summary import seed_summary
from harness.gitutil import open_repo, pinned_git_env, tree_hash
from harness.guard import Verdict, check_patch
from harness.policy import GuardConfig, Policy
from harness.record import Manifest, read_events
from harness.steps import StepsScript, apply_to_policy, mapping

Label = Literal["good", "bad"]
LABEL_FILES = ("labels.toml", "labels.json")
# A refused patch that cannot be placed on its tree cannot be tried on it either.
_UNAPPLIABLE = {"parse", "locate"}
# The guard's rules that say a patch games a gate (or adds a secret) rather than that it is too
# big or in the wrong place: a patch they refuse improves a number by not measuring it.
GAMING_RULES = ("suppression", "tests", "hiding", "gate_config", "secrets")

Say = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


# ----------------------------------------------------------------------------- variants
class Variant(BaseModel):
    """One policy to judge with: the base policy with `settings` (dotted keys) applied."""

    name: str = Field(description="'base', or the settings as KEY=VALUE, space-separated")
    settings: dict[str, Any] = Field(default_factory=dict)


def _value(raw: str) -> Any:
    """A --set value is read as a TOML value (10, 0.5, true, ["a", "b"]), else as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _split(text: str, option: str) -> tuple[str, str]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} {text!r}: expected KEY=VALUE (a dotted policy key)")
    return key.strip(), raw.strip()


def variants(sets: Sequence[str], grids: Sequence[str]) -> list[Variant]:
    """The base policy, then the --set variant (all settings together), or the cross product
    of the --grid values (with the --set settings in each)."""
    fixed = dict(_split(s, "--set") for s in sets)
    axes: list[list[tuple[str, str]]] = []
    for g in grids:
        key, raw = _split(g, "--grid")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            raise UsageError(f"--grid {g!r}: expected KEY=V1,V2,...")
        axes.append([(key, v) for v in values])
    out = [Variant(name="base")]
    for combo in itertools.product(*axes) if axes else ([()] if fixed else []):
        pairs = {**fixed, **dict(combo)}
        out.append(
            Variant(
                name=" ".join(f"{k}={v}" for k, v in pairs.items()),
                settings={k: _value(v) for k, v in pairs.items()},
            )
        )
    return out


def apply_variant(policy: Policy, variant: Variant) -> Policy:
    """`policy` with the variant's settings, validated as a policy file is: a key that is not
    in the policy model, or a value it refuses, is a PolicyError naming it."""
    data = policy.model_dump(mode="python")
    for key, value in variant.settings.items():
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {}) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise PolicyError(f"--set {key}: unknown policy key ({where} is not a table)")
            node = nxt
        node[parts[-1]] = value
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            problems.append(
                f"unknown policy key '{loc}'"
                if e["type"] == "extra_forbidden"
                else f"{loc}: {e['msg']}"
            )
        raise PolicyError(f"variant {variant.name}: " + "; ".join(problems)) from None


# ----------------------------------------------------------------------------- git
@contextmanager
def scratch(repo: git.Repo, commit: str) -> Iterator[Path]:
    """A detached worktree at `commit` in a temporary directory, removed on exit: the user's
    checkout, index and branches are never touched."""
    tmp = Path(tempfile.mkdtemp(prefix="harness-tune-"))
    path = tmp / "work"
    try:
        repo.git.worktree("add", "--detach", str(path), commit)
    except git.GitCommandError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        why = exc.stderr.strip()
        raise GitError(f"cannot create a scratch worktree at {commit[:10]}: {why}") from None
    try:
        yield path
    finally:
        with suppress(git.GitCommandError):
            repo.git.worktree("remove", "--force", str(path))
        shutil.rmtree(tmp, ignore_errors=True)
        with suppress(git.GitCommandError):
            repo.git.worktree("prune")


def _write(root: Path, contents: dict[str, bytes | None]) -> None:
    """Write a verdict's files, refused or not: the evaluation tries what the guard refused."""
    for rel, data in contents.items():
        full = root / rel
        if data is None:
            full.unlink(missing_ok=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(data)


def _commit(wt: git.Repo, message: str) -> str:
    wt.git.add("-A")
    wt.git.commit("--no-verify", "--allow-empty", "-q", "-m", message, env=pinned_git_env())
    return str(wt.head.commit.hexsha)


def _rules(verdict_violations: Sequence[Any]) -> list[str]:
    """'layer/rule' of each violation, once each, in order."""
    seen: dict[str, None] = {}
    for v in verdict_violations:
        layer = v["layer"] if isinstance(v, dict) else v.layer
        rule = v["rule"] if isinstance(v, dict) else v.rule
        seen[f"{layer or 'static'}/{rule}"] = None
    return list(seen)


# ----------------------------------------------------------------------------- corpus
class Labelled(BaseModel):
    path: str = Field(description="the patch file, relative to the corpus directory")
    label: Label
    text: str = Field(exclude=True)


def load_corpus(corpus: Path, labels: Path | None = None) -> list[Labelled]:
    """Every `*.diff` under `corpus` (recursively) with its label. The label file
    (`labels.toml`: a `[labels]` table, or `labels.json`: a "labels" object) maps each
    patch's path relative to the corpus to "good" or "bad"; a patch without a label and a
    label without a patch are errors."""
    if not corpus.is_dir():
        raise UsageError(f"--corpus {corpus}: not a directory")
    if labels is None:
        found = [corpus / n for n in LABEL_FILES if (corpus / n).is_file()]
        if not found:
            raise UsageError(f"--corpus {corpus}: no {' or '.join(LABEL_FILES)} (see --labels)")
        labels = found[0]
    try:
        text = labels.read_text(encoding="utf-8")
        raw = json.loads(text) if labels.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read labels {labels}: {exc}") from exc
    table = raw.get("labels") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise UsageError(f'{labels}: expected a \'labels\' table of PATCH = "good" | "bad"')
    patches = {p.relative_to(corpus).as_posix(): p for p in sorted(corpus.rglob("*.diff"))}
    bad_values = [f"{k} = {v!r}" for k, v in table.items() if v not in ("good", "bad")]
    unlabelled = sorted(set(patches) - set(table))
    missing = sorted(set(table) - set(patches))
    for problem, names in (
        ("labels must be 'good' or 'bad'", bad_values),
        ("patches without a label", unlabelled),
        ("labels without a patch", missing),
    ):
        if names:
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            raise UsageError(f"{labels}: {problem}: {', '.join(names[:3])}{more}")
    if not patches:
        raise UsageError(f"--corpus {corpus}: no *.diff files")
    return [
        Labelled(path=rel, label=table[rel], text=p.read_text(encoding="utf-8", errors="replace"))
        for rel, p in patches.items()
    ]


class PatchVerdict(BaseModel):
    path: str
    label: Label
    accepted: bool
    rules: list[str] = Field(default_factory=list, description="layer/rule of each refusal")


class CorpusTally(BaseModel):
    """One variant on a labelled corpus."""

    variant: Variant
    patches: int = 0
    accepted: int = 0
    refused: int = 0
    refused_by: dict[str, int] = Field(
        default_factory=dict,
        description="'layer/rule': patches it refused (one patch may count under several rules)",
    )
    blocked_bad: int = Field(0, description="bad patches refused")
    blocked_good: int = Field(0, description="good patches refused")
    missed: int = Field(0, description="bad patches accepted")
    good_accepted: int = 0
    good: int = 0
    bad: int = 0
    verdicts: list[PatchVerdict] = Field(default_factory=list)

    def add(self, patch: Labelled, accepted: bool, rules: list[str]) -> None:
        self.patches += 1
        self.verdicts.append(
            PatchVerdict(path=patch.path, label=patch.label, accepted=accepted, rules=rules)
        )
        good = patch.label == "good"
        self.good += good
        self.bad += not good
        if accepted:
            self.accepted += 1
            self.good_accepted += good
            self.missed += not good
            return
        self.refused += 1
        self.blocked_good += good
        self.blocked_bad += not good
        for r in rules:
            self.refused_by[r] = self.refused_by.get(r, 0) + 1


def tune_corpus(
    corpus: list[Labelled],
    repo: Path,
    policy: Policy,
    variant_list: list[Variant],
    *,
    test_layers: bool = False,
    progress: Say = _quiet,
) -> list[CorpusTally]:
    """Judge every patch of `corpus` under each variant, on `repo`'s HEAD (in a scratch
    worktree, so the checkout's uncommitted edits do not count)."""
    policies = [apply_variant(policy, v) for v in variant_list]  # every bad key before work
    repository = open_repo(repo)
    try:
        commit = str(repository.head.commit.hexsha)
    except ValueError as exc:
        raise GitError(f"repository has no commits: {repo}") from exc
    tallies = [CorpusTally(variant=v) for v in variant_list]
    baseline: GateResult | None = None
    with scratch(repository, commit) as wt:
        for n, (variant, pol, tally) in enumerate(
            zip(variant_list, policies, tallies, strict=True), 1
        ):
            progress(f"variant {n}/{len(variant_list)}: {variant.name}")
            for patch in corpus:
                verdict = check_patch(patch.text, wt, pol.guard)
                if verdict.accepted and test_layers:
                    if baseline is None:
                        baseline = run_gates(wt, pol, only=["pytest"]).results.get("pytest")
                    verdict = _test_layers(repository, commit, pol, verdict, baseline)
                tally.add(patch, verdict.accepted, _rules(verdict.violations))
    return tallies


def _test_layers(
    repository: git.Repo, commit: str, policy: Policy, verdict: Verdict, baseline: Any
) -> Verdict:
    """The behaviour and mutation layers on an accepted patch, in its own scratch worktree:
    they run the target's tests, which is why they run only when asked for."""
    from harness.guard.behaviour import check_behaviour
    from harness.guard.mutation import check_patch_tests

    paths = [f.path for f in verdict.files]
    with scratch(repository, commit) as wt:
        _write(wt, verdict.contents)
        behaviour = check_behaviour(wt, policy, paths, baseline, policy.guard)
        verdict.violations += behaviour.violations
        if behaviour.ok and policy.guard.mutation.enabled:
            mutation = check_patch_tests(wt, policy, verdict.contents, guard=policy.guard)
            verdict.violations += mutation.violations
    verdict.accepted = not verdict.violations
    return verdict


# ----------------------------------------------------------------------------- recorded runs
Outcome = Literal["applied", "reverted", "refused", "refused_at_landing", "refused_again"]
Judged = Literal["good", "bad", "neutral", "unusable"]
# Per proposal seq: a variant's verdict (accepted, rules, what the gates said of a refusal).
_Pending = dict[int, tuple[bool, list[str], Judged | None]]


class Tally(BaseModel):
    """Proposals under one variant; `comparable` and `not_comparable` are never added up."""

    proposals: int = 0
    accepted: int = Field(0, description="accepted by the guard under this variant")
    refused: int = 0
    refused_by: dict[str, int] = Field(default_factory=dict, description="'layer/rule': count")
    reverted: int = Field(0, description="accepted here, landed and reverted in the record")
    refused_at_landing: int = Field(
        0, description="accepted here, refused at landing in the record (tests, checks, review)"
    )
    changed: int = Field(0, description="verdicts that differ from the recorded one")
    newly_accepted: int = Field(0, description="refused in the record, accepted here")
    blocked_bad: int = Field(
        0, description="refused here; the record's gates reverted it, or its gates regress"
    )
    blocked_good: int = Field(
        0,
        description="refused here; its gates improve without a regression (evaluated), and the "
        "default guard's gaming rules find nothing in it",
    )
    blocked_gaming: int = Field(
        0,
        description="refused here; its gates improve, but only by gaming them: the default "
        "guard's gaming rules refuse it (a noqa, a weakened test): not good (evaluated)",
    )
    blocked_neutral: int = Field(
        0, description="refused here; its gates neither regress nor improve (evaluated)"
    )
    blocked_unknown: int = Field(
        0,
        description="refused here and not judged by gates (no --evaluate-rejected, or it "
        "cannot be applied)",
    )

    def count_refusal(self, rules: list[str]) -> None:
        self.refused += 1
        for r in rules:
            self.refused_by[r] = self.refused_by.get(r, 0) + 1


class BlockMetrics(BaseModel):
    """A block's gate metrics at its end, under one variant."""

    block: int
    source: Literal["recorded", "rebuilt", "unusable"] = Field(
        description="recorded: the run's own (this variant's verdicts equal the record's up to "
        "the block's end); rebuilt: measured on the tree of the recorded landings this variant "
        "keeps (counterfactual, not comparable); unusable: that tree cannot be built"
    )
    gates: dict[str, Any] = Field(
        default_factory=dict,
        description="gate -> {status, findings} (findings: a count, pytest's outcome counts, or "
        "coverage's percent), for the block's gates",
    )
    why: str | None = None


class RunTally(BaseModel):
    run_id: str
    variant: Variant
    diverged_at: str | None = Field(
        None,
        description="the first proposal whose verdict differs from the record: from "
        "there on the recorded path is no longer valid",
    )
    comparable: Tally = Field(default_factory=Tally)
    not_comparable: Tally = Field(default_factory=Tally)
    blocks: list[BlockMetrics] = Field(
        default_factory=list, description="the gate metrics at each block's end"
    )


class _Proposal(BaseModel):
    seq: int
    block: int
    item: str
    patch: str
    accepted: bool
    rules: list[str]
    parent: str
    outcome: Outcome = "refused"
    sha: str | None = None
    diff: str = ""
    gaming: list[str] = Field(
        default_factory=list, description="the default guard's gaming rules that refuse it"
    )


class _Evaluator:
    """Gates on a refused patch: the block's gates at its parent and with the patch written,
    each in a scratch worktree; results are kept by (parent, patch)."""

    def __init__(self, repository: git.Repo, policy: Policy) -> None:
        self.repository = repository
        self.policy = policy
        self._before: dict[tuple[str, tuple[str, ...]], GateRun] = {}
        self._seen: dict[tuple[str, str], Judged] = {}

    def judge(self, parent: str, gates: list[str], verdict: Verdict) -> Judged:
        if not gates or not verdict.contents or _UNAPPLIABLE & {v.rule for v in verdict.violations}:
            return "unusable"
        key = (parent, verdict.diff)
        if key not in self._seen:
            self._seen[key] = self._judge(parent, gates, verdict)
        return self._seen[key]

    def _judge(self, parent: str, gates: list[str], verdict: Verdict) -> Judged:
        only = (parent, tuple(gates))
        if only not in self._before:
            with scratch(self.repository, parent) as wt:
                self._before[only] = run_gates(wt, self.policy, only=gates)
        before = self._before[only]
        with scratch(self.repository, parent) as wt:
            _write(wt, verdict.contents)
            after = run_gates(wt, self.policy, only=gates)
        if blocking(compare(before, after, self.policy.regression)):
            return "bad"
        return "good" if _improved(before, after) else "neutral"


def _score(r: GateResult) -> tuple[int, int]:
    """What a gate counts against the code: findings and failing tests, uncovered lines."""
    failing = sum(1 for t in r.tests if t.outcome in ("failed", "error"))
    return len(r.findings) + len(r.contracts) + failing, r.coverage.uncovered if r.coverage else 0


def _improved(before: GateRun, after: GateRun) -> bool:
    for name, b in before.results.items():
        a = after.results.get(name)
        if a is None:
            continue
        if b.status != a.status and a.status.value == "passed":
            return True
        if any(x < y for x, y in zip(_score(a), _score(b), strict=True)):
            return True
    return False


def load_run(run_dir: Path) -> tuple[Manifest, Policy, list[dict[str, Any]]]:
    try:
        manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_bytes())
        policy = Policy.model_validate_json((run_dir / "policy.json").read_bytes())
        steps = StepsScript.model_validate_json((run_dir / "steps.json").read_bytes())
        events = read_events(run_dir, resolve=False)
        # policy.json is the policy before the script: the loop judged and gated under both.
        policy = apply_to_policy(mapping.as_recorded(steps, events), policy)
    except (OSError, ValueError) as exc:
        raise RecordUnusable(f"{run_dir}: not a usable run record: {exc}") from exc
    if not any(e["kind"] == "run_finished" for e in events):
        raise RecordUnusable(f"{run_dir}: the run did not finish (killed?): nothing to tune on")
    return manifest, policy, events


def tune_runs(
    run_dirs: Sequence[Path],
    variant_list: list[Variant],
    *,
    repo: Path | None = None,
    evaluate_rejected: bool = False,
    progress: Say = _quiet,
) -> list[RunTally]:
    """Each recorded proposal of each run, judged again under every variant."""
    loaded = [(d, *load_run(d)) for d in run_dirs]
    for _d, _m, policy, _e in loaded:
        for v in variant_list:
            apply_variant(policy, v)  # every bad key before any work
    out: list[RunTally] = []
    for run_dir, manifest, policy, events in loaded:
        progress(f"run {manifest.run_id}: {len(variant_list)} variant(s)")
        out += _tune_run(
            run_dir, manifest, policy, events, variant_list, repo, evaluate_rejected, progress
        )
    return out


def _tune_run(
    run_dir: Path,
    manifest: Manifest,
    policy: Policy,
    events: list[dict[str, Any]],
    variant_list: list[Variant],
    repo: Path | None,
    evaluate_rejected: bool,
    progress: Say,
) -> list[RunTally]:
    where = Path(repo or manifest.repo)
    try:
        repository = open_repo(where)
        repository.commit(manifest.base_commit)
    except (GitError, ValueError, git.BadName):
        raise RecordUnusable(
            f"{run_dir}: {where} does not hold the run's base commit "
            f"{manifest.base_commit[:10]} (pass --repo a clone of the target)"
        ) from None
    policies = [apply_variant(policy, v) for v in variant_list]
    tallies = [RunTally(run_id=manifest.run_id, variant=v) for v in variant_list]
    pending: list[_Pending] = [{} for _ in variant_list]
    evaluator = _Evaluator(repository, policy) if evaluate_rejected else None
    proposals: list[_Proposal] = []
    landed: dict[str, str] = {}  # recorded sha -> the rebuilt commit
    lanes: dict[int, list[str]] = {}
    gates: dict[int, list[str]] = {}
    reverts: list[list[str]] = []
    steps: list[_Step] = []  # landings, reverts and block ends, in order
    with scratch(repository, manifest.base_commit) as wt_path:
        wt = open_repo(wt_path)

        def flush_reverts() -> None:
            for group in reverts:
                _revert(wt, group, landed)
                steps.append(("revert", list(group)))
            reverts.clear()

        for e in events:
            kind = e["kind"]
            if kind != "reverted":
                flush_reverts()
            if kind == "block_started":
                lanes[e["block"]], gates[e["block"]] = e.get("lanes") or [], e.get("gates") or []
            elif kind == "verdict":
                text = _proposal_text(run_dir, e)
                parent = str(wt.head.commit.hexsha)
                p = _Proposal(
                    seq=e["seq"], block=e["block"], item=str(e["item"]), patch=e.get("patch", ""),
                    accepted=bool(e["accepted"]), rules=_rules(e.get("violations") or []),
                    parent=parent, outcome="refused_at_landing" if e["accepted"] else "refused",
                )  # fmt: skip
                proposals.append(p)
                progress(f"  {manifest.run_id} block {p.block} item {p.item} (event #{p.seq})")
                if evaluator is not None:
                    p.gaming = _gaming(text, wt_path, policy, p.block, lanes.get(p.block))
                for pol, seen in zip(policies, pending, strict=True):
                    guard = pol.guard_for_block(p.block, default_lanes=lanes.get(p.block))
                    verdict = check_patch(text, wt_path, guard)
                    judged: Judged | None = None
                    if not verdict.accepted and evaluator is not None:
                        judged = evaluator.judge(p.parent, gates.get(p.block, []), verdict)
                    seen[p.seq] = (verdict.accepted, _rules(verdict.violations), judged)
            elif kind == "refused_again" and proposals:
                proposals[-1].outcome = "refused_again"
            elif kind == "applied" and proposals:
                p = proposals[-1]
                diff = _recorded_diff(e, events)
                try:
                    _apply(wt, diff)
                except git.GitCommandError as exc:
                    raise RecordUnusable(
                        f"{run_dir}: the landed patch of event #{p.seq} does not apply to the "
                        f"rebuilt tree: {exc.stderr.strip()}"
                    ) from None
                landed[e["sha"]] = _commit(wt, f"tune: {p.item}")
                p.outcome, p.sha, p.diff = "applied", e["sha"], diff
                steps.append(("land", p))
            elif kind == "block_outcome":
                steps.append(("end", e))
            elif kind == "reverted":
                if e.get("how") == "with_culprit" and reverts:
                    reverts[-1].append(e["sha"])
                else:
                    reverts.append([e["sha"]])
                for p in proposals:
                    if p.sha == e["sha"]:
                        p.outcome = "reverted"
            elif (
                kind == "gates"
                and not str(e.get("label", "")).startswith("bisect")
                and tree_hash(wt) != e["tree"]
            ):
                raise RecordUnusable(
                    f"{run_dir}: the tree rebuilt from the record differs from the one "
                    f"recorded at event #{e['seq']} ({e.get('label')})"
                )
    # The recorded outcomes are known only now (a landing is reverted later): settle them.
    for tally, seen, pol in zip(tallies, pending, policies, strict=True):
        _settle(tally, proposals, seen)
        progress(f"  {manifest.run_id} [{tally.variant.name}]: gate metrics per block")
        tally.blocks = _block_metrics(
            repository, manifest.base_commit, pol, proposals, seen, steps, gates
        )
    return tallies


# ("land", the proposal), ("revert", recorded shas), ("end", the block_outcome event)
_Step = tuple[str, Any]


def _revert(wt: git.Repo, group: list[str], landed: dict[str, str]) -> None:
    """As the loop did: one revert commit per culprit, with what was built on it."""
    for sha in sorted(group, key=lambda s: -list(landed).index(s)):
        wt.git.revert("--no-commit", landed[sha])
    _commit(wt, "tune: revert " + ", ".join(s[:10] for s in group))


def _gaming(
    text: str, tree: Path, policy: Policy, block: int, lanes: list[str] | None
) -> list[str]:
    """The gaming rules (GAMING_RULES) of the default guard that refuse the proposal. The
    repository's facts stay the run's (which files are tests, lanes, forbidden paths); every
    protection is as shipped, whatever the run or a variant turned off."""
    guard = policy.guard_for_block(block, default_lanes=lanes)
    shipped = GuardConfig()
    protections = ("protect_gate_config", "suppressions", "protect_tests", "secrets")
    guard = guard.model_copy(update={k: getattr(shipped, k) for k in protections})
    verdict = check_patch(text, tree, guard)
    return [r for r in _rules(verdict.violations) if _is_gaming(r)]


def _is_gaming(rule: str) -> bool:
    name = rule.split("/", 1)[-1]
    return any(name == g or name.startswith(f"{g}.") for g in GAMING_RULES)


def _metrics(summary: dict[str, Any], gates: list[str]) -> dict[str, Any]:
    """{status, findings} of the block's gates (and coverage, with pytest) in a seed summary."""
    wanted = [*gates, *(["coverage"] if "pytest" in gates else [])]
    found = summary.get("gates") or {}
    return {
        g: {"status": found[g].get("status"), "findings": found[g].get("findings")}
        for g in wanted
        if g in found
    }


def _block_metrics(
    repository: git.Repo,
    base: str,
    policy: Policy,
    proposals: list[_Proposal],
    seen: _Pending,
    steps: list[_Step],
    gates: dict[int, list[str]],
) -> list[BlockMetrics]:
    """The gate metrics at each block's end under one variant: the recorded ones up to its
    first changed verdict; after it, measured on the tree of the recorded landings it keeps
    (and their recorded reverts)."""
    changed = [p.seq for p in proposals if seen[p.seq][0] != p.accepted]
    first = min(changed) if changed else None
    ends = [step[1] for step in steps if step[0] == "end"]
    if first is None or all(e["seq"] < first for e in ends):
        return [_recorded_metrics(e, gates) for e in ends]
    out: list[BlockMetrics] = []
    with scratch(repository, base) as wt_path:
        wt = open_repo(wt_path)
        landed: dict[str, str] = {}
        broken: str | None = None
        fuzzy: list[str] = []  # landings whose context the refused ones had changed
        for kind, what in steps:
            if kind == "land" and broken is None and seen[what.seq][0]:
                try:
                    _apply(wt, what.diff)
                except git.GitCommandError:
                    try:
                        _apply(wt, what.diff, context=1)
                        fuzzy.append(f"#{what.seq}")
                    except git.GitCommandError:
                        broken = (
                            f"the landing of event #{what.seq} does not apply without the "
                            "ones this variant refuses"
                        )
                        continue
                landed[what.sha] = _commit(wt, f"tune: {what.item}")
            elif kind == "revert" and broken is None:
                group = [sha for sha in what if sha in landed]
                if group:
                    try:
                        _revert(wt, group, landed)
                    except git.GitCommandError:
                        broken = f"the revert of {group[0][:10]} does not apply here"
            elif kind == "end":
                number = int(what.get("number", 0))
                if what["seq"] < first:
                    out.append(_recorded_metrics(what, gates))
                elif broken is not None:
                    out.append(BlockMetrics(block=number, source="unusable", why=broken))
                else:
                    only = [g for g in gates.get(number, []) if g in GATES]
                    empty = GateRun(tree="", results={})
                    run = run_gates(wt_path, policy, only=only) if only else empty
                    why = f"applied with one line of context: {', '.join(fuzzy)}" if fuzzy else None
                    out.append(
                        BlockMetrics(
                            block=number,
                            source="rebuilt",
                            gates=_metrics(seed_summary(run), only),
                            why=why,
                        )
                    )
    return out


def _recorded_metrics(end: dict[str, Any], gates: dict[int, list[str]]) -> BlockMetrics:
    number = int(end.get("number", 0))
    return BlockMetrics(
        block=number,
        source="recorded",
        gates=_metrics(end.get("after") or {}, gates.get(number, [])),
    )


def _apply(wt: git.Repo, diff: str, context: int | None = None) -> None:
    """`git apply` the recorded canonical diff (from a file outside the worktree: nothing of
    the tool's may end up in the tree whose hash is checked); `context`: how many lines of each
    hunk's context must match (all, by default)."""
    with tempfile.TemporaryDirectory(prefix="harness-tune-diff-") as tmp:
        patch = Path(tmp) / "landed.diff"
        patch.write_text(diff, encoding="utf-8")
        fuzz = [f"-C{context}"] if context is not None else []
        wt.git.apply("--whitespace=nowarn", *fuzz, str(patch))


def _proposal_text(run_dir: Path, event: dict[str, Any]) -> str:
    """The proposal as the model wrote it (the guard repairs it again), else the verdict's
    canonical diff."""
    rel = event.get("patch")
    if rel and (run_dir / rel).is_file():
        return str((run_dir / rel).read_text(encoding="utf-8"))
    return str(event.get("diff") or "")


def _recorded_diff(applied: dict[str, Any], events: list[dict[str, Any]]) -> str:
    for e in reversed(events[: events.index(applied)]):
        if e["kind"] == "verdict" and e.get("accepted"):
            return str(e.get("diff") or "")
    return ""


def _settle(tally: RunTally, proposals: list[_Proposal], seen: _Pending) -> None:
    for p in proposals:
        accepted, rules, judged = seen[p.seq]
        side = tally.comparable if tally.diverged_at is None else tally.not_comparable
        side.proposals += 1
        if accepted != p.accepted:
            side.changed += 1
            if tally.diverged_at is None:
                tally.diverged_at = f"block {p.block} item {p.item} (event #{p.seq}, {p.patch})"
        if accepted:
            side.accepted += 1
            side.newly_accepted += not p.accepted
            if p.accepted:
                side.reverted += p.outcome == "reverted"
                side.refused_at_landing += p.outcome in ("refused_at_landing", "refused_again")
            continue
        side.count_refusal(rules)
        if p.outcome == "reverted":
            side.blocked_bad += 1  # the recorded gates showed it regress
        elif judged == "bad":
            side.blocked_bad += 1
        elif judged == "good" and p.gaming:
            side.blocked_gaming += 1  # better numbers by not measuring: not good
        elif judged == "good":
            side.blocked_good += 1
        elif judged == "neutral":
            side.blocked_neutral += 1
        else:
            side.blocked_unknown += 1


def refused_rules(tallies: Sequence[CorpusTally | Tally]) -> list[str]:
    """Every 'layer/rule' any variant refused by, most used first."""
    total: Counter[str] = Counter()
    for t in tallies:
        total.update(t.refused_by)
    return [r for r, _ in total.most_common()]


# ----------------------------------------------------------------------------- plot
def plot(
    points: Sequence[tuple[str, float, float]], path: Path, *, xlabel: str, ylabel: str
) -> None:
    """Acceptance against bad caught, one point per variant (matplotlib, the 'plot' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib: pip install 'harness[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([x for _n, x, _y in points], [y for _n, _x, y in points])
    for name, x, y in points:
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
