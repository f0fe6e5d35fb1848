"""The gate registry and CommandGate (a STEPS command that maps onto no gate)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.gates.base import GATES, CommandGate
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import GateConfig


def test_registry_names_and_versions() -> None:
    assert list(GATES) == ["ruff", "mypy", "pytest", "bandit", "imports", "secrets"]
    assert all(gate.name == name for name, gate in GATES.items())
    assert GATES["ruff"].version(sys.executable).startswith("ruff ")
    assert GATES["pytest"].version(sys.executable).startswith("pytest ")
    assert GATES["ruff"].version("/nonexistent/python") == "unknown"


def test_command_gate_judges_by_exit_code(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"data.txt": "hello\n"})
    ctx = GateContext(repo=repo, cfg=GateConfig(timeout=5))
    ok = CommandGate("grep", "grep -q hello data.txt").run(ctx)
    assert (ok.status, ok.exit_code, ok.gate) == (GateStatus.PASSED, 0, "grep")
    bad = CommandGate("grep", "grep -q goodbye data.txt").run(ctx)
    assert (bad.status, bad.exit_code) == (GateStatus.FAILED, 1)
    missing = CommandGate("x", "no-such-command-anywhere --flag").run(ctx)
    assert missing.status == GateStatus.ERROR
    slow = CommandGate("slow", "exec sleep 5").run(
        GateContext(repo=repo, cfg=GateConfig(timeout=0.3))
    )
    assert slow.status == GateStatus.ERROR
    assert slow.reason == "timed out after 0.3s"


def test_version_changes_when_the_targets_env_changes(tmp_path: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    python = str(tmp_path / "env" / "bin" / "python")
    before = GATES["mypy"].version(python)
    assert before.startswith("mypy missing (env ")

    # A new distribution (say, a stub package) changes mypy's verdict without changing mypy.
    [site] = list((tmp_path / "env" / "lib").glob("python3*/site-packages"))
    info = site / "types_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: types-demo\nVersion: 1.0\n")
    after = GATES["mypy"].version(python)
    assert after.startswith("mypy missing (env ")
    assert after != before
