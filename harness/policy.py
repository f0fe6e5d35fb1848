"""Policy files (`policies/*.toml`): validated with pydantic, unknown keys are errors."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from harness.detect import Detected, defaults, detect
from harness.errors import PolicyError
from harness.resources import data_dir


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateConfig(Strict):
    """One gate. Fields a gate does not use are ignored by it."""

    enabled: bool = Field(True, description="run this gate; a gate that is off judges nothing")
    paths: list[str] = Field(
        default_factory=list,
        description="paths handed to the tool, relative to the repository; [] = the tool's own "
        "default (the whole repository for ruff, bandit and mypy; pytest's testpaths)",
    )
    args: list[str] = Field(default_factory=list, description="extra arguments for the tool")
    config: str | None = Field(
        None,
        description="tool config file, relative to the repository; when set and missing, the "
        "gate is an error. Unset: the tool finds its own (pyproject.toml, setup.cfg, ...)",
    )
    timeout: float = Field(600.0, gt=0, description="seconds before the gate is an error")


class RuffGateConfig(GateConfig):
    """The ruff gate, and the ruff the builtin provider checks its fixes with."""

    line_length: int | None = Field(
        None,
        ge=1,
        description="`--line-length` for ruff: its check, the fixers and `ruff format` a "
        "block runs, and the builtin provider's check that no fix writes a line over it (E501, "
        "selected or not); not given where a config file the gate is told to read sets its own "
        "or `args` give one. Unset: the project's flake8 `max-line-length` (79, flake8's "
        "default, where a [flake8] section checks E501 and sets none), else black's "
        "`line-length`, detected where ruff's own config sets no line length; else ruff's own",
    )

    target_version: str | None = Field(
        None,
        pattern=r"^py3(?:[7-9]|1[0-4])$",
        description="`--target-version` for ruff (py37 ... py314): its check, the fixers and "
        "`ruff format` a block runs; not given where a config file the gate is told to read "
        "sets its own or `args` give one. Unset: py3X for the oldest Python 3.X the project "
        "declares (pyproject's `[project] requires-python`, else setup.cfg `[options] "
        "python_requires`, else setup.py's `setup(python_requires=...)` literal, read, never "
        "run), py37 at the lowest, detected where ruff's own config sets no `target-version`; "
        "else ruff's own",
    )
    python_floor: str | None = Field(
        None,
        pattern=r"^(?:2\.7|3\.(?:[0-9]|1[0-4]))$",
        description="the oldest Python (X.Y) the project supports. Below 3.7, ruff's lowest "
        "target, the builtin provider proposes no pyupgrade (UP) fix: ruff would write code "
        "for 3.7 (f-strings, `super()`). Unset: detected with `target_version`",
    )

    @model_serializer(mode="wrap")
    def _unset_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset, they are not written at all: a policy that sets none dumps (and so digests,
        # in the result cache and in recorded runs) exactly as before the settings existed.
        out: dict[str, Any] = handler(self)
        for key in ("line_length", "target_version", "python_floor"):
            if out.get(key, 0) is None:
                del out[key]
        return out


class PytestGateConfig(GateConfig):
    cov: list[str] = Field(
        default_factory=list, description="--cov targets (import names or paths); [] = no coverage"
    )
    fail_under: float | None = Field(
        None, description="coverage goal in percent; below it the gate fails"
    )


class SecretsGateConfig(GateConfig):
    tool: Literal["auto", "gitleaks", "detect-secrets"] = Field(
        "auto",
        description="the scanner; auto = gitleaks when on PATH, else detect-secrets, run offline "
        "(`-n`: a key it finds is never sent to its provider to be verified) with the extra key "
        "formats of harness/secret_formats.py, the ones the guard's secrets layer refuses",
    )


class GatesConfig(Strict):
    python: str | None = Field(
        None,
        description="interpreter of the target's environment, for the gates that run its code "
        "(pytest, mypy's import resolution); default: the repository's .venv or venv, else ours",
    )
    pythonpath: list[str] = Field(
        default_factory=list,
        description="directories, relative to the repository, put first on PYTHONPATH for the "
        "gates that import the target's code, so the worktree's copy is the one judged "
        '(a src layout has ["src"])',
    )
    ruff: RuffGateConfig = Field(
        default_factory=RuffGateConfig, description="`ruff check`, JSON output"
    )
    mypy: GateConfig = Field(default_factory=GateConfig, description="mypy, JSON output")
    pytest: PytestGateConfig = Field(
        default_factory=PytestGateConfig, description="pytest with coverage (pytest-cov)"
    )
    bandit: GateConfig = Field(default_factory=GateConfig, description="bandit, JSON output")
    imports: GateConfig = Field(
        default_factory=GateConfig, description="import-linter contracts (`lint-imports`)"
    )
    secrets: SecretsGateConfig = Field(
        default_factory=SecretsGateConfig, description="gitleaks or detect-secrets"
    )


class RegressionRules(Strict):
    coverage_tolerance: float = Field(0.0, ge=0, description="allowed coverage drop, points")
    rerun_failed: int = Field(2, ge=0, description="re-runs of a newly failing test")
    new_findings: bool = Field(True, description="new fingerprints are regressions")


class SuppressionRule(Strict):
    budget: int = Field(0, ge=0, description="new suppressions allowed per patch")
    require_justification: bool = Field(
        True, description="an allowed suppression must say why in its comment"
    )


class ReviewRule(Strict):
    mode: Literal["auto", "off", "flag", "refuse"] = Field(
        "auto",
        description=(
            "a second model's opinion on each patch the other layers accepted: 'flag' records "
            "a 'games a gate' answer, 'refuse' refuses the patch on it; 'auto' is 'flag' with "
            "the Anthropic provider and off otherwise (never with the builtin provider)"
        ),
    )


class MutationConfig(Strict):
    """The guard's mutation layer: new or changed tests must fail on mutants of the code they
    run (docs/guard.md, "Mutation layer")."""

    enabled: bool = Field(
        True, description="run the layer on patches that add or change tests (harness apply)"
    )
    max_mutants: int = Field(
        30, ge=1, description="mutants tried per patch, shared fairly among the changed tests"
    )
    budget_seconds: float = Field(
        180.0, gt=0, description="wall-clock seconds for the whole layer on one patch"
    )
    min_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="a mutant's test run is a hang (the mutant is killed) after 3x the "
        "unmutated run plus 1s, and never sooner than this",
    )
    source_patches: bool | Literal["auto"] = Field(
        "auto",
        description="judge source patches too: the tests that ran a function the patch changes "
        "must catch as many of its mutants after the patch as before (a pytest run per mutant, "
        "two where the old tests caught it). 'auto': on where a model wrote the patch (the "
        "Anthropic provider, the scripted one that replays a model's answers, and `harness "
        "apply`, which cannot tell who wrote it); off with the builtin provider, whose source "
        "patches are ruff's own fixes and cannot be written to game a test",
    )
    fail_closed: bool = Field(
        False,
        description="refuse the patch when a new or changed test could not be judged (the "
        "budget ran out first, coverage could not be measured, it does not pass unmutated); "
        "false: say so in the layer's record and accept",
    )

    def judges_source(self, provider: str | None) -> bool:
        """Whether source patches are judged, for patches from `provider` (None: a patch the
        harness did not ask for, as `harness apply` gets it)."""
        if self.source_patches != "auto":
            return self.source_patches
        return provider != "builtin"


class GuardConfig(Strict):
    max_changed_lines_per_file: int = Field(
        20, ge=1, description='the STEPS guardrail "<=20 lines/file"; a larger patch is refused'
    )
    max_files_per_patch: int | None = Field(None, ge=1, description="files one patch may touch")
    count_method: Literal["numstat", "max_side"] = Field(
        "numstat",
        description="numstat = added + removed lines as `git diff --numstat` counts them; "
        "max_side = the larger of the two",
    )
    lanes: list[str] = Field(default_factory=lambda: ["**"], description="globs a patch may edit")
    forbidden: list[str] = Field(default_factory=list, description="globs no patch may edit")
    protect_gate_config: bool = Field(
        True,
        description="refuse edits to what decides a gate's verdict: tool settings, conftest "
        "hooks, start-up and ignore files, shadowing stubs",
    )
    suppressions: SuppressionRule = Field(
        default_factory=SuppressionRule, description="new noqa / type: ignore / nosec comments"
    )
    protect_tests: bool = Field(
        True, description="refuse deleted, skipped or weakened tests (docs/guard.md)"
    )
    test_globs: list[str] = Field(
        default_factory=lambda: ["tests/**", "test_*.py", "**/test_*.py", "**/*_test.py"],
        description="which files are tests",
    )
    secrets: bool = Field(True, description="refuse patches that add a secret")
    review: ReviewRule = Field(
        default_factory=ReviewRule, description="the reviewer layer (needs a model)"
    )
    mutation: MutationConfig = Field(
        default_factory=MutationConfig,
        description="new or changed tests must kill mutants of the code they cover",
    )


class ApproveRule(Strict):
    """One rule of the approval chain, `[[approve.rules]]`: the rules are tried in order and the
    first that matches a patch decides it."""

    name: str = Field(
        "",
        description="shown after its number as who decided (`rule 2 (small test edits)`), in "
        "the record and the commit's Harness-Approved trailer",
    )
    paths: list[str] = Field(
        default_factory=list,
        description="globs (`*` within a directory, `**` across; a plain directory covers its "
        "files); [] = every patch",
    )
    match: Literal["any", "all"] = Field(
        "any",
        description="any: the patch touches at least one file `paths` names; all: every file it "
        "touches is one `paths` names",
    )
    max_changed_lines: int | None = Field(
        None,
        ge=0,
        description="matches only a patch that changes at most this many lines in all "
        "(added + removed, over its files); unset = any size",
    )
    decision: Literal["approve", "ask", "reject"] = Field(
        description="approve: lands; reject: refused, `reason` goes back to the model; ask: the "
        "person supervising decides (`--supervised`), unattended as `[approve] unattended` says"
    )
    reason: str = Field(
        "", description="for reject: why, as the model is told it; unset: the rule's name"
    )


class ApproveConfig(Strict):
    """Who approves each patch before it lands: asked after the guard and every landing check
    passed (the per-patch verification among them), with the patch written but not committed.
    The rules decide first, in order, the first match wins; a patch no rule matches, or one a
    rule says `ask` for, goes to the person supervising (`harness run --supervised`, who also
    decides after each block whether the run goes on) or, in an unattended run, is decided by
    `unattended`. Every decision is an `approval` event naming who or which rule made it;
    `harness replay` applies the recorded ones and never asks."""

    rules: list[ApproveRule] = Field(
        default_factory=list, description="the approval chain, in order: [[approve.rules]]"
    )
    unattended: Literal["approve", "reject"] = Field(
        "approve",
        description="without --supervised, what becomes of a patch no rule approves or rejects "
        "(no match, or `ask`): approve, or reject (only what a rule approves lands)",
    )


class BlockOverride(Strict):
    lanes: list[str] | None = Field(
        None,
        description="globs this block may edit; unset: from what the block does (a coverage "
        "block writes tests, a lint/typing/security block the code its gates check)",
    )
    forbidden: list[str] | None = Field(
        None, description="globs this block may not edit, added to [guard].forbidden"
    )
    max_changed_lines_per_file: int | None = Field(
        None,
        ge=1,
        description="may only tighten [guard].max_changed_lines_per_file: the smaller one holds",
    )
    max_iterations: int | None = Field(None, ge=1, description="[loop].max_iterations here")


class LoopConfig(Strict):
    max_iterations: int = Field(3, ge=1, description="PLAN/TODO/EXECUTE rounds per block")
    max_todo_items: int = Field(12, ge=1, description="TODO items per round")
    max_patch_attempts: int = Field(3, ge=1, description="tries per TODO item")
    max_invalid_outputs: int = Field(2, ge=0, description="re-asks on invalid model output")
    test_stability_runs: int = Field(3, ge=1, description="passes in a row for a new test")
    verify_patches: bool = Field(
        True,
        description="check each patch before it lands: the tests that run the lines it changes "
        "(coverage contexts recorded at the block's start) and, in a block judged by mypy, the "
        "mypy daemon; a patch that breaks what passed is refused alone, at landing",
    )
    max_read_files: int = Field(8, ge=0, description="files the model may ask to read, per item")
    max_read_bytes: int = Field(
        60_000, ge=1000, description="a larger file is shown as the regions around its findings"
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="cost cap for the whole run in USD (--max-cost); unset = none"
    )
    max_calls: int | None = Field(None, ge=1, description="model calls for the whole run")
    max_tokens: int | None = Field(
        None, ge=1, description="tokens (input, output, cache) for the whole run (--max-tokens)"
    )
    max_seconds: float | None = Field(
        None, gt=0, description="wall time of the whole run, resumed sessions added (--max-time)"
    )
    max_item_calls: int | None = Field(
        None,
        ge=1,
        description="model calls for one todo item, failed, retried and invalid ones included "
        "(--max-item-calls)",
    )
    block_max_cost_usd: float | None = Field(
        None, gt=0, description="cost cap per block in USD (--block-max-cost)"
    )
    block_max_tokens: int | None = Field(
        None, ge=1, description="tokens per block (--block-max-tokens)"
    )
    block_max_calls: int | None = Field(
        None, ge=1, description="model calls per block (--block-max-calls)"
    )
    block_max_seconds: float | None = Field(
        None, gt=0, description="wall time per block (--block-max-time)"
    )


class Price(Strict):
    input: float = Field(description="USD per million input tokens")
    output: float = Field(description="USD per million output tokens")
    cache_write: float | None = Field(None, description="USD per million cache-write tokens")
    cache_read: float | None = Field(None, description="USD per million cache-read tokens")


class Policy(Strict):
    """A policy file: what the gates check, what counts as a regression, what a patch may do."""

    name: str = Field("default", description="shown in the run record")
    detect: bool = Field(
        True,
        description="fill the gate settings this file leaves unset from the repository itself "
        "(layout, packages, interpreter, tool configs; see `harness init`)",
    )
    gates: GatesConfig = Field(default_factory=GatesConfig, description="the quality gates")
    regression: RegressionRules = Field(
        default_factory=RegressionRules, description="what counts as a regression"
    )
    guard: GuardConfig = Field(default_factory=GuardConfig, description="what a patch may do")
    approve: ApproveConfig = Field(
        default_factory=ApproveConfig,
        description="who approves each patch before it lands, and in which order",
    )
    blocks: dict[str, BlockOverride] = Field(
        default_factory=dict, description="per STEPS block number: [blocks.N]"
    )
    loop: LoopConfig = Field(default_factory=LoopConfig, description="limits of the agent loop")
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description='per model: [prices."claude-sonnet-5"]; a model without a price is refused',
    )

    def guard_for_block(
        self, block: int | None, default_lanes: list[str] | None = None
    ) -> GuardConfig:
        """The guard config with the block's overrides applied.

        A block narrows the guard, never loosens it: its size limit counts only when smaller
        than the global one (the STEPS script's "<=20 lines/file" holds in every block), and its
        forbidden globs add to the global ones. Its lanes replace the global lanes: a lane is
        what the block is about. Without a `[blocks.N] lanes`, `default_lanes` (what the block
        does: a coverage block writes tests) apply, unless `[guard] lanes` was narrowed."""
        override = self.blocks.get(str(block)) if block is not None else None
        guard = self.guard
        unset = override is None or override.lanes is None
        if default_lanes and unset and guard.lanes == ["**"]:
            guard = guard.model_copy(update={"lanes": list(default_lanes)})
        if override is None:
            return guard
        update: dict[str, object] = {}
        if override.lanes is not None:
            update["lanes"] = override.lanes
        if override.forbidden is not None:
            extra = [g for g in override.forbidden if g not in self.guard.forbidden]
            update["forbidden"] = [*self.guard.forbidden, *extra]
        if override.max_changed_lines_per_file is not None:
            update["max_changed_lines_per_file"] = min(
                self.guard.max_changed_lines_per_file, override.max_changed_lines_per_file
            )
        return guard.model_copy(update=update)


def _format_error(err: ValidationError, source: str) -> str:
    """Every problem in one line, so a policy with several mistakes is fixed in one pass."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(
            f"unknown key '{loc}'" if e["type"] == "extra_forbidden" else f"{loc}: {e['msg']}"
        )
    return f"{source}: " + "; ".join(parts)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_format_error(exc, source)) from exc


