"""mypy: `--output json` when the installed mypy has it, else its plain text format.

Exit codes: 0 clean, 1 type errors, 2 mypy could not check (crash, usage, blocking error).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from harness.gates.cache import mypy_dir
from harness.gates.common import (
    HARNESS_PYTHON,
    GateContext,
    SourceLines,
    config_path,
    dist_versions,
    error,
    findings_result,
    missing_input,
    one_line,
    proc_failure,
    rel_path,
    repo_pythonpath,
    run_tool,
    same_interpreter,
)
from harness.gates.models import Finding, GateResult, fingerprint
from harness.proc import ProcResult

NAME = "mypy"

# Flags that pin the text format, so the fallback parser never meets a user's `pretty = true`.
_TEXT_FLAGS = [
    "--show-column-numbers",
    "--show-error-codes",
    "--no-pretty",
    "--no-color-output",
    "--no-error-summary",
    "--hide-error-context",
]

_TEXT_LINE = re.compile(
    r"^(?P<file>.+?):(?:(?P<line>\d+):)?(?:(?P<col>\d+):)?(?:\d+:\d+:)? ?"
    r"(?P<sev>error|note|warning): (?P<msg>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)


class MypyGate:
    name = NAME

    def version(self, python: str) -> str:
        own = dist_versions(HARNESS_PYTHON, ["mypy"])
        if same_interpreter(python, HARNESS_PYTHON):
            return own
        # The target's env decides what imports resolve to (and which stubs exist).
        return f"{own}; target {dist_versions(python, [])}"

    def run(self, ctx: GateContext) -> GateResult:
        why = missing_input(ctx, NAME)
        if why is not None:
            return error(NAME, NAME, why)
        with tempfile.TemporaryDirectory(prefix="harness-mypy-") as tmp:
            cache = _cache_dir(ctx, Path(tmp))
            base = [HARNESS_PYTHON, "-m", "mypy", "--cache-dir", str(cache)]
            if not same_interpreter(ctx.python, HARNESS_PYTHON):
                base += ["--python-executable", ctx.python]
            cfg_file = config_path(ctx)
            if cfg_file is not None:
                base += ["--config-file", str(cfg_file)]
            tail = [*ctx.cfg.args, *(ctx.cfg.paths or ["."])]
            env = _mypypath(ctx)
            proc = run_tool([*base, "--output", "json", *tail], ctx, env=env)
            json_mode = True
            if _no_json_output(proc):
                proc = run_tool([*base, *_TEXT_FLAGS, *tail], ctx, env=env)
                json_mode = False
        why = proc_failure(NAME, proc, ctx, "mypy")
        if why is not None:
            return error(NAME, NAME, why, proc)
        parser = parse_json if json_mode else parse_text
        if proc.returncode not in (0, 1):
            try:
                first = parser(proc.stdout, ctx)[:1]
            except ValueError:
                first = []
            detail = f"{first[0].path}:{first[0].line}: {first[0].message}" if first else proc.tail
            if not first and "INTERNAL ERROR" in proc.stderr:
                # The tail is mypy's plea to report a bug; which run crashed says more.
                detail = "mypy crashed (INTERNAL ERROR)"
                if "--python-executable" in proc.argv:
                    detail += f" with --python-executable {ctx.python}"
            return error(
                NAME, NAME, f"mypy could not check (exit {proc.returncode}): {detail}", proc
            )
        try:
            findings = parser(proc.stdout, ctx)
        except ValueError as exc:
            return error(NAME, NAME, f"unparsable mypy output: {exc}", proc)
        if proc.returncode == 1 and not findings:
            return error(NAME, NAME, f"mypy exited 1 but reported no error: {proc.tail}", proc)
        if proc.returncode == 0 and findings:
            return error(NAME, NAME, "mypy exited 0 but reported errors", proc)
        return findings_result(NAME, proc, findings, "mypy error(s)")


def _mypypath(ctx: GateContext) -> dict[str, str]:
    """The repo's pythonpath dirs first on MYPYPATH: its own copy of a package wins over one
    installed in the target's env (which `--python-executable` puts on mypy's search path)."""
    dirs = repo_pythonpath(ctx)
    inherited = [p for p in os.environ.get("MYPYPATH", "").split(os.pathsep) if p]
    return {"MYPYPATH": os.pathsep.join([*dirs, *inherited])} if dirs else {}


def _cache_dir(ctx: GateContext, tmp: Path) -> Path:
    """mypy's incremental cache, outside the target: persistent per (user repo, interpreter)."""
    if ctx.cache_dir is None:
        return tmp / "cache"
    return mypy_dir(ctx.cache_dir, ctx.repo, ctx.python)


def _no_json_output(proc: ProcResult) -> bool:
    """An older mypy rejects `--output json` as a usage error."""
    if proc.returncode != 2:
        return False
    err = proc.stderr
    return "--output" in err and ("unrecognized" in err or "invalid choice" in err)


def _finding(
    ctx: GateContext, src: SourceLines, file: str, line: int | None, code: str, msg: str
) -> Finding:
    path = rel_path(ctx.repo, file)
    return Finding(
        gate=NAME,
        code=code,
        path=path,
        line=line,
        message=msg,
        severity="error",
        fingerprint=fingerprint(NAME, path, code, msg, src.line(path, line)),
        context=src.line(path, line) or None,
    )


def parse_json(stdout: str, ctx: GateContext) -> list[Finding]:
    """One JSON object per line; notes are context for an error, not errors themselves."""
    src = SourceLines(ctx.repo)
    out: list[Finding] = []
    for raw in stdout.splitlines():
        if not raw.strip():
            continue
        if not raw.startswith("{"):
            # mypy prints summaries/crash notes as text even in JSON mode.
            if raw.startswith(("Success:", "Found ")):
                continue
            # warn_unused_configs prints "setup.cfg: note: unused section(s): ..." as text.
            # Only notes are skipped: a text error line still makes the output unparsable.
            text = _TEXT_LINE.match(raw)
            if text is not None and text["sev"] == "note":
                continue
            raise ValueError(f"unexpected line: {raw[:160]!r}")
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"bad JSON line ({exc.msg}): {raw[:160]!r}") from exc
        if not isinstance(item, dict) or "file" not in item or "message" not in item:
            raise ValueError(f"unexpected object: {raw[:160]!r}")
        if item.get("severity", "error") != "error":
            continue
        line = item.get("line") if isinstance(item.get("line"), int) else None
        code = str(item.get("code") or "misc")
        out.append(
            _finding(ctx, src, str(item["file"]), line, code, one_line(str(item["message"]), 1000))
        )
    return out


def parse_text(stdout: str, ctx: GateContext) -> list[Finding]:
    src = SourceLines(ctx.repo)
    out: list[Finding] = []
    for raw in stdout.splitlines():
        if not raw.strip() or raw.startswith(("Success:", "Found ")):
            continue
        m = _TEXT_LINE.match(raw)
        if m is None:
            raise ValueError(f"unexpected line: {raw[:160]!r}")
        if m["sev"] != "error":
            continue
        line = int(m["line"]) if m["line"] else None
        out.append(_finding(ctx, src, m["file"], line, m["code"] or "misc", m["msg"]))
    return out


GATE = MypyGate()
