"""The shipped example project has the intended shape, measured with the real tools."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from harness.proc import ProcResult, run
from harness.steps import load_steps

from .conftest import git

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "harness" / "example"
PY = sys.executable
BIN = Path(sys.executable).parent
CACHES = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".coverage", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # An outer `pytest --cov` exports these; the inner pytest must measure only the example.
    for name in [n for n in os.environ if n.startswith(("COV_CORE_", "PYTEST_"))]:
        monkeypatch.delenv(name)
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=CACHES)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example")
    return root


def tool(repo: Path, *argv: str) -> ProcResult:
    res = run(argv, repo, timeout=600)
    assert not res.missing and not res.timed_out, res.tail
    return res


def ruff_findings(repo: Path) -> list[dict[str, Any]]:
    res = tool(repo, PY, "-m", "ruff", "check", "lukhas", "--output-format", "json")
    assert res.returncode == 1, res.tail
    findings: list[dict[str, Any]] = json.loads(res.stdout)
    return findings


def test_every_gate_has_the_intended_shape(repo: Path) -> None:
    findings = ruff_findings(repo)
    files = {Path(f["filename"]).relative_to(repo).as_posix() for f in findings}
    assert len(files) >= 4
    safe = [f for f in findings if (f.get("fix") or {}).get("applicability") == "safe"]
    unfixable = [f for f in findings if not f.get("fix")]
    assert len(safe) >= 40 and len(unfixable) >= 10
    assert {"F401", "I001", "UP006", "F541"} <= {f["code"] for f in safe}
    assert {"DTZ003", "ARG002", "RUF006"} <= {f["code"] for f in unfixable}
    # Some files need more than 20 changed lines of safe fixes: one patch per file cannot do it.
    touched: dict[str, set[int]] = defaultdict(set)
    for f in safe:
        for edit in f["fix"]["edits"]:
            rows = range(edit["location"]["row"], edit["end_location"]["row"] + 1)
            touched[f["filename"]].update(rows)
    assert sum(len(rows) > 20 for rows in touched.values()) >= 2

    mypy = tool(repo, PY, "-m", "mypy", "lukhas")
    assert mypy.returncode == 1, mypy.tail
    errors = [line for line in mypy.stdout.splitlines() if ": error:" in line]
    assert len(errors) >= 5
    assert len({line.split(":")[0] for line in errors}) >= 3

    cov_json = repo.parent / "coverage.json"
    tests = tool(
        repo,
        PY,
        "-m",
        "pytest",
        "--cov=lukhas",
        "--cov-config=.coveragerc",
        f"--cov-report=json:{cov_json}",
        "-q",
    )
    assert tests.returncode == 0, tests.tail
    assert "5 passed" in tests.stdout
    percent = json.loads(cov_json.read_text())["totals"]["percent_covered"]
    assert 30 <= percent < 60

    bandit = tool(repo, str(BIN / "bandit"), "-r", "lukhas", "-c", "bandit.yaml", "-f", "json")
    assert bandit.returncode == 1, bandit.tail
    issues = {r["test_id"] for r in json.loads(bandit.stdout)["results"]}
    assert {"B324", "B101", "B603"} <= issues

    imports = tool(repo, str(BIN / "lint-imports"), "--config=linter.ini")
    assert imports.returncode == 0, imports.tail
    assert "2 kept, 0 broken" in imports.stdout

    secrets = tool(repo, PY, "-m", "detect_secrets", "scan")
    assert secrets.returncode == 0, secrets.tail
    assert json.loads(secrets.stdout)["results"] == {}


def test_safe_fixes_keep_tests_and_contracts(repo: Path) -> None:
    before = len(ruff_findings(repo))
    tool(repo, PY, "-m", "ruff", "check", "--fix", "lukhas")
    after = len(ruff_findings(repo))
    assert 0 < after < before / 2
    assert tool(repo, PY, "-m", "pytest", "-q").returncode == 0
    assert tool(repo, str(BIN / "lint-imports"), "--config=linter.ini").returncode == 0


def test_repo_is_clean_after_the_tools_ran(repo: Path) -> None:
    tool(repo, PY, "-m", "pytest", "--cov=lukhas", "--cov-config=.coveragerc", "-q")
    tool(repo, PY, "-m", "mypy", "lukhas")
    assert git(repo, "status", "--porcelain") == ""


def test_shipped_script_and_progress_log() -> None:
    script = load_steps(EXAMPLE / "STEPS_4b.md")
    assert script.repaired_encoding
    assert script.progress_log is not None
    assert (EXAMPLE / script.progress_log).is_file()
    for name in (".coveragerc", "bandit.yaml", "linter.ini"):
        assert (EXAMPLE / name).is_file()
