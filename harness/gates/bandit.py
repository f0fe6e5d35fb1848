"""bandit: `-f json`, findings with severity and confidence. Exit 0 clean, 1 issues found."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

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

NAME = "bandit"


class BanditGate:
    name = NAME

    def version(self, python: str) -> str:
        return dist_versions(HARNESS_PYTHON, ["bandit"])

    def run(self, ctx: GateContext) -> GateResult:
        why = missing_input(ctx, NAME)
        if why is not None:
            return error(NAME, NAME, why)
        with tempfile.TemporaryDirectory(prefix="harness-bandit-") as tmp:
            report = Path(tmp) / "bandit.json"
            argv = [HARNESS_PYTHON, "-m", "bandit", "-r", "-q", "-f", "json", "-o", str(report)]
            cfg_file = config_path(ctx)
            if cfg_file is not None:
                argv += ["-c", str(cfg_file)]
            argv += [*ctx.cfg.args, *(ctx.cfg.paths or ["."])]
            proc = run_tool(argv, ctx)
            why = proc_failure(NAME, proc, ctx, "bandit")
            if why is not None:
                return error(NAME, NAME, why, proc)
            if proc.returncode not in (0, 1):
                return error(NAME, NAME, f"bandit exited {proc.returncode}: {proc.tail}", proc)
            if not report.is_file():
                return error(NAME, NAME, f"bandit wrote no report: {proc.tail}", proc)
            text = report.read_text(encoding="utf-8", errors="replace")
        try:
            findings, scan_errors = parse(text, ctx)
        except ValueError as exc:
            return error(NAME, NAME, f"unparsable bandit output: {exc}", proc)
        if scan_errors:
            # A file bandit could not parse was not checked: that is not a clean bill.
            result = error(
                NAME,
                NAME,
                f"bandit could not scan {len(scan_errors)} file(s): {scan_errors[0]}",
                proc,
            )
            result.findings = findings
            return result
        if proc.returncode == 1 and not findings:
            return error(NAME, NAME, f"bandit exited 1 but reported no issue: {proc.tail}", proc)
        return findings_result(NAME, proc, findings, "bandit issue(s)")


def parse(text: str, ctx: GateContext) -> tuple[list[Finding], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError("no 'results' list in report")
    src = SourceLines(ctx.repo)
    findings: list[Finding] = []
    for item in data["results"]:
        try:
            path = rel_path(ctx.repo, str(item["filename"]))
            code = str(item["test_id"])
            message = str(item["issue_text"])
            line = int(item["line_number"]) if item.get("line_number") is not None else None
            findings.append(
                Finding(
                    gate=NAME,
                    code=code,
                    path=path,
                    line=line,
                    message=message,
                    severity=str(item.get("issue_severity") or "UNDEFINED"),
                    confidence=str(item.get("issue_confidence") or "UNDEFINED"),
                    fingerprint=fingerprint(NAME, path, code, message, src.line(path, line)),
                    context=src.line(path, line) or None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unexpected result entry: {str(item)[:120]}") from exc
    errors = [
        f"{rel_path(ctx.repo, str(e.get('filename', '?')))}: {e.get('reason', '?')}"
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    return findings, errors


GATE = BanditGate()
