"""`harness gates` through the real CLI entry point: output, JSON and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import other_gates_off

POLICY = """
[gates.ruff]
paths = ["pkg"]
[gates.mypy]
paths = ["pkg"]
""" + other_gates_off("ruff", "mypy")


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "gates", *args], capture_output=True, text=True
    )


def _setup(make_repo: Callable[..., Path], tmp_path: Path, src: str) -> tuple[Path, Path]:
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": src})
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return repo, policy


def test_all_passed_exits_0_and_prints_a_table(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, policy = _setup(make_repo, tmp_path, "X: int = 1\n")
    proc = _harness("--repo", str(repo), "--policy", str(policy))
    assert proc.returncode == 0, proc.stderr
    assert "ruff" in proc.stdout and "mypy" in proc.stdout and "passed" in proc.stdout
    assert "ruff: passed" in proc.stderr  # live progress goes to stderr

    again = _harness("--repo", str(repo), "--policy", str(policy), "--json")
    assert again.returncode == 0
    data = json.loads(again.stdout)
    assert data["ruff_stable_ok"] is True and data["mypy_ok"] is True
    assert data["gates"]["ruff"]["cached"] is True


def test_failed_gate_exits_1_with_json(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    repo, policy = _setup(make_repo, tmp_path, "import os\n")
    proc = _harness("--repo", str(repo), "--policy", str(policy), "--json", "--only", "ruff")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ruff_stable_ok"] is False
    assert data["mypy_ok"] is None
    assert data["gates"]["ruff"]["findings"] == 1


def test_gate_error_and_bad_arguments_exit_2(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, policy = _setup(make_repo, tmp_path, "X = 1\n")
    garbage = tmp_path / "garbage-python"
    garbage.write_text("#!/bin/sh\necho nonsense\n")
    garbage.chmod(0o755)
    proc = _harness("--repo", str(repo), "--policy", str(policy), "--python", str(garbage))
    assert proc.returncode == 2
    # ruff runs from the harness's env all the same; mypy asks the target's python for its
    # search path, and crashes on the answer.
    assert "harness: error: gate mypy could not run: mypy could not check (exit 2): mypy " in (
        proc.stderr
    )
    assert "crashed (INTERNAL ERROR)" in proc.stderr
    assert f"--python-executable {garbage}" in proc.stderr

    unknown = _harness("--repo", str(repo), "--policy", str(policy), "--only", "lint")
    assert unknown.returncode == 2
    assert "unknown gate 'lint'" in unknown.stderr

    not_git = _harness("--repo", str(tmp_path), "--policy", str(policy))
    assert not_git.returncode == 2
    assert "not a git repository" in not_git.stderr

    bad_policy = tmp_path / "bad.toml"
    bad_policy.write_text("[gates.ruff]\nspeed = 3\n")
    assert _harness("--repo", str(repo), "--policy", str(bad_policy)).returncode == 2


def test_reports_the_targets_addopts_write_are_removed_and_the_cache_hits(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n"
            'addopts = "--cov-report=xml --cov-report=html"\n',
            "pkg/__init__.py": "",
            "pkg/mod.py": "def f() -> int:\n    return 1\n",
            "tests/test_mod.py": "from pkg.mod import f\n\n\ndef test_f():\n    assert f() == 1\n",
        }
    )
    # The user's own uncommitted work: an edit and a new file, both must stay as they are.
    (repo / "pkg/mod.py").write_text("def f() -> int:\n    return 1  # mine\n")
    (repo / "notes.txt").write_text("mine\n")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True
    ).stdout
    policy = tmp_path / "policy.toml"
    policy.write_text('[gates.pytest]\ncov = ["pkg"]\n' + other_gates_off("pytest"))

    first = _harness("--repo", str(repo), "--policy", str(policy), "--json")
    assert first.returncode == 0, first.stderr
    assert not (repo / "coverage.xml").exists() and not (repo / "htmlcov").exists()
    after = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert after == status
    assert (repo / "pkg/mod.py").read_text().endswith("# mine\n")

    again = _harness("--repo", str(repo), "--policy", str(policy), "--json")
    assert json.loads(again.stdout)["gates"]["pytest"]["cached"] is True


def test_gates_imports_no_other_command(tmp_path: Path) -> None:
    # Start-up is CPU the gates pay on every call: the loop, Jinja and the guard stay out.
    code = (
        "import sys\nfrom harness.cli import main\n"
        "try:\n    main(['gates', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('harness.loop', 'harness.guard',"
        " 'harness.steps', 'jinja2', 'harness.commands.run'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
