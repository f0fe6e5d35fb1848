"""The bandit gate: JSON report parsed into findings with severity and confidence."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import bandit as bandit_gate
from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import GateConfig

from .conftest import git

RISKY = (
    "import subprocess\n"
    "\n"
    "\n"
    "def run(cmd):\n"
    "    assert cmd\n"
    "    return subprocess.call(cmd, shell=True)\n"
)


def _ctx(repo: Path, python: str = sys.executable, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=python, cfg=GateConfig.model_validate(cfg))


def test_findings_with_severity_and_confidence(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/run.py": RISKY})
    result = GATES["bandit"].run(_ctx(repo, paths=["pkg"]))

    assert result.status == GateStatus.FAILED
    got = sorted((f.code, f.path, f.line, f.severity, f.confidence) for f in result.findings)
    assert got == [
        ("B101", "pkg/run.py", 5, "LOW", "HIGH"),
        ("B404", "pkg/run.py", 1, "LOW", "HIGH"),
        ("B602", "pkg/run.py", 6, "HIGH", "HIGH"),
    ]
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_config_file_is_used_when_present(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/run.py": RISKY, "bandit.yaml": "skips: ['B101', 'B404', 'B602']\n"})
    assert GATES["bandit"].run(_ctx(repo, paths=["pkg"], config="bandit.yaml")).status == (
        GateStatus.PASSED
    )
    # Configured but absent: an error, not a run with bandit's defaults (the user's own
    # `bandit -c nope.yaml` fails too).
    missing = GATES["bandit"].run(_ctx(repo, paths=["pkg"], config="nope.yaml"))
    assert missing.status == GateStatus.ERROR
    assert missing.reason == "bandit config not found: nope.yaml"
    assert missing.findings == []


def test_unscannable_file_is_an_error_not_a_pass(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/ok.py": "X = 1\n", "pkg/broken.py": "def f(:\n"})
    result = GATES["bandit"].run(_ctx(repo, paths=["pkg"]))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None
    assert result.reason.startswith("bandit could not scan 1 file(s): pkg/broken.py")


def test_unparsable_report_is_refused(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(ValueError, match="not JSON"):
        bandit_gate.parse('{"results": oops', ctx)
    with pytest.raises(ValueError, match="no 'results' list"):
        bandit_gate.parse('{"errors": []}', ctx)
    with pytest.raises(ValueError, match="unexpected result entry"):
        bandit_gate.parse('{"results": [{"filename": "a.py"}]}', ctx)


def test_a_missing_path_is_an_error_not_a_clean_scan(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/mod.py": "x = 1\n"})
    result = GATES["bandit"].run(_ctx(repo, paths=["lukhas"]))
    assert result.status == GateStatus.ERROR
    assert result.reason == "path not found: lukhas"
