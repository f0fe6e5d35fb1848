"""secrets: gitleaks when it is on PATH (or asked for), otherwise detect-secrets.

Raw secrets never leave this module: gitleaks runs with --redact, detect-secrets reports only a
hash of each secret, and fingerprints are built from those.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from harness.errors import GateError, GitError
from harness.gates.common import (
    HARNESS_PYTHON,
    GateContext,
    config_path,
    dist_versions,
    error,
    proc_failure,
    rel_path,
    run_tool,
)
from harness.gates.models import Finding, GateResult, GateStatus, fingerprint
from harness.gitplain import ls_files
from harness.policy import SecretsGateConfig
from harness.proc import run

NAME = "secrets"
GITLEAKS = "gitleaks"
DETECT_SECRETS = "detect-secrets"
_CHUNK = 2000  # files per detect-secrets invocation, to stay far below ARG_MAX


def _plugin_file() -> str:
    """harness/gates/secret_formats_scan.py (the guard's extra key formats as one plugin),
    found without importing it: importing it imports detect-secrets (0.1 s of CPU), which the
    scan, in its own process, does anyway."""
    spec = importlib.util.find_spec("harness.gates.secret_formats_scan")
    if spec is None or spec.origin is None:
        raise GateError("harness.gates.secret_formats_scan is missing from this installation")
    return spec.origin


def _choice(ctx: GateContext) -> str:
    tool = ctx.cfg.tool if isinstance(ctx.cfg, SecretsGateConfig) else "auto"
    if tool == "auto":
        return GITLEAKS if shutil.which(GITLEAKS) else DETECT_SECRETS
    return tool


class SecretsGate:
    name = NAME

    def version(self, python: str) -> str:
        gl = shutil.which(GITLEAKS)
        # The extra formats decide findings as much as detect-secrets' own version: a cached
        # result from before they changed must not be served.
        formats = hashlib.sha256(Path(_plugin_file()).read_bytes()).hexdigest()[:8]
        ds = f"{dist_versions(HARNESS_PYTHON, ['detect-secrets'])} (+formats {formats})"
        if gl is None:
            return ds
        proc = run([gl, "version"], Path.cwd(), timeout=60)
        return f"gitleaks {proc.stdout.strip() or 'unknown'}; {ds}"

    def run(self, ctx: GateContext) -> GateResult:
        if _choice(ctx) == GITLEAKS:
            return _gitleaks(ctx)
        return _detect_secrets(ctx)


def _result(
    tool: str, findings: list[Finding], proc_seconds: float, argv: list[str], code: int
) -> GateResult:
    return GateResult(
        gate=NAME,
        status=GateStatus.FAILED if findings else GateStatus.PASSED,
        reason=f"{len(findings)} potential secret(s)" if findings else None,
        tool=tool,
        seconds=proc_seconds,
        command=argv,
        exit_code=code,
        findings=findings,
    )


def _gitleaks(ctx: GateContext) -> GateResult:
    cfg_file = config_path(ctx)
    if cfg_file is not None and not cfg_file.is_file():
        return error(NAME, GITLEAKS, f"gitleaks config not found: {ctx.cfg.config}")
    exe = shutil.which(GITLEAKS)
    if exe is None:
        return error(NAME, GITLEAKS, "gitleaks is not on PATH")
    with tempfile.TemporaryDirectory(prefix="harness-gitleaks-") as tmp:
        report = Path(tmp) / "gitleaks.json"
        argv = [exe, "detect", "--no-banner", "--redact", "--report-format", "json"]
        argv += ["--report-path", str(report), "--source", "."]
        if cfg_file is not None:
            argv += ["--config", str(cfg_file)]
        argv += ctx.cfg.args
        proc = run_tool(argv, ctx)
        why = proc_failure(GITLEAKS, proc, ctx)
        if why is None and proc.returncode not in (0, 1):
            why = f"gitleaks exited {proc.returncode}: {proc.tail}"
        if why is None and not report.is_file():
            why = f"gitleaks wrote no report: {proc.tail}"
        if why is not None:
            return error(NAME, GITLEAKS, why, proc)
        text = report.read_text(encoding="utf-8", errors="replace")
    try:
        findings = parse_gitleaks(text, ctx.repo)
    except ValueError as exc:
        return error(NAME, GITLEAKS, f"unparsable gitleaks report: {exc}", proc)
    if proc.returncode == 1 and not findings:
        return error(NAME, GITLEAKS, f"gitleaks exited 1 but reported no leak: {proc.tail}", proc)
    return _result(GITLEAKS, findings, proc.seconds, list(proc.argv), proc.returncode)


def parse_gitleaks(text: str, repo: Path) -> list[Finding]:
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of leaks")
    out: list[Finding] = []
    for item in data:
        try:
            path = rel_path(repo, str(item["File"]))
            rule = str(item["RuleID"])
            line = int(item["StartLine"]) if item.get("StartLine") is not None else None
            # With --redact the secret itself is gone; its commit and the redacted match still
            # tell two leaks apart without depending on the line number.
            token = "\x1f".join((str(item.get("Commit", "")), str(item.get("Match", ""))))
            digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:20]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unexpected leak entry: {str(item)[:80]}") from exc
        message = str(item.get("Description") or rule)
        out.append(
            Finding(
                gate=NAME,
                code=rule,
                path=path,
                line=line,
                message=message,
                fingerprint=fingerprint(NAME, path, rule, "", digest),
            )
        )
    return out


def _files_to_scan(ctx: GateContext) -> list[str]:
    """Tracked and untracked-but-not-ignored files (the working tree as it is), largest first.

    detect-secrets hands the files to its pool of `cpu_count()` workers one at a time, in the
    order given: with the largest first, the workers end together rather than one scanning a
    big file alone at the end (click's core.py is a tenth of its lines). Its report is sorted
    by file name whatever the order."""
    args = ["-c", "-o", "--exclude-standard", "--", *ctx.cfg.paths]
    sizes: dict[str, int] = {}
    for name in set(ls_files(ctx.repo, *args, what="cannot list files")):
        try:
            st = os.lstat(ctx.repo / name)
        except OSError:
            continue  # listed by git, gone from the disk
        if stat.S_ISREG(st.st_mode):  # a regular file: no symlink, no directory
            sizes[name] = st.st_size
    return sorted(sizes, key=lambda n: (-sizes[n], n))


def _detect_secrets(ctx: GateContext) -> GateResult:
    tool = DETECT_SECRETS
    baseline: set[tuple[str, str, str]] = set()
    cfg_file = config_path(ctx)
    if cfg_file is not None:
        # For detect-secrets the config is a baseline: known secrets it already accepted.
        if not cfg_file.is_file():
            return error(NAME, tool, f"detect-secrets baseline not found: {ctx.cfg.config}")
        try:
            known = json.loads(cfg_file.read_text(encoding="utf-8"))["results"]
            baseline = {
                (rel_path(ctx.repo, str(s["filename"])), str(s["type"]), str(s["hashed_secret"]))
                for entries in known.values()
                for s in entries
            }
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return error(NAME, tool, f"unreadable detect-secrets baseline {ctx.cfg.config}: {exc}")
    try:
        # The baseline holds hashes that look like secrets; detect-secrets skips it too.
        skip = rel_path(ctx.repo, ctx.cfg.config) if ctx.cfg.config else None
        files = [f for f in _files_to_scan(ctx) if f != skip]
    except GitError as exc:
        return error(NAME, tool, str(exc))
    if not files:
        where = ", ".join(ctx.cfg.paths) or "the repository"
        return error(NAME, tool, f"no files to scan under {where}")
    findings: list[Finding] = []
    # -n: without it detect-secrets sends what it finds to the provider's API to verify it
    # (AWS, Slack, Stripe ...): a gate never sends a secret anywhere, nor reaches the network.
    # --plugin: the key formats it does not know, the same ones the guard refuses.
    scan = [HARNESS_PYTHON, "-m", "detect_secrets", "scan", "-n", "--plugin", _plugin_file()]
    seconds, argv, code = 0.0, list(scan), 0
    for start in range(0, max(len(files), 1), _CHUNK):
        chunk = files[start : start + _CHUNK]
        if not chunk:
            break
        cmd = [*scan, *ctx.cfg.args, *chunk]
        proc = run_tool(cmd, ctx)
        seconds += proc.seconds
        why = proc_failure(tool, proc, ctx, "detect_secrets")
        if why is None and proc.returncode != 0:
            why = f"detect-secrets exited {proc.returncode}: {proc.tail}"
        if why is not None:
            return error(NAME, tool, why, proc)
        try:
            findings += parse_detect_secrets(proc.stdout, ctx.repo, baseline)
        except ValueError as exc:
            return error(NAME, tool, f"unparsable detect-secrets output: {exc}", proc)
        code = proc.returncode
    # In file-name order, as one scan of every file reports them (stable: each file's own
    # order stays detect-secrets').
    findings.sort(key=lambda f: f.path)
    argv += [*ctx.cfg.args, f"<{len(files)} files>"]
    return _result(tool, findings, seconds, argv, code)


def parse_detect_secrets(
    text: str, repo: Path, baseline: set[tuple[str, str, str]] | None = None
) -> list[Finding]:
    try:
        data = json.loads(text)
        results = data["results"]
        if not isinstance(results, dict):
            raise TypeError("'results' is not an object")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{type(exc).__name__}: {exc}; output starts {text.strip()[:80]!r}"
        ) from exc
    out: list[Finding] = []
    for entries in results.values():
        for s in entries:
            try:
                path = rel_path(repo, str(s["filename"]))
                kind, hashed = str(s["type"]), str(s["hashed_secret"])
                line = int(s["line_number"]) if s.get("line_number") is not None else None
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"unexpected secret entry: {sorted(s)}") from exc
            if baseline and (path, kind, hashed) in baseline:
                continue
            out.append(
                Finding(
                    gate=NAME,
                    code=kind,
                    path=path,
                    line=line,
                    message=f"{kind} (hashed {hashed[:12]})",
                    fingerprint=fingerprint(NAME, path, kind, "", hashed),
                )
            )
    return out


GATE = SecretsGate()
