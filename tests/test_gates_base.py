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
    # pytest runs in the target's interpreter: one that does not answer has no version.
    assert GATES["pytest"].version("/nonexistent/python") == "unknown"


def _bare_venv(tmp_path: Path) -> str:
    """An interpreter whose env has none of the gate tools (no pip, nothing installed)."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    return str(tmp_path / "bare" / "bin" / "python")


STATIC_FILES = {
    "pkg/__init__.py": "",
    "pkg/other.py": "X = 1\n",
    "pkg/run.py": "import subprocess\n\n\ndef run(cmd: str) -> int:\n"
    "    return subprocess.call(cmd, shell=True)\n",
    "linter.ini": "[importlinter]\nroot_package = pkg\n\n[importlinter:contract:one]\n"
    "name = run is a leaf\ntype = forbidden\nsource_modules =\n    pkg.run\n"
    "forbidden_modules =\n    pkg.other\n",
}


def test_static_tools_run_from_the_harness_env_whatever_the_target_has(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    bare = _bare_venv(tmp_path)
    repo = make_repo(STATIC_FILES)
    configs = {
        "ruff": {"paths": ["pkg"], "args": ["--select", "S602"]},
        "mypy": {"paths": ["pkg"]},
        "bandit": {"paths": ["pkg"]},
        "imports": {"config": "linter.ini"},
        "secrets": {},
    }
    got = {}
    for name, cfg in configs.items():
        ctx = GateContext(repo=repo, python=bare, cfg=GateConfig.model_validate(cfg))
        result = GATES[name].run(ctx)
        got[name] = (result.status, sorted({f.code for f in result.findings}))
        # The version (part of the cache key) is that of the tool that ran, not "missing".
        assert "missing" not in GATES[name].version(bare).split(";")[0], name
    assert got == {
        "ruff": (GateStatus.FAILED, ["S602"]),
        "mypy": (GateStatus.PASSED, []),
        "bandit": (GateStatus.FAILED, ["B404", "B602"]),
        "imports": (GateStatus.PASSED, []),
        "secrets": (GateStatus.PASSED, []),
    }
    assert GATES["ruff"].version(bare) == GATES["ruff"].version(sys.executable)
    assert GATES["pytest"].version(bare).startswith("pytest missing pytest-cov missing")


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
    python = _bare_venv(tmp_path)
    before = GATES["mypy"].version(python)
    assert before.startswith("mypy ") and "; target (env " in before
    assert GATES["mypy"].version(sys.executable).startswith(before.split("; ")[0])

    # A new distribution (say, a stub package) changes mypy's verdict without changing mypy.
    [site] = list((tmp_path / "bare" / "lib").glob("python3*/site-packages"))
    info = site / "types_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: types-demo\nVersion: 1.0\n")
    after = GATES["mypy"].version(python)
    assert after.split("; ")[0] == before.split("; ")[0]
    assert after != before
