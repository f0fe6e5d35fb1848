"""The bandit gate: JSON report parsed into findings with severity and confidence."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

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
    # Configured but absent: bandit runs with its defaults rather than not at all.
    missing = GATES["bandit"].run(_ctx(repo, paths=["pkg"], config="nope.yaml"))
    assert {f.code for f in missing.findings} == {"B101", "B404", "B602"}


def test_unscannable_file_is_an_error_not_a_pass(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/ok.py": "X = 1\n", "pkg/broken.py": "def f(:\n"})
    result = GATES["bandit"].run(_ctx(repo, paths=["pkg"]))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None
    assert result.reason.startswith("bandit could not scan 1 file(s): pkg/broken.py")


def test_garbage_interpreter_is_an_error(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage-python"
    garbage.write_text("#!/bin/sh\necho '{\"results\": oops'\n")
    garbage.chmod(0o755)
    repo = make_repo({"pkg/ok.py": "X = 1\n"})
    result = GATES["bandit"].run(_ctx(repo, python=str(garbage)))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None and result.reason.startswith("bandit wrote no report")


def test_a_missing_path_is_an_error_not_a_clean_scan(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/mod.py": "x = 1\n"})
    result = GATES["bandit"].run(_ctx(repo, paths=["lukhas"]))
    assert result.status == GateStatus.ERROR
    assert result.reason == "path not found: lukhas"
