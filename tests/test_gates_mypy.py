"""The mypy gate: JSON output parsed into findings; the text fallback parses the same run alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import mypy as mypy_gate
from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import GateConfig

from .conftest import git

BAD = "def f(x: int) -> str:\n    return x\n\n\ndef g() -> None:\n    f('a')\n"


def _ctx(repo: Path, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=sys.executable, cfg=GateConfig.model_validate(cfg))


def test_errors_by_code_and_file_and_text_fallback_agrees(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": BAD, "pkg/ok.py": "X: int = 1\n"})
    result = GATES["mypy"].run(_ctx(repo, paths=["pkg"]))

    assert result.status == GateStatus.FAILED
    got = sorted((f.path, f.line, f.code) for f in result.findings)
    assert got == [("pkg/mod.py", 2, "return-value"), ("pkg/mod.py", 6, "arg-type")]
    assert "--output" in result.command

    # The same mypy in its text format, parsed by the fallback parser, gives the same findings.
    text = subprocess.run(
        [sys.executable, "-m", "mypy", *mypy_gate._TEXT_FLAGS, "--cache-dir", "/dev/null", "pkg"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stdout
    parsed = mypy_gate.parse_text(text, _ctx(repo))
    assert [(f.path, f.line, f.code, f.message, f.fingerprint) for f in parsed] == [
        (f.path, f.line, f.code, f.message, f.fingerprint) for f in result.findings
    ]
    assert git(repo, "status", "--porcelain", "--ignored") == ""  # no .mypy_cache


def test_clean_code_passes_with_the_targets_config(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "mypy.ini": "[mypy]\nstrict = True\n",
            "mod.py": "def f(x):\n    return x\n",
        }
    )
    strict = GATES["mypy"].run(_ctx(repo, paths=["mod.py"]))
    assert [f.code for f in strict.findings] == ["no-untyped-def"]

    (repo / "mod.py").write_text("def f(x: int) -> int:\n    return x\n")
    assert GATES["mypy"].run(_ctx(repo, paths=["mod.py"])).status == GateStatus.PASSED


def test_blocking_error_is_a_gate_error_with_the_reason(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"mod.py": "def f(:\n"})
    result = GATES["mypy"].run(_ctx(repo, paths=["mod.py"]))
    assert result.status == GateStatus.ERROR
    assert result.exit_code == 2
    assert result.reason is not None and result.reason.startswith("mypy could not check (exit 2)")
    assert "mod.py:1" in result.reason


def test_missing_path_and_missing_config_are_errors(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"mod.py": "X = 1\n"})
    result = GATES["mypy"].run(_ctx(repo, paths=["nope.py"]))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None and "nope.py" in result.reason

    result = GATES["mypy"].run(_ctx(repo, config="custom-mypy.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason == "mypy config not found: custom-mypy.ini"


def test_timeout_is_an_error(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    repo = make_repo({"mod.py": "X = 1\n"})
    ctx = GateContext(repo=repo, python=str(slow), cfg=GateConfig(timeout=0.3))
    result = GATES["mypy"].run(ctx)
    assert result.status == GateStatus.ERROR
    assert result.reason == "mypy timed out after 0.3s"


def test_unused_config_section_note_is_not_an_error(make_repo: Callable[..., Path]) -> None:
    # Seen on click 8.1.7 and itsdangerous 2.1.2: warn_unused_configs prints its note as text
    # even in JSON mode, after the JSON lines.
    repo = make_repo(
        {
            "setup.cfg": "[mypy]\nwarn_unused_configs = True\n\n[mypy-nothing.x]\nstrict = True\n",
            "pkg/__init__.py": "",
            "pkg/mod.py": BAD,
        }
    )
    result = GATES["mypy"].run(_ctx(repo, paths=["pkg"]))
    assert result.status == GateStatus.FAILED, result.reason
    assert sorted(f.code for f in result.findings) == ["arg-type", "return-value"]

    (repo / "pkg/mod.py").write_text("X: int = 1\n")
    assert GATES["mypy"].run(_ctx(repo, paths=["pkg"])).status == GateStatus.PASSED


def test_text_error_line_in_json_output_is_unparsable(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"mod.py": "X = 1\n"})
    with pytest.raises(ValueError, match="unexpected line"):
        mypy_gate.parse_json("mod.py:1: error: Something  [misc]\n", _ctx(repo))
    assert mypy_gate.parse_json("setup.cfg: note: unused section(s): [mypy-x]\n", _ctx(repo)) == []


def test_imports_resolve_in_the_targets_env_and_the_repos_own_copy_wins(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    # Repo A's `pkg` is what the target env has installed (a .pth, as an editable install);
    # repo B, the one checked, has its own copy whose `double` returns str.
    user = {"tests/test_x.py": "from pkg import double\n\ny: int = double(2)\n"}
    repo_a = make_repo(
        {
            **user,
            "src/pkg/__init__.py": "def double(x: int) -> int:\n    return x * 2\n",
            "src/pkg/py.typed": "",
        },
        name="a",
    )
    repo_b = make_repo(
        {**user, "src/pkg/__init__.py": "def double(x: int) -> str:\n    return str(x * 2)\n"},
        name="b",
    )
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    [site] = list((tmp_path / "env" / "lib").glob("python3*/site-packages"))
    (site / "checkout_a.pth").write_text(f"{repo_a / 'src'}\n")
    target = str(tmp_path / "env" / "bin" / "python")

    def run(python: str, pythonpath: tuple[str, ...]) -> list[str]:
        cfg = GateConfig(paths=["tests"])
        ctx = GateContext(repo=repo_b, python=python, cfg=cfg, pythonpath=pythonpath)
        result = GATES["mypy"].run(ctx)
        assert result.status != GateStatus.ERROR, result.reason
        return [f.code for f in result.findings]

    # mypy itself is the harness's; `pkg` is found where the target's interpreter finds it.
    assert run(sys.executable, ()) == ["import-not-found"]
    assert run(target, ()) == []  # repo A's copy, through the target env
    assert run(target, ("src",)) == ["assignment"]  # repo B's own copy wins