def default_policy_path() -> Path:
    return data_dir("policies") / "default.toml"


POLICY_FILE = "harness.toml"
# The starter script `harness init` writes beside the policy.
STEPS_FILE = "STEPS.md"


@dataclass
class ResolvedPolicy:
    """The policy a command runs with, and where each part of it came from."""

    policy: Policy
    text: str  # the policy file as written (hashed into the run manifest)
    path: Path | None  # None: the shipped default
    detected: Detected | None  # None: `detect = false`
    filled: dict[str, Any]  # the values detection supplied, as TOML-shaped data

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "the shipped default policy"


def _load_raw(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc


def _added(full: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in full.items():
        if isinstance(value, dict):
            sub = _added(value, base.get(key) or {})
            if sub:
                out[key] = sub
        elif key not in base:
            out[key] = value
    return out


def resolve_policy(repo: Path, path: Path | None = None) -> ResolvedPolicy:
    """The policy for `repo`: `path`, else `harness.toml` at the repository root, else the shipped
    default; then whatever it leaves unset is detected from the repository (zero config)."""
    if path is None and (Path(repo) / POLICY_FILE).is_file():
        path = Path(repo) / POLICY_FILE
    file = path or default_policy_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {file}: {exc.strerror or exc}") from exc
    source = str(file)
    raw = _load_raw(text, source)
    detected: Detected | None = None
    filled: dict[str, Any] = {}
    if raw.get("detect", True) is not False:
        detected = detect(Path(repo))
        full = defaults(detected, raw)
        filled = _added(full, raw)
        raw = full
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_format_error(exc, source)) from exc
    py = policy.gates.python
    if py and "/" in py and not Path(py).is_absolute():
        # `.venv/bin/python` is the user's checkout's: a run's worktree has no venv of its own.
        policy.gates.python = str((Path(repo) / py).absolute())
    return ResolvedPolicy(policy=policy, text=text, path=path, detected=detected, filled=filled)


def load_policy(path: str | Path | None = None) -> Policy:
    p = Path(path) if path else default_policy_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {p}: {exc.strerror or exc}") from exc
    return parse_policy(text, str(p))
