"""pytest + coverage: outcomes per test id from JUnit XML, coverage from coverage's JSON report.

pytest exit codes: 0 passed, 1 some tests failed, 2 interrupted (collection errors), 3 internal
error, 4 usage error, 5 nothing collected. Only 0 and 1 are a run whose outcome we can judge.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET

from harness.gates import pytest_report
from harness.gates.common import (
    GateContext,
    dist_versions,
    error,
    missing_config,
    one_line,
    proc_failure,
    rel_path,
    run_tool,
    with_pythonpath,
)
from harness.gates.models import Coverage, GateResult, GateStatus, TestCase
from harness.policy import GateConfig, PytestGateConfig
from harness.proc import ProcResult

NAME = "pytest"

_EXIT_REASONS = {
    2: "test run interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests were collected",
}


def pytest_config(cfg: GateConfig) -> PytestGateConfig:
    if isinstance(cfg, PytestGateConfig):
        return cfg
    return PytestGateConfig.model_validate(cfg.model_dump())


def base_argv(python: str, junit: Path) -> list[str]:
    # xunit1 keeps the `file` attribute, which makes JUnit names map back to node ids exactly.
    return [
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
    ]


def tool_env(ctx: GateContext, tmp: Path, *, first: list[str] | None = None) -> dict[str, str]:
    """Coverage data goes to the temp dir, never into the target's tree; the repo's pythonpath
    dirs (after `first`) lead PYTHONPATH, so the code measured is this repo's copy."""
    return with_pythonpath(ctx, {"COVERAGE_FILE": str(tmp / ".coverage")}, first=first or [])


