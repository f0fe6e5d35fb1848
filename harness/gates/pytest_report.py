"""pytest's own account of a run, by test id: what the plugin `harness_pytest_report` (in
`pytest_plugin/`, loaded into the target's interpreter) wrote, read back into typed records.

JUnit XML cannot tell a non-strict xpass from a pass, nor a deselected test from a deleted one,
nor a session pytest finished from one that was cut short (`os._exit(0)` exits 0 and writes
nothing). The plugin's report can: every phase of every test as pytest decided it, the
collected and deselected ids, and a closing record written only when the session finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.gates.common import one_line, rel_path
from harness.gates.models import TestCase

# The plugin's directory goes on the target's PYTHONPATH: it holds that one module only, so
# nothing else of harness becomes importable in the target (harness/gates has a `pytest.py`).
PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
PLUGIN = "harness_pytest_report"
REPORT_FILE = "harness-report.jsonl"
# Part of the pytest gate's cache key: results read before the report existed lack xpasses.
FORMAT = "report 1"


def plugin_args(report: Path) -> list[str]:
    """pytest arguments that load the plugin and tell it where to write."""
    return ["-p", PLUGIN, f"--harness-report={report}"]


class SuiteReport(BaseModel):
    """One pytest session as pytest itself reported it."""

    started: bool = Field(False, description="the plugin was configured (pytest got that far)")
    finished: bool = Field(
        False, description="the closing record is there: pytest finished its session"
    )
    exitstatus: int | None = Field(None, description="the session's exit status, if finished")
    interrupted: str | None = Field(
        None, description="pytest.exit() or an interrupt stopped the session: its message"
    )
    collection_failed: bool = Field(
        False, description="pytest stopped after collection errors, before running any test"
    )
    collected: list[str] = Field(default_factory=list, description="ids selected to run")
    deselected: list[str] = Field(default_factory=list)
    collect_errors: list[TestCase] = Field(
        default_factory=list, description="modules or packages that failed to collect"
    )
    collect_skipped: list[TestCase] = Field(
        default_factory=list, description="modules or packages that skipped themselves whole"
    )
    tests: list[TestCase] = Field(
        default_factory=list, description="each test that got an outcome, as pytest counts it"
    )

    def by_id(self) -> dict[str, TestCase]:
        return {t.id: t for t in self.tests}


def read_report(path: Path, repo: Path) -> SuiteReport:
    """The report at `path`; an absent or empty file is a session that never started.
    Raises ValueError for a line that is not one of the plugin's records."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SuiteReport()
    return parse_report(text, repo)


def _outcome(when: str, outcome: str, xfail: bool) -> str | None:
    """A phase's say in the test's outcome, the way pytest's summary counts it."""
    if outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    if when == "setup":
        return "error" if outcome == "failed" else None
    if when == "call":
        if outcome == "passed":
            return "xpassed" if xfail else "passed"
        # A strict xpass is reported failed, without the xfail mark: pytest counts it failed.
        return "failed" if outcome == "failed" else None
    return None


def _node(repo: Path, rootdir: str, nodeid: str, files: dict[str, str] | None = None) -> str:
    """pytest's node id (relative to its rootdir) as an id relative to the repository.
    `files` keeps each file's answer for the rest of the report: one per test record adds up."""
    if not rootdir:
        return nodeid
    file, sep, rest = nodeid.partition("::")
    if files is None:
        return rel_path(repo, str(Path(rootdir) / file)) + sep + rest
    rel = files.get(file)
    if rel is None:
        rel = files[file] = rel_path(repo, str(Path(rootdir) / file))
    return rel + sep + rest


def parse_report(text: str, repo: Path) -> SuiteReport:
    report = SuiteReport()
    rootdir = ""
    cases: dict[str, TestCase] = {}
    files: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rootdir = _record(report, cases, json.loads(line), repo, rootdir, files)
        except (json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"line {number} is not a report record: {one_line(line, 80)}") from exc
    report.tests = [t for t in cases.values() if t.outcome != "running"]
    return report


def _record(
    report: SuiteReport,
    cases: dict[str, TestCase],
    rec: Any,
    repo: Path,
    rootdir: str,
    files: dict[str, str],
) -> str:
    """Take one record into the report; returns the rootdir node ids are relative to."""
    kind = rec["kind"]
    if kind == "start":
        report.started, rootdir = True, str(rec.get("rootdir") or "")
        files.clear()
    elif kind == "collected":
        report.collected = [_node(repo, rootdir, str(i)) for i in rec["ids"]]
    elif kind == "deselected":
        report.deselected += [_node(repo, rootdir, str(i)) for i in rec["ids"]]
    elif kind in ("collect_error", "collect_skipped"):
        failed = kind == "collect_error"
        case = TestCase(
            id=_node(repo, rootdir, str(rec["id"])) or ".",
            outcome="error" if failed else "skipped",
            message=rec.get("message"),
        )
        (report.collect_errors if failed else report.collect_skipped).append(case)
    elif kind == "report":
        _phase(cases, _node(repo, rootdir, str(rec["id"]), files), rec)
    elif kind == "interrupted" and rec.get("by") == "collection":
        report.collection_failed = True
    elif kind == "interrupted":
        report.interrupted = str(rec.get("message") or "interrupted")
    elif kind == "finish":
        report.finished, report.exitstatus = True, int(rec["exitstatus"])
    return rootdir


def _phase(cases: dict[str, TestCase], test_id: str, rec: dict[str, Any]) -> None:
    when, outcome = str(rec["when"]), str(rec["outcome"])
    message = rec.get("message")
    if when == "setup":
        # A new setup starts the test afresh (a plugin re-running it reports it again).
        cases[test_id] = TestCase(id=test_id, outcome="running")
    case = cases.setdefault(test_id, TestCase(id=test_id, outcome="running"))
    case.seconds += float(rec.get("seconds") or 0.0)
    if when == "teardown":
        if outcome == "failed":
            case.teardown_error = True
            case.message = case.message or message
        return
    decided = _outcome(when, outcome, bool(rec.get("xfail")))
    if decided is not None:
        case.outcome = decided
        case.message = message if decided != "passed" else None


def with_xpasses(tests: list[TestCase], report: SuiteReport) -> list[TestCase]:
    """JUnit's outcomes, with the non-strict xpasses JUnit reads as passed put right."""
    xpassed = {t.id for t in report.tests if t.outcome == "xpassed"}
    for t in tests:
        if t.id in xpassed and t.outcome == "passed":
            t.outcome = "xpassed"
    return tests
