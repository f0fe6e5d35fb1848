"""The findings left at the end of a run as SARIF 2.1.0, for code-scanning uploads: one SARIF
run per gate (its tool and version), each result with the gate's rule and the finding's place.

The findings are those of the run's last gate run (`final`, or the last one measured when a
gate could not run), as the record holds them: the branch's end state. Failing tests are
results too, at their test file; coverage is a number, not a finding, and is left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import __version__
from harness.report.model import RunReport

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVELS = {"error": "error", "high": "error", "warning": "warning", "medium": "warning"}
_FAILING = ("failed", "error")


def _level(severity: str | None) -> str:
    return _LEVELS.get((severity or "").lower(), "note")


def _location(path: str, line: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": path, "uriBaseId": "SRCROOT"}}
    if line and line > 0:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def _results(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate's findings, then its failing tests, as (unindexed) SARIF results."""
    out: list[dict[str, Any]] = []
    for f in result.get("findings") or []:
        item: dict[str, Any] = {
            "ruleId": str(f.get("code") or f.get("gate") or "finding"),
            "level": _level(f.get("severity")),
            "message": {"text": str(f.get("message") or f.get("code") or "finding")},
        }
        if f.get("path"):
            item["locations"] = [_location(str(f["path"]), f.get("line"))]
        if f.get("fingerprint"):
            item["partialFingerprints"] = {"harnessFingerprint/v1": str(f["fingerprint"])}
        out.append(item)
    for test in result.get("tests") or []:
        outcome = str(test.get("outcome"))
        if outcome not in _FAILING and not test.get("teardown_error"):
            continue
        test_id = str(test.get("id"))
        out.append(
            {
                "ruleId": f"test_{outcome if outcome in _FAILING else 'teardown_error'}",
                "level": "error",
                "message": {"text": f"{test_id}: {test.get('message') or outcome}"},
                "locations": [_location(test_id.split("::", 1)[0], None)],
            }
        )
    return out


def _run(name: str, result: dict[str, Any], report: RunReport) -> dict[str, Any]:
    results = _results(result)
    rules = list(dict.fromkeys(r["ruleId"] for r in results))
    for r in results:
        r["ruleIndex"] = rules.index(r["ruleId"])
    driver: dict[str, Any] = {
        "name": str(result.get("tool") or name),
        "rules": [{"id": rule} for rule in rules],
        "properties": {"gate": name},
    }
    if result.get("tool_version"):
        driver["version"] = str(result["tool_version"])
    status = str(result.get("status"))
    invocation: dict[str, Any] = {"executionSuccessful": status != "error"}
    if result.get("exit_code") is not None:
        invocation["exitCode"] = int(result["exit_code"])
    if status == "error":
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": str(result.get("reason") or "did not run")}}
        ]
    root = Path(report.header.target).resolve().as_uri().rstrip("/") + "/"
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "originalUriBaseIds": {"SRCROOT": {"uri": root}},
        "automationDetails": {"id": f"harness/{report.header.run_id}/{name}"},
        "results": results,
        "properties": {"harnessGate": name, "harnessLabel": report.final_label or ""},
    }
    if report.header.head_commit:
        run["versionControlProvenance"] = [
            {
                "repositoryUri": root,
                "revisionId": report.header.head_commit,
                "branch": report.header.branch,
            }
        ]
    return run


def to_sarif(report: RunReport) -> dict[str, Any]:
    """The SARIF log of the run's remaining findings (empty runs list: nothing was measured)."""
    runs = [_run(name, result, report) for name, result in sorted(report.final.items())]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": runs,
        "properties": {"harnessVersion": __version__, "harnessRun": report.header.run_id},
    }