class PytestGate:
    name = NAME

    def version(self, python: str) -> str:
        versions = dist_versions(python, ["pytest", "pytest-cov", "coverage"])
        return versions if versions == "unknown" else f"{versions} {pytest_report.FORMAT}"

    def run(self, ctx: GateContext) -> GateResult:
        cfg = pytest_config(ctx.cfg)
        # Paths are left to pytest, which rejects a missing one itself (exit 4).
        why = missing_config(ctx, "coverage")
        if why is not None:
            return error(NAME, NAME, why)
        with tempfile.TemporaryDirectory(prefix="harness-pytest-") as tmp_name:
            tmp = Path(tmp_name)
            junit, cov_json = tmp / "junit.xml", tmp / "coverage.json"
            argv = base_argv(ctx.python, junit)
            # pytest's own report beside JUnit: JUnit reads a non-strict xpass as passed.
            report_file = tmp / pytest_report.REPORT_FILE
            argv += pytest_report.plugin_args(report_file)
            if cfg.cov:
                argv += [f"--cov={target}" for target in cfg.cov]
                argv += [f"--cov-report=json:{cov_json}"]
                if cfg.config:
                    argv += [f"--cov-config={cfg.config}"]
            argv += [*cfg.args, *cfg.paths]
            env = tool_env(ctx, tmp, first=[str(pytest_report.PLUGIN_DIR)])
            proc = run_tool(argv, ctx, env=env)
            why = proc_failure(NAME, proc, ctx, "pytest")
            if why is not None:
                return error(NAME, NAME, why, proc)
            tests: list[TestCase] = []
            junit_problem: str | None = None
            if junit.is_file():
                try:
                    tests = parse_junit(junit.read_text(encoding="utf-8"), ctx.repo)
                except ValueError as exc:
                    junit_problem = f"unparsable JUnit XML: {exc}"
            else:
                junit_problem = "pytest wrote no JUnit XML report"
            try:
                report = pytest_report.read_report(report_file, ctx.repo)
                tests = pytest_report.with_xpasses(tests, report)
                if junit_problem is None and not report.finished:
                    junit_problem = "pytest ended without finishing its session (no closing report)"
            except ValueError as exc:
                junit_problem = f"unreadable pytest report: {exc}"
            coverage: Coverage | None = None
            cov_problem: str | None = None
            if cfg.cov:
                if cov_json.is_file():
                    try:
                        coverage = parse_coverage(cov_json.read_text(encoding="utf-8"), ctx.repo)
                    except ValueError as exc:
                        cov_problem = f"unparsable coverage JSON: {exc}"
                else:
                    cov_problem = f"coverage wrote no JSON report: {_coverage_complaint(proc)}"

        result = GateResult(
            gate=NAME,
            status=GateStatus.PASSED,
            tool=NAME,
            seconds=proc.seconds,
            command=list(proc.argv),
            exit_code=proc.returncode,
            tests=tests,
            coverage=coverage,
        )
        errors = [t for t in tests if t.outcome == "error"]
        if proc.returncode not in (0, 1):
            collection = [t for t in errors if (t.message or "").startswith(COLLECTION_FAILURE)]
            conftest = _CONFTEST_ERROR.search(proc.stderr + proc.stdout)
            if collection:
                first = collection[0]
                detail = (first.message or "")[len(COLLECTION_FAILURE) :].lstrip(": ")
                what = f"collection error in {first.id}: {detail or 'no detail'}"
                if len(collection) > 1:
                    what += f" (and {len(collection) - 1} more)"
            elif conftest is not None:
                where = rel_path(ctx.repo, conftest["path"])
                what = f"collection error in {where}: {_raised(proc.stderr + proc.stdout)}"
            elif errors:
                what = _EXIT_REASONS.get(proc.returncode, f"pytest exited {proc.returncode}")
                what += f": {errors[0].id}: {errors[0].message or 'error'}"
            else:
                what = _EXIT_REASONS.get(proc.returncode, f"pytest exited {proc.returncode}")
                what += f": {proc.tail}"
            return _as_error(result, what)
        if junit_problem or cov_problem:
            return _as_error(result, str(junit_problem or cov_problem))
        counts = result.counts()
        if proc.returncode == 1 or counts["failed"] or counts["errors"]:
            result.status = GateStatus.FAILED
            if counts["failed"] or counts["errors"]:
                result.reason = f"{counts['failed']} failed, {counts['errors']} error(s)"
            else:
                # The target's own --cov-fail-under (in its addopts) fails a green run.
                goal = _COV_GOAL.search(proc.stdout)
                if goal is None:
                    return _as_error(result, f"pytest exited 1 but no test failed: {proc.tail}")
                result.reason = one_line(goal.group(0))
        if (
            coverage is not None
            and cfg.fail_under is not None
            and coverage.percent < cfg.fail_under
        ):
            below = f"coverage {coverage.percent:.2f}% is below {cfg.fail_under:g}%"
            result.status = GateStatus.FAILED
            result.reason = f"{result.reason}; {below}" if result.reason else below
        return result


def _as_error(result: GateResult, reason: str) -> GateResult:
    result.status = GateStatus.ERROR
    result.reason = one_line(reason)
    return result


_COV_GOAL = re.compile(r"Required test coverage of [\d.]+% not reached\.[^\n]*")
# What pytest's junitxml writes as the message of a test module that could not be collected.
COLLECTION_FAILURE = "collection failure"
_CONFTEST_ERROR = re.compile(r"^ImportError while loading conftest '(?P<path>[^']+)'", re.M)
# pytest marks the lines of the exception itself with "E   ".
_E_LINE = re.compile(r"^E\s+(?P<text>\S.*)$", re.M)
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Failed|Warning)\b")
_COV_WARNING = re.compile(
    r"(?:CoverageWarning|CovReportWarning): (?P<text>.+?)(?: \([a-z-]+\); see \S+)?$", re.M
)


def _raised(text: str) -> str:
    """The exception pytest shows in a longrepr: its `E` line naming the exception type (a
    SyntaxError's `E` lines first quote the source), else the last `E` line."""
    lines = [m["text"].strip() for m in _E_LINE.finditer(text)]
    named = [line for line in lines if _EXC_LINE.match(line)]
    if named:
        return named[-1]
    if lines:
        return lines[-1]
    return one_line(text.strip().splitlines()[0]) if text.strip() else ""


