"""run_gates: concurrency, the result cache (what re-runs and what does not), run_tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.gates.cache import cache_root
from harness.gates.models import GateResult, GateStatus
from harness.gates.runner import run_gates, run_tests
from harness.policy import Policy, parse_policy

from .conftest import git, other_gates_off

FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "import os\n\n\ndef f(x: int) -> int:\n    return x\n",
    "tests/test_mod.py": "from pkg.mod import f\n\n\ndef test_f():\n    assert f(1) == 1\n",
}


def _policy(python: str | None = None, extra: str = "") -> Policy:
    head = f'[gates]\npython = "{python}"\n' if python else ""
    return parse_policy(
        head
        + """
[gates.ruff]
paths = ["pkg"]
[gates.pytest]
cov = ["pkg"]
"""
        + other_gates_off("ruff", "pytest")
        + extra
    )


def _logging_python(tmp: Path) -> tuple[str, Path]:
    """An interpreter that records every tool it is asked to run, then is the real one."""
    log = tmp / "calls.log"
    script = tmp / "logging-python"
    script.write_text(f'#!/bin/sh\necho "$1 $2" >> "{log}"\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    return str(script), log


def _tool_calls(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if ln.startswith("-m ")]


def test_unchanged_tree_reruns_nothing_and_changes_rerun(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES)
    python, log = _logging_python(tmp_path)
    policy = _policy(python)
    seen: list[GateResult] = []

    first = run_gates(repo, policy, on_result=seen.append)
    assert list(first.results) == ["ruff", "pytest"]
    assert sorted(r.gate for r in seen) == ["pytest", "ruff"]
    assert first.results["ruff"].status == GateStatus.FAILED
    assert first.results["pytest"].status == GateStatus.PASSED
    assert not any(r.cached for r in first.results.values())
    # ruff runs from the harness's own env: only pytest goes through the target's python.
    assert _tool_calls(log) == ["-m pytest"]

    second = run_gates(repo, policy)
    assert all(r.cached for r in second.results.values())
    assert second.tree == first.tree
    assert second.results["ruff"].findings == first.results["ruff"].findings
    assert len(_tool_calls(log)) == 1  # nothing ran again

    # A dirty tree is hashed as it is: an untracked file is a new tree.
    (repo / "pkg/extra.py").write_text("import sys\n")
    third = run_gates(repo, policy)
    assert third.tree != first.tree
    assert not any(r.cached for r in third.results.values())
    assert len(third.results["ruff"].findings) == 2

    # A different gate config is a different key, for that gate only.
    fourth = run_gates(repo, _policy(python).model_copy(deep=True), only=["ruff"])
    assert fourth.results["ruff"].cached
    changed = _policy(python, "\n[regression]\nrerun_failed = 1\n")
    changed.gates.ruff.args = ["--select", "F401"]
    assert not run_gates(repo, changed, only=["ruff"]).results["ruff"].cached

    # use_cache=False always runs.
    assert not run_gates(repo, policy, use_cache=False).results["ruff"].cached
    assert git(repo, "status", "--porcelain") == "?? pkg/extra.py\n"


def test_cache_location_and_errors_are_not_cached(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(FILES)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"

    garbage = tmp_path / "garbage-python"
    garbage.write_text("#!/bin/sh\necho garbage\n")
    garbage.chmod(0o755)
    policy = _policy(str(garbage))
    first = run_gates(repo, policy, only=["pytest"])
    assert first.results["pytest"].status == GateStatus.ERROR
    again = run_gates(repo, policy, only=["pytest"])
    assert again.results["pytest"].status == GateStatus.ERROR
    assert not again.results["pytest"].cached
    assert not first.ok


def test_only_selects_and_rejects_unknown_names(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    run = run_gates(repo, _policy(), only=["mypy"])  # disabled in the policy, but asked for
    assert list(run.results) == ["mypy"]
    assert run.results["mypy"].status == GateStatus.PASSED
    with pytest.raises(UsageError, match="unknown gate 'lint'"):
        run_gates(repo, _policy(), only=["lint"])


def test_run_tests_reports_each_requested_id(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "tests/test_a.py": (
                "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert False\n\n\n"
                "def test_other():\n    pass\n"
            ),
        }
    )
    outcomes = run_tests(
        repo,
        _policy(),
        ["tests/test_a.py::test_ok", "tests/test_a.py::test_bad", "tests/test_a.py::test_gone"],
    )
    assert outcomes == {
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::test_bad": "failed",
        "tests/test_a.py::test_gone": "error",
    }
    assert run_tests(repo, _policy(), ["tests/test_a.py::test_other"]) == {
        "tests/test_a.py::test_other": "passed"
    }
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_run_tests_can_block_the_network(make_repo: Callable[..., Path]) -> None:
    net_test = (
        "import socket\n\n\n"
        "def test_connects():\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 9), timeout=1).close()\n"
        "    except OSError:\n"
        "        pass  # refused is fine: the attempt was allowed\n"
    )
    repo = make_repo({"tests/test_net.py": net_test})
    tid = "tests/test_net.py::test_connects"
    assert run_tests(repo, _policy(), [tid]) == {tid: "passed"}
    assert run_tests(repo, _policy(), [tid], block_network=True) == {tid: "failed"}


def test_all_six_gates_concurrently_leave_the_tree_untouched(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    linter = (
        "[importlinter]\nroot_package = pkg\n\n[importlinter:contract:one]\nname = tests apart\n"
        "type = forbidden\nsource_modules =\n    pkg.mod\nforbidden_modules =\n    pkg.other\n"
    )
    repo = make_repo({**FILES, "pkg/other.py": "Y = 2\n", ".importlinter": linter})
    policy = parse_policy(
        '[gates.ruff]\npaths = ["pkg"]\n[gates.mypy]\npaths = ["pkg"]\n'
        '[gates.pytest]\ncov = ["pkg"]\n[gates.bandit]\npaths = ["pkg"]\n'
    )
    run = run_gates(repo, policy)
    assert list(run.results) == ["ruff", "mypy", "pytest", "bandit", "imports", "secrets"]
    statuses = {name: r.status for name, r in run.results.items()}
    assert statuses == {
        "ruff": GateStatus.FAILED,  # unused `os`
        "mypy": GateStatus.PASSED,
        "pytest": GateStatus.PASSED,
        "bandit": GateStatus.PASSED,
        "imports": GateStatus.PASSED,
        "secrets": GateStatus.PASSED,
    }
    assert git(repo, "status", "--porcelain", "--ignored") == ""
    assert run_gates(repo, policy).tree == run.tree


def test_one_version_probe_serves_every_gate_until_the_env_changes(tmp_path: Path) -> None:
    import venv

    from harness.gates import common

    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    python = str(env / "bin" / "python")
    common._probe.cache_clear()
    first = common.dist_versions(python, ["ruff"])
    assert first.startswith("ruff missing (env ")
    assert common.dist_versions(python, ["mypy"]).endswith(first.split(" (", 1)[1])
    assert common._probe.cache_info().misses == 1
    # A distribution appears in the env: the next call must see it.
    site = next(Path(d) for d in common._site_dirs(python) if d.endswith("site-packages"))
    dist = site / "fakedist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedist\nVersion: 1.0\n")
    assert common.dist_versions(python, ["fakedist"]).startswith("fakedist 1.0 (env ")


def test_ignored_module_the_tools_read_is_in_the_cache_key(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            ".gitignore": "pkg/_gen.py\n.venv/\n*.xml\n",
            "pkg/__init__.py": "",
            "pkg/mod.py": "from pkg._gen import g\n\nX: int = g()\n",
        }
    )
    (repo / "pkg/_gen.py").write_text("def g() -> int:\n    return 1\n")
    policy = parse_policy('[gates.mypy]\npaths = ["pkg"]\n' + other_gates_off("mypy"))
    first = run_gates(repo, policy)
    assert first.results["mypy"].status == GateStatus.PASSED

    # Environments and reports are not read by the gate: they do not change the key.
    (repo / ".venv").mkdir()
    (repo / ".venv/site.py").write_text("x = 1\n")
    (repo / "pkg/report.xml").write_text("<r/>\n")
    assert run_gates(repo, policy).results["mypy"].cached

    (repo / "pkg/_gen.py").write_text("def g() -> str:\n    return 'generated'\n")
    after = run_gates(repo, policy)
    assert after.tree == first.tree  # git cannot see the change
    assert not after.results["mypy"].cached
    assert after.results["mypy"].status == GateStatus.FAILED
