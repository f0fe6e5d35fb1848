"""ruff: `ruff check --output-format json`, one Finding per diagnostic with ruff's own fix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import import_module
from typing import Any

from harness.detect import ruff_line_length, ruff_target_version
from harness.gates.common import (
    HARNESS_PYTHON,
    GateContext,
    SourceLines,
    config_path,
    dist_versions,
    error,
    findings_result,
    missing_input,
    proc_failure,
    rel_path,
    run_tool,
)
from harness.gates.models import Finding, GateResult, fingerprint

NAME = "ruff"


@lru_cache(maxsize=1)
def ruff_command() -> tuple[str, ...]:
    """ruff's binary, as `python -m ruff` finds it (ruff's own `find_ruff_bin`): that module
    only starts an interpreter to exec this same binary, 0.02 to 0.03 s of CPU a run."""
    try:
        # By name: the ruff package ships no type information.
        return (str(import_module("ruff").find_ruff_bin()),)
    except (ImportError, AttributeError, FileNotFoundError):
        # Left to `python -m ruff`, whose failure the gate reports as ruff missing.
        return (HARNESS_PYTHON, "-m", "ruff")


# What the policy carries to ruff where ruff has none of its own: (the policy's field, ruff's
# option, what reads the same setting from a ruff config file).
_CARRIED = (
    ("line_length", "--line-length", ruff_line_length),
    ("target_version", "--target-version", ruff_target_version),
)


def carried(ctx: GateContext) -> list[tuple[str, str]]:
    """(option, value) for each setting the policy has (the project's flake8 or black line
    length, its declared Python floor's target version, as detected) where ruff has none of its
    own to use instead: not in the config file the gate names, not in `args`."""
    if any(a == "--config" or a.startswith("--config=") for a in ctx.cfg.args):
        return []
    cfg_file = config_path(ctx)
    out: list[tuple[str, str]] = []
    for field, option, own in _CARRIED:
        value = getattr(ctx.cfg, field, None)
        if value is None or any(a.startswith(option) for a in ctx.cfg.args):
            continue
        if cfg_file is not None and own(cfg_file) is not None:
            continue
        out.append((option, str(value)))
    return out


def settings_argv(ctx: GateContext, given: Sequence[str] = ()) -> list[str]:
    """What the gate tells ruff besides the files' own settings: the config file the policy
    names and the settings it carries (`carried`); `ruff format` and the fixers take them too.
    Not what a command `given` names itself (ruff refuses an option twice), nor a carried
    setting where it names a config file, which may set its own."""
    if any(a.startswith("--config") for a in given):
        return []
    cfg_file = config_path(ctx)
    argv = ["--config", str(cfg_file)] if cfg_file is not None else []
    for option, value in carried(ctx):
        if not any(a.startswith(option) for a in given):
            argv += [option, value]
    return argv


def check_argv(ctx: GateContext) -> list[str]:
    """`ruff check` as this gate runs it, without the paths (callers add paths or stdin)."""
    argv = [*ruff_command(), "check", "--output-format", "json", "--no-cache"]
    argv += ["--exit-zero"]  # the findings decide the status; exit 2 still means ruff failed
    return [*argv, *settings_argv(ctx), *ctx.cfg.args]


def lint_command(ctx: GateContext) -> dict[str, Any]:
    """How the gate lints, so an offline provider can check candidate text the same way; with
    the project's Python floor, which decides whether ruff's pyupgrade fixes fit it."""
    lint: dict[str, Any] = {"argv": check_argv(ctx), "cwd": str(ctx.repo)}
    floor = getattr(ctx.cfg, "python_floor", None)
    if isinstance(floor, str):
        lint["python_floor"] = floor
    return lint


class RuffGate:
    name = NAME

    def version(self, python: str) -> str:
        return dist_versions(HARNESS_PYTHON, ["ruff"])

    def run(self, ctx: GateContext) -> GateResult:
        why = missing_input(ctx, NAME)
        if why is not None:
            return error(NAME, NAME, why)
        proc = run_tool([*check_argv(ctx), *(ctx.cfg.paths or ["."])], ctx)
        why = proc_failure(NAME, proc, ctx, "ruff")
        if why is None and proc.returncode != 0:
            why = f"ruff exited {proc.returncode}: {proc.tail}"
        if why is not None:
            return error(NAME, NAME, why, proc)
        try:
            findings = parse(proc.stdout, ctx)
        except ValueError as exc:
            return error(NAME, NAME, f"unparsable ruff output: {exc}", proc)
        return findings_result(NAME, proc, findings, "ruff finding(s)")


def parse(stdout: str, ctx: GateContext) -> list[Finding]:
    """ruff's JSON list -> Findings. Raises ValueError on anything that is not that list."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}): {stdout.strip()[:120]!r}") from exc
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of diagnostics")
    source = SourceLines(ctx.repo)
    out: list[Finding] = []
    for item in data:
        if not isinstance(item, dict) or "filename" not in item or "message" not in item:
            raise ValueError(f"unexpected diagnostic: {str(item)[:120]}")
        path = rel_path(ctx.repo, str(item["filename"]))
        # Syntax errors carry no rule code in older ruff (null) and "invalid-syntax" in newer.
        code = str(item.get("code") or "invalid-syntax")
        loc: dict[str, Any] = item.get("location") or {}
        line = loc.get("row") if isinstance(loc.get("row"), int) else None
        message = str(item["message"])
        fix = item.get("fix")
        # A whole-file diagnostic (EXE002, D100, CPY001) is an empty range at 1:1. Line 1 is not
        # its context: a line added at the top of the file must not make it a new finding.
        whole_file = loc == item.get("end_location") == {"row": 1, "column": 1}
        context = "" if whole_file else source.line(path, line)
        out.append(
            Finding(
                gate=NAME,
                code=code,
                path=path,
                line=line,
                message=message,
                severity=item.get("severity") if isinstance(item.get("severity"), str) else None,
                fingerprint=fingerprint(NAME, path, code, message, context),
                context=context or None,
                fix=fix if isinstance(fix, dict) else None,
            )
        )
    return out


GATE = RuffGate()