def _coverage_complaint(proc: ProcResult) -> str:
    """Why coverage produced no report, in coverage's words ("Module x was never imported")."""
    said = list(dict.fromkeys(m["text"].strip() for m in _COV_WARNING.finditer(proc.stderr)))
    return "; ".join(said) if said else proc.tail or "no output"


# How pytest's junitxml marks what happened outside the test's call.
_SETUP_ERROR = "failed on setup with"
_TEARDOWN_ERROR = "failed on teardown with"


def parse_junit(text: str, repo: Path) -> list[TestCase]:
    """JUnit XML (xunit1) -> TestCases keyed by pytest node id, one per id, counted as pytest
    counts them: an error in teardown is a flag beside the call's own outcome (junitxml writes
    a second <testcase> for it), an xfail is <skipped type="pytest.xfail">, a strict xpass a
    <failure> "[XPASS(strict)]". A non-strict xpass leaves no trace in JUnit: it reads passed."""
    # Only reports our own pytest subprocess wrote into a private temp dir are parsed.
    try:
        # The report is written by code under test: parse it as untrusted XML.
        root = SafeET.fromstring(text)
    except SafeET.ParseError as exc:
        raise ValueError(str(exc)) from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"root element is <{root.tag}>")
    by_id: dict[str, TestCase] = {}
    files: dict[str, str] = {}
    for case in root.iter("testcase"):
        test_id = node_id(case, repo, files)
        outcome, message, teardown = "passed", None, False
        for child in case:
            said = child.get("message")
            if child.tag == "failure":
                outcome, message = "failed", said
            elif child.tag == "error" and (said or "").startswith(_TEARDOWN_ERROR):
                teardown, message = True, said
            elif child.tag == "error":
                outcome, message = "error", said
                if said == COLLECTION_FAILURE and child.text:
                    message = f"{COLLECTION_FAILURE}: {_raised(child.text)}"
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), said
        seconds = float(case.get("time") or 0.0)
        prev = by_id.get(test_id)
        if prev is not None and teardown and outcome == "passed":
            # The teardown's own <testcase> after the call's: the call's outcome stands.
            prev.teardown_error = True
            if prev.message is None and message:
                prev.message = one_line(message, 300)
            prev.seconds += seconds
            continue
        by_id[test_id] = TestCase(
            id=test_id,
            outcome=outcome,
            teardown_error=teardown,
            message=one_line(message, 300) if message else None,
            seconds=seconds,
        )
    return list(by_id.values())


def node_id(case: Any, repo: Path, files: dict[str, str] | None = None) -> str:
    """Invert pytest's JUnit name mangling: classname 'pkg.test_m.TestA' + name -> node id.
    `files` keeps each file's repo-relative path for the rest of one report."""
    classname = case.get("classname") or ""
    name = case.get("name") or ""
    file = case.get("file")
    if file:
        if files is None:
            file = rel_path(repo, file)
        else:
            file = files[file] if file in files else files.setdefault(file, rel_path(repo, file))
        module = file[: -len(".py")].replace("/", ".") if file.endswith(".py") else None
        if module is not None and (classname == module or classname.startswith(module + ".")):
            classes = classname[len(module) + 1 :].split(".") if classname != module else []
            return "::".join([file, *[c for c in classes if c], name])
    # No usable `file` (collection errors, other JUnit families): find the module on disk.
    dotted = f"{classname}.{name}" if classname else name
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i]) + ".py"
        if (repo / candidate).is_file():
            return "::".join([candidate, *parts[i:]])
    return dotted


def parse_coverage(text: str, repo: Path) -> Coverage:
    try:
        data = json.loads(text)
        totals = data["totals"]
        files = data.get("files", {})
        per_file = {
            rel_path(repo, path): float(info["summary"]["percent_covered"])
            for path, info in files.items()
        }
        return Coverage(
            percent=float(totals["percent_covered"]),
            per_file=per_file,
            covered_lines=int(totals.get("covered_lines", 0)),
            num_statements=int(totals.get("num_statements", 0)),
            num_branches=int(totals.get("num_branches", 0)),
            covered_branches=int(totals.get("covered_branches", 0)),
            missing_branches=int(totals.get("missing_branches", 0)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


GATE = PytestGate()
