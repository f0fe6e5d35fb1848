"""`harness init` on each layout, then `harness gates` and `harness run` with no edits."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands.init import render_policy, render_steps
from harness.detect import detect
from harness.policy import resolve_policy
from harness.steps import apply_to_policy, load_steps
from tests.conftest import git

TEST_ADD = "def test_add():\n    assert add(1, 2) == 3\n"
LAYOUTS = {
    "flat": {
        "pyproject.toml": '[project]\nname = "calc"\n',
        "calc/__init__.py": "",
        "calc/ops.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
        "tests/test_ops.py": "from calc.ops import add\n\n\n" + TEST_ADD,
    },
    "src": {
        "setup.cfg": "[metadata]\nname = calc\n",
        "src/calc/__init__.py": "",
        "src/calc/ops.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
        "tests/test_ops.py": "from calc.ops import add\n\n\n" + TEST_ADD,
    },
    "module": {
        "setup.py": "from setuptools import setup\nsetup(name='calc')\n",
        "calc.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
        "test/test_calc.py": "from calc import add\n\n\n" + TEST_ADD,
    },
}


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(autouse=True)
def _no_active_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_init_writes_a_policy_and_script_that_fit(
    make_repo: Callable[..., Path], layout: str
) -> None:
    repo = make_repo(LAYOUTS[layout])
    proc = harness("init", "--repo", str(repo), "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["detected"]["layout"] == layout
    assert sorted(out["written"]) == ["STEPS.md", "harness.toml"]
    resolved = resolve_policy(repo)
    assert resolved.path == repo / "harness.toml"
    assert resolved.filled == {}  # init wrote every detected value down
    steps = load_steps(repo / "STEPS.md")
    policy = apply_to_policy(steps, resolved.policy)
    want = {"flat": ["calc"], "src": ["src/calc"], "module": ["calc.py"]}[layout]
    assert policy.gates.ruff.paths == want
    assert policy.gates.pytest.cov == ["calc"]
    assert policy.gates.pytest.fail_under == 60
    assert not policy.gates.imports.enabled  # no contracts: the gate is off, not an error
    # A second init refuses to overwrite what the user may have edited.
    again = harness("init", "--repo", str(repo), cwd=repo)
    assert again.returncode == 2
    assert "already exist" in again.stderr and "--force" in again.stderr


def test_gates_and_run_work_after_init_with_no_edits(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(LAYOUTS["src"])
    assert harness("init", "--repo", str(repo), cwd=repo).returncode == 0
    gates = harness("gates", "--repo", str(repo), "--only", "ruff,pytest", "--json", cwd=repo)
    assert gates.returncode in (0, 1), gates.stderr
    report = json.loads(gates.stdout)
    assert report["gates"]["pytest"]["status"] == "passed"
    assert report["pytest"]["passed"] == 1
    assert report["gates"]["ruff"]["findings"] >= 1  # the unused import
    runs = tmp_path / "runs"
    run = harness(
        "run", "STEPS.md", "--repo", str(repo), "--blocks", "2", "--runs-dir", str(runs),
        cwd=repo,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-2000:]
    lines = run.stdout.splitlines()
    branch = next(line.split()[-1] for line in lines if line.startswith("branch:"))
    tip = git(repo, "show", f"{branch}:src/calc/ops.py")
    assert "import os" not in tip  # the builtin provider's safe fix landed


def test_starter_script_names_only_what_exists(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(LAYOUTS["module"])
    text = render_steps(detect(repo), "calc")
    assert "lukhas" not in text
    assert "ruff check calc.py" in text and "--cov=calc" in text
    assert "lint-imports" not in text  # no contracts to check


def test_what_init_writes_is_not_a_secrets_finding(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(LAYOUTS["flat"])
    assert harness("init", "--repo", str(repo), cwd=repo).returncode == 0
    proc = harness("gates", "--repo", str(repo), "--only", "secrets", "--json", cwd=repo)
    report = json.loads(proc.stdout)
    assert report["gates"]["secrets"]["findings"] == 0, proc.stdout


def test_init_writes_the_projects_line_length_and_where_it_came_from(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            **LAYOUTS["flat"],
            "setup.cfg": "[flake8]\nmax-line-length = 79\n",
            "pyproject.toml": '[project]\nname = "calc"\n\n[tool.black]\nline-length = 88\n',
        }
    )
    text = render_policy(detect(repo), repo, "calc")
    [line] = [x for x in text.splitlines() if x.startswith("line_length")]
    assert line.startswith(
        "line_length = 79   # from setup.cfg [flake8] max-line-length; black says 88"
    )
    (repo / "harness.toml").write_text(text)
    resolved = resolve_policy(repo)
    assert resolved.policy.gates.ruff.line_length == 79
    assert resolved.filled == {}  # written down, not detected again


@pytest.mark.parametrize(
    ("declared", "lines"),
    [
        (
            {"setup.cfg": "[metadata]\nname = calc\n[options]\npython_requires = ~= 3.5\n"},
            [
                'target_version = "py37"   # from setup.cfg [options] python_requires ~= 3.5; '
                "ruff sets none of its own",
                'python_floor = "3.5"   # older than ruff\'s lowest target: the builtin '
                "proposes no pyupgrade (UP) fix",
            ],
        ),
        (
            {"setup.py": "from setuptools import setup\nsetup(python_requires='>=3.8')\n"},
            [
                'target_version = "py38"   # from setup.py python_requires >=3.8; '
                "ruff sets none of its own",
                'python_floor = "3.8"   # the oldest Python the project supports',
            ],
        ),
    ],
    ids=["setup.cfg-3.5", "setup.py-3.8"],
)
def test_init_writes_the_projects_target_version_and_where_it_came_from(
    make_repo: Callable[..., Path], declared: dict[str, str], lines: list[str]
) -> None:
    repo = make_repo({**LAYOUTS["flat"], **declared})
    text = render_policy(detect(repo), repo, "calc")
    written = [x for x in text.splitlines() if x.startswith(("target_version", "python_floor"))]
    assert written == lines
    (repo / "harness.toml").write_text(text)
    resolved = resolve_policy(repo)
    assert resolved.policy.gates.ruff.target_version == lines[0].split('"')[1]
    assert resolved.filled == {}  # written down, not detected again
