"""The gates judge the repository's own code: a real editable install of the user's checkout in
the target's env must neither be measured nor go unnoticed.

One venv per session, built offline from the harness's own env: a `.pth` line reaches the
harness's site-packages (pip, setuptools, pytest, coverage), and pip installs three checkouts
into it in editable mode (PEP 660): a src layout (setuptools writes a `.pth` line putting the
checkout's `src/` on sys.path), a flat layout (setuptools installs a meta-path finder) and a
namespace package under `src/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import GateError, ImportLeak
from harness.gates.base import CommandGate
from harness.gates.common import GateContext
from harness.gates.imported import check_imports, measured_packages, require_worktree_imports
from harness.gates.models import GateStatus
from harness.gates.runner import run_gates
from harness.loop import Loop
from harness.policy import GateConfig, Policy, PytestGateConfig, parse_policy
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from tests.conftest import PINNED, other_gates_off, write_files
from tests.test_loop import options

SETUPTOOLS = (
    '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
)
WHERE = "def where():\n    return __file__\n"
# The failure message names the file imported, so a wrong copy shows in the gate's result.
TEST_WHERE = """from pathlib import Path

import {pkg}


def test_imports_the_checkout_under_test():
    here = Path.cwd().resolve()
    assert Path({pkg}.where()).resolve().is_relative_to(here), {pkg}.__file__
