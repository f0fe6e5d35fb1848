"""The ruff gate runs real ruff on small repos and keeps ruff's own fix suggestions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import ruff as ruff_gate
from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.gates.runner import context_for
from harness.policy import GateConfig, RuffGateConfig, resolve_policy

from .conftest import git

SRC = "import os\nimport sys\n\n\ndef f():\n    return sys.argv\n"


def _ctx(repo: Path, python: str = sys.executable, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=python, cfg=GateConfig.model_validate(cfg))


def test_findings_carry_ruffs_fix_and_match_ruff_itself(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": SRC})
    result = GATES["ruff"].run(_ctx(repo, paths=["pkg"]))

    assert result.status == GateStatus.FAILED
    assert result.tool == "ruff"
    [finding] = result.findings
    assert (finding.code, finding.path, finding.line) == ("F401", "pkg/mod.py", 1)
    assert "`os` imported but unused" in finding.message
    # Exactly ruff's own suggestion: applicability and edits with row/column as ruff gives them.
    by_hand = json.loads(
        subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--output-format", "json", "--no-cache", "pkg"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert finding.fix == by_hand[0]["fix"]
    assert finding.fix is not None and finding.fix["applicability"] == "safe"
    edits = finding.fix["edits"]
    assert isinstance(edits, list)
    assert edits[0]["location"] == {"row": 1, "column": 1}


def test_fingerprints_survive_line_shifts(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": SRC})
    before = GATES["ruff"].run(_ctx(repo, paths=["pkg"]))
    (repo / "pkg/mod.py").write_text('"""Doc."""\n\n# shifted\n' + SRC)
    after = GATES["ruff"].run(_ctx(repo, paths=["pkg"]))

    assert [f.line for f in before.findings] == [1]
    assert [f.line for f in after.findings] == [4]
    assert [f.fingerprint for f in before.findings] == [f.fingerprint for f in after.findings]


def test_whole_file_findings_survive_a_line_added_at_the_top(
    make_repo: Callable[..., Path],
) -> None:
    # Seen on more-itertools 10.1.0 (EXE002): a file-level finding sits at 1:1 whatever line 1 is.
    repo = make_repo({"mod.py": "X = 1\n"})
    before = GATES["ruff"].run(_ctx(repo, paths=["mod.py"], args=["--select", "D100,F401"]))
    (repo / "mod.py").write_text("import os\nX = 1\n")
    after = GATES["ruff"].run(_ctx(repo, paths=["mod.py"], args=["--select", "D100,F401"]))

    assert [(f.code, f.line) for f in before.findings] == [("D100", 1)]
    assert sorted((f.code, f.line) for f in after.findings) == [("D100", 1), ("F401", 1)]
    [d100] = [f for f in after.findings if f.code == "D100"]
    assert d100.fingerprint == before.findings[0].fingerprint
    # An ordinary finding on line 1 still takes line 1 as its context.
    [f401] = [f for f in after.findings if f.code == "F401"]
    (repo / "mod.py").write_text("import os  # moved\nX = 1\n")
    again = GATES["ruff"].run(_ctx(repo, paths=["mod.py"], args=["--select", "F401"]))
    assert [f.fingerprint for f in again.findings] != [f401.fingerprint]


def test_uses_the_targets_own_config_and_passes_when_clean(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pyproject.toml": '[tool.ruff.lint]\nselect = ["E711"]\n',
            "mod.py": SRC + "\n\ndef g(a):\n    return a == None\n",
        }
    )
    result = GATES["ruff"].run(_ctx(repo))
    assert [f.code for f in result.findings] == ["E711"]  # F401 not selected by the target

    (repo / "mod.py").write_text(SRC)
    assert GATES["ruff"].run(_ctx(repo)).status == GateStatus.PASSED


def test_leaves_no_cache_in_the_target(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"mod.py": SRC})
    GATES["ruff"].run(_ctx(repo))
    assert git(repo, "status", "--porcelain", "--ignored") == ""


def test_unparsable_output_is_refused(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    for text, complaint in [
        ("this is not json at all", "not JSON"),
        ('{"diagnostics": []}', "expected a JSON list"),
        ('[{"code": "F401"}]', "unexpected diagnostic"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            ruff_gate.parse(text, ctx)


def test_missing_config_is_an_error_and_the_targets_python_is_not_asked_for_ruff(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"mod.py": SRC})
    result = GATES["ruff"].run(_ctx(repo, config="ruff-custom.toml"))
    assert result.status == GateStatus.ERROR
    assert result.reason == "ruff config not found: ruff-custom.toml"

    # An interpreter without ruff: ruff still runs, from the harness's env.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = str(tmp_path / "bare" / "bin" / "python")
    result = GATES["ruff"].run(_ctx(repo, python=bare))
    assert result.command[0] == ruff_gate.ruff_command()[0] != bare
    assert result.status == GateStatus.FAILED
    assert result.findings == GATES["ruff"].run(_ctx(repo)).findings


def test_the_gate_runs_the_ruff_binary_that_python_m_ruff_runs() -> None:
    # `python -m ruff` only starts an interpreter to exec ruff's binary: the gate execs it itself.
    [exe] = ruff_gate.ruff_command()
    assert Path(exe).name.startswith("ruff")
    direct = subprocess.run([exe, "version"], capture_output=True, text=True, check=True)
    module = subprocess.run(
        [sys.executable, "-m", "ruff", "version"], capture_output=True, text=True, check=True
    )
    assert direct.stdout == module.stdout != ""


def test_a_bad_ruff_config_is_an_error_not_a_pass(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pyproject.toml": "[tool.ruff]\nno_such_option = 1\n", "mod.py": "x = 1\n"})
    result = GATES["ruff"].run(_ctx(repo))
    assert result.status == GateStatus.ERROR
    assert result.exit_code == 2


def test_a_missing_path_is_an_error_not_a_finding(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/mod.py": SRC})
    result = GATES["ruff"].run(_ctx(repo, paths=["pkg", "lukhas"]))
    assert result.status == GateStatus.ERROR
    assert result.reason == "path not found: lukhas"
    assert result.findings == []


# The project's line length (its flake8's or black's) where ruff sets none of its own.
LONG = "X = '" + "a" * 79 + "'\n"  # 85 characters
FLAKE8_79 = "[flake8]\nmax-line-length = 79\n"
SELECT_E501 = '[tool.ruff.lint]\nselect = ["E501"]\n'


@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({"setup.cfg": FLAKE8_79, "pyproject.toml": SELECT_E501}, ["E501 Line too long (85 > 79)"]),
        (
            {"pyproject.toml": SELECT_E501 + "[tool.black]\nline-length = 79\n"},
            ["E501 Line too long (85 > 79)"],
        ),
        # ruff's own line length is left alone.
        (
            {
                "setup.cfg": FLAKE8_79,
                "pyproject.toml": "[tool.ruff]\nline-length = 100\n" + SELECT_E501,
            },
            [],
        ),
    ],
    ids=["flake8", "black", "ruffs-own"],
)
def test_the_projects_line_length_reaches_ruff(
    make_repo: Callable[..., Path], files: dict[str, str], found: list[str]
) -> None:
    repo = make_repo({**files, "m.py": LONG})
    policy = resolve_policy(repo).policy
    result = GATES["ruff"].run(context_for(repo, policy, policy.gates.ruff))
    assert [f"{f.code} {f.message}" for f in result.findings] == found
    assert ("--line-length" in result.command) == bool(found)


def test_a_line_length_ruff_is_given_otherwise_is_not_given_twice(tmp_path: Path) -> None:
    (tmp_path / "own.toml").write_text("line-length = 100\n")
    (tmp_path / "plain.toml").write_text('[lint]\nselect = ["E"]\n')

    def argv(**cfg: object) -> list[str]:
        ctx = GateContext(
            repo=tmp_path, cfg=RuffGateConfig.model_validate({"line_length": 79, **cfg})
        )
        return ruff_gate.check_argv(ctx)[len(ruff_gate.ruff_command()) :]

    assert argv()[-2:] == ["--line-length", "79"]
    assert argv(config="plain.toml")[-4:] == [
        "--config",
        str(tmp_path / "plain.toml"),
        "--line-length",
        "79",
    ]
    # A config file the policy names with a length of its own, or the user's own option.
    assert "--line-length" not in argv(config="own.toml")
    assert argv(args=["--line-length", "120"]).count("--line-length") == 1
    assert "--line-length" not in argv(args=["--config", "line-length = 120"])
    # A fixer's own --line-length or --config is not given again either.
    ctx = GateContext(repo=tmp_path, cfg=RuffGateConfig(line_length=79, config="plain.toml"))
    assert ruff_gate.settings_argv(ctx, given=["--line-length", "90"]) == [
        "--config",
        str(tmp_path / "plain.toml"),
    ]
    assert ruff_gate.settings_argv(ctx, given=["--config", "x.toml"]) == []


# The project's Python floor (setup.cfg, setup.py) where ruff sets no target version of its own.
OUTDATED_ON_38 = "import sys\n\nif sys.version_info >= (3, 8):\n    X = 1\nelse:\n    X = 2\n"
SELECT_UP036 = '[tool.ruff.lint]\nselect = ["UP036"]\n'
OWN_PY38 = 'target-version = "py38"\n[lint]\nselect = ["UP036"]\n'


@pytest.mark.parametrize(
    ("files", "target"),
    [
        # cachetools 4.2.4: ruff's default target calls the 3.5-3.7 branch outdated.
        ({"setup.cfg": "[options]\npython_requires = ~= 3.5\n"}, "py37"),
        ({"setup.cfg": "[options]\npython_requires = >=3.8\n"}, "py38"),
        # ruff's own target (py38) is left alone: the branch is outdated for it.
        ({"setup.cfg": "[options]\npython_requires = >=3.5\n", "ruff.toml": OWN_PY38}, ""),
        ({}, ""),
    ],
    ids=["floor-3.5", "floor-3.8", "ruffs-own-config", "undeclared"],
)
def test_the_projects_python_floor_reaches_ruff(
    make_repo: Callable[..., Path], files: dict[str, str], target: str
) -> None:
    pyproject = {} if "ruff.toml" in files else {"pyproject.toml": SELECT_UP036}
    repo = make_repo({**pyproject, **files, "m.py": OUTDATED_ON_38})
    policy = resolve_policy(repo).policy
    result = GATES["ruff"].run(context_for(repo, policy, policy.gates.ruff))
    assert result.status != GateStatus.ERROR, result.reason
    assert [f.code for f in result.findings] == ([] if target == "py37" else ["UP036"])
    given = result.command[result.command.index("--target-version") + 1] if target else ""
    assert ("--target-version" in result.command, given) == (bool(target), target)


def test_a_target_version_ruff_is_given_otherwise_is_not_given_twice(tmp_path: Path) -> None:
    (tmp_path / "own.toml").write_text('target-version = "py310"\n')
    (tmp_path / "plain.toml").write_text('[lint]\nselect = ["E"]\n')

    def argv(**cfg: object) -> list[str]:
        ctx = GateContext(
            repo=tmp_path, cfg=RuffGateConfig.model_validate({"target_version": "py37", **cfg})
        )
        return ruff_gate.check_argv(ctx)[len(ruff_gate.ruff_command()) :]

    assert argv()[-2:] == ["--target-version", "py37"]
    assert argv(config="plain.toml", line_length=79)[-6:] == [
        "--config",
        str(tmp_path / "plain.toml"),
        "--line-length",
        "79",
        "--target-version",
        "py37",
    ]
    # A config file the policy names with a target of its own, or the user's own option.
    assert "--target-version" not in argv(config="own.toml")
    assert argv(args=["--target-version", "py311"]).count("--target-version") == 1
    assert "--target-version" not in argv(args=["--config", "target-version = 'py311'"])
    # A fixer's own --target-version or --config is not given again either.
    ctx = GateContext(repo=tmp_path, cfg=RuffGateConfig(target_version="py37"))
    assert ruff_gate.settings_argv(ctx, given=["--target-version", "py39"]) == []
    assert ruff_gate.settings_argv(ctx, given=["--config", "x.toml"]) == []
    assert ruff_gate.settings_argv(ctx) == ["--target-version", "py37"]
