"""The gate registry and CommandGate (a STEPS command that maps onto no gate)."""

from __future__ import annotations

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