"""

SRC = {
    "pyproject.toml": SETUPTOOLS + '[project]\nname = "pkg"\nversion = "0.1"\n',
    "src/pkg/__init__.py": WHERE,
    "tests/test_where.py": TEST_WHERE.format(pkg="pkg"),
}
FLAT = {
    "pyproject.toml": SETUPTOOLS
    + '[project]\nname = "pkgb"\nversion = "0.1"\n[tool.setuptools]\npackages = ["pkgb"]\n',
    "pkgb/__init__.py": WHERE,
    "tests/test_where.py": TEST_WHERE.format(pkg="pkgb"),
}
NAMESPACE = {
    "pyproject.toml": SETUPTOOLS
    + '[project]\nname = "nsp"\nversion = "0.1"\n'
    + '[tool.setuptools.packages.find]\nwhere = ["src"]\nnamespaces = true\n',
    "src/nsp/mod.py": WHERE,
    "tests/test_mod.py": "from nsp import mod\n\n\ndef test_mod():\n    assert mod.where()\n",
}


@dataclass(frozen=True)
class Editable:
    python: str
    src: Path  # the checkouts installed in editable mode
    flat: Path
    namespace: Path


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, **PINNED, "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _checkout(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    write_files(root, files)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "i")
    return root


@pytest.fixture(scope="session")
def editable(tmp_path_factory: pytest.TempPathFactory) -> Editable:
    base = tmp_path_factory.mktemp("editable")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # --system-site-packages would reach the base interpreter's, not the harness venv's.
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "harness_env.pth").write_text("".join(f"{d}\n" for d in ours))
    made = Editable(
        python=str(python),
        src=_checkout(base / "src-layout", SRC),
        flat=_checkout(base / "flat-layout", FLAT),
        namespace=_checkout(base / "namespace", NAMESPACE),
    )
    pip = [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation"]
    pip += ["--no-deps", "-e", str(made.src), "-e", str(made.flat), "-e", str(made.namespace)]
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(pip, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return made


def _policy(python: str, pythonpath: list[str], cov: str, *gates: str) -> Policy:
    keep = gates or ("pytest",)
    return parse_policy(
        f"[gates]\npython = {json.dumps(python)}\npythonpath = {json.dumps(pythonpath)}\n"
        f'[gates.pytest]\ncov = ["{cov}"]\nargs = ["-q"]\n' + other_gates_off(*keep)
    )


def _worktree(checkout: Path, where: Path) -> Path:
    _git(checkout, "worktree", "add", "-q", "--detach", str(where))
    return where


def _origin(python: str, name: str, cwd: Path) -> str:
    probe = f"import importlib.util as u; print(u.find_spec({name!r}).origin)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [python, "-c", probe], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_editable_installs_are_real(editable: Editable, tmp_path: Path) -> None:
    # Outside any checkout, the venv imports each package from the checkout it was built from:
    # a `.pth` line for the src layout, setuptools' finder for the flat one.
    assert _origin(editable.python, "pkg", tmp_path) == str(editable.src / "src/pkg/__init__.py")
    assert _origin(editable.python, "pkgb", tmp_path) == str(editable.flat / "pkgb/__init__.py")
    site = Path(
        subprocess.run(
            [editable.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert (site / "__editable__.pkg-0.1.pth").read_text().strip() == str(editable.src / "src")
    assert any(site.glob("__editable___pkgb_0_1_finder.py"))


def test_the_pytest_gate_measures_a_flat_layouts_worktree(
    editable: Editable, tmp_path: Path
) -> None:
    # The src layout's counterpart is the corrected run below.
    wt = _worktree(editable.flat, tmp_path / "wt")
    policy = _policy(editable.python, ["."], "pkgb")
    assert check_imports(wt, policy, ["pkgb"]) == []
    result = run_gates(wt, policy, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.PASSED, result.reason
    assert result.coverage is not None
    # Repo-relative keys: the files measured are the worktree's (the checkout's stay absolute).
    assert list(result.coverage.per_file) == ["pkgb/__init__.py"]


def test_without_its_pythonpath_a_src_layout_measures_the_checkout_and_the_check_stops(
    editable: Editable, tmp_path: Path
) -> None:
    wt = _worktree(editable.src, tmp_path / "wt")
    policy = _policy(editable.python, [], "pkg")
    # The failure this check exists for: the gate judges the user's checkout.
    result = run_gates(wt, policy, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.FAILED
    assert str(editable.src / "src/pkg/__init__.py") in (result.tests[0].message or "")
    assert result.coverage is not None
    assert list(result.coverage.per_file) == [str(editable.src / "src/pkg/__init__.py")]

    [problem] = check_imports(wt, policy, ["pkg"])
    assert (problem.kind, problem.fix) == ("outside", ("src",))
    with pytest.raises(ImportLeak) as caught:
        require_worktree_imports(wt, policy, ["pkg"], correct=False)
    assert caught.value.exit_code == 2
    line = str(caught.value)
    assert "\n" not in line
    assert line == (
        f"package pkg imports from {editable.src}/src/pkg/__init__.py, outside {wt}: the gates "
        'would judge that copy; set [gates] pythonpath = ["src"]'
    )
    fixed = require_worktree_imports(wt, policy, ["pkg"])
    assert fixed.corrected == ["src"] and fixed.problems == []
    result = run_gates(wt, fixed.policy, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.PASSED
    assert result.coverage is not None and list(result.coverage.per_file) == ["src/pkg/__init__.py"]


def test_a_flat_layout_leaks_only_when_the_cwd_is_not_on_the_path(
    editable: Editable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = _worktree(editable.flat, tmp_path / "wt")
    policy = _policy(editable.python, [], "pkgb")
    # `python -m pytest` puts its cwd, the repository, before the finder of the editable install.
    assert check_imports(wt, policy, ["pkgb"]) == []
    # Without that (PYTHONSAFEPATH in the user's env) the finder wins, and `.` fixes it.
    monkeypatch.setenv("PYTHONSAFEPATH", "1")
    [problem] = check_imports(wt, policy, ["pkgb"])
    assert problem.where[0] == str(editable.flat / "pkgb/__init__.py")
    assert problem.fix == (".",)
    with pytest.raises(ImportLeak, match=r'pythonpath = \["\."\]$') as caught:
        require_worktree_imports(wt, policy, ["pkgb"], correct=False)
    assert caught.value.exit_code == 2
    result = run_gates(wt, policy, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.FAILED  # the leak is real: the checkout was imported
    fixed = require_worktree_imports(wt, policy, ["pkgb"]).policy
    assert fixed.gates.pythonpath == ["."]
    result = run_gates(wt, fixed, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.PASSED
    assert result.coverage is not None and list(result.coverage.per_file) == ["pkgb/__init__.py"]


STEPS = """# STEPS test

## BLOCK 1 — Tests

- Keep the tests green.

**Gate:**
```bash
pytest -q
```
"""


def test_a_run_corrects_the_pythonpath_and_judges_its_worktree(
    editable: Editable, tmp_path: Path
) -> None:
    policy = _policy(editable.python, [], "pkg")
    opts = options(editable.src, ScriptedProvider.from_responses([]), steps=STEPS)
    opts.policy, opts.runs_dir = policy, tmp_path / "runs"
    messages: list[str] = []
    opts.progress = messages.append
    loop = Loop(opts)
    loop.run()
    assert 'note: [gates] pythonpath = ["src"] for this run' in "\n".join(messages)
    events = read_events(tmp_path / "runs" / loop.run_id)
    [checked] = [e for e in events if e["kind"] == "imports_checked"]
    assert checked["pythonpath"] == ["src"] and checked["corrected"] is True
    gates = [e for e in events if e["kind"] == "gates"]
    assert gates
    for event in gates:
        pytest_result = event["results"]["pytest"]
        assert pytest_result["status"] == "passed"
        assert list(pytest_result["coverage"]["per_file"]) == ["src/pkg/__init__.py"]


def test_a_run_stops_with_exit_2_when_another_copy_cannot_be_kept_out(
    editable: Editable, tmp_path: Path
) -> None:
    # A namespace package spans every root that has it: the checkout's half stays importable.
    policy = _policy(editable.python, ["src"], "nsp")
    opts = options(editable.namespace, ScriptedProvider.from_responses([]), steps=STEPS)
    opts.policy, opts.runs_dir = policy, tmp_path / "runs"
    loop = Loop(opts)
    with pytest.raises(ImportLeak) as caught:
        loop.run()
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("namespace package nsp spans ")
    assert f"and {editable.namespace}/src/nsp:" in str(caught.value)
    events = read_events(tmp_path / "runs" / loop.run_id)
    assert not [e for e in events if e["kind"] == "gates"]  # stopped before any gate ran
    assert events[-1] == {**events[-1], "kind": "run_finished", "exit_code": 2}


def test_harness_gates_warns_when_the_checkout_imports_from_elsewhere(
    editable: Editable, tmp_path: Path
) -> None:
    wt = _worktree(editable.src, tmp_path / "wt")
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        f'[gates]\npython = "{editable.python}"\npythonpath = []\n'
        '[gates.pytest]\ncov = ["pkg"]\n' + other_gates_off("pytest")
    )
    argv = [sys.executable, "-m", "harness", "gates", "--repo", str(wt)]
    proc = subprocess.run(
        [*argv, "--policy", str(policy_file), "--no-cache"], capture_output=True, text=True
    )
    assert proc.returncode == 1  # the checkout's copy fails the worktree's own test
    expected = f"warning: package pkg imports from {editable.src}/src/pkg/__init__.py"
    assert expected in proc.stderr
    quiet = subprocess.run(
        [*argv, "--policy", str(policy_file), "--only", "ruff", "--no-cache"],
        capture_output=True,
        text=True,
    )
    assert "warning: package" not in quiet.stderr  # nothing that imports the code runs


def test_a_package_that_is_not_importable_is_reported_and_corrected_when_it_can_be(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"src/pkg/__init__.py": "", "tests/test_x.py": ""})
    policy = _policy(sys.executable, [], "pkg")
    assert measured_packages(repo, policy) == ["pkg"]
    [problem] = check_imports(repo, policy, ["pkg"])
    assert (problem.package, problem.kind, problem.fix) == ("pkg", "missing", ("src",))
    assert problem.line().startswith(f"package pkg is not importable by {sys.executable}")
    fixed = require_worktree_imports(repo, policy, ["pkg"])
    assert fixed.corrected == ["src"] and fixed.problems == []
    # Nowhere in the repository: a warning, never a stop (the pytest gate says what it breaks).
    kept = require_worktree_imports(repo, policy, ["nosuchpackage"])
    assert kept.corrected is None and [p.kind for p in kept.problems] == ["missing"]
    assert kept.notes()[0].startswith("warning: package nosuchpackage is not importable")
    # With no --cov targets, the packages are those detected.
    no_cov = policy.model_copy(
        update={"gates": policy.gates.model_copy(update={"pytest": PytestGateConfig()})}
    )
    assert measured_packages(repo, no_cov) == ["pkg"]


def test_command_gate_imports_the_repos_code_through_its_pythonpath(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"src/pkg/__init__.py": "VALUE = 1\n"})
    command = f"{sys.executable} -c 'import pkg; assert pkg.VALUE == 1'"
    with_path = GateContext(repo=repo, cfg=GateConfig(timeout=30), pythonpath=("src",))
    assert CommandGate("imp", command).run(with_path).status == GateStatus.PASSED
    without = GateContext(repo=repo, cfg=GateConfig(timeout=30))
    failed = CommandGate("imp", command).run(without)
    assert failed.status == GateStatus.FAILED
    assert "No module named 'pkg'" in (failed.reason or "")


def test_an_interpreter_that_cannot_be_asked_is_a_warning_for_the_gates_to_confirm(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"pkg/__init__.py": ""})
    policy = _policy(str(tmp_path / "no-such-python"), [], "pkg")
    with pytest.raises(GateError, match=r"^could not ask .*no-such-python where the packages"):
        check_imports(repo, policy, ["pkg"])
    found = require_worktree_imports(repo, policy, ["pkg"])
    assert found.policy is policy and found.problems == []
    assert found.notes()[0].startswith("warning: could not ask ")
    result = run_gates(repo, policy, only=["pytest"], use_cache=False).results["pytest"]
    assert result.status == GateStatus.ERROR
