"""The import-linter gate: contracts kept / broken, read from import-linter's own report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import GateConfig

from .conftest import git

CONFIG = """\
[importlinter]
root_package = app
include_external_packages = True

[importlinter:contract:layers]
name = High above low
type = layers
layers =
    app.high
    app.low

[importlinter:contract:nohttp]
name = No json in core
type = forbidden
source_modules =
    app.low
forbidden_modules =
    json
"""

FILES = {
    "app/__init__.py": "",
    "app/high/__init__.py": "",
    "app/high/view.py": "import app.low.core\n",
    "app/low/__init__.py": "",
    "app/low/core.py": "X = 1\n",
    "linter.ini": CONFIG,
}


def _ctx(repo: Path, python: str = sys.executable, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=python, cfg=GateConfig.model_validate(cfg))


def test_contracts_kept_then_broken(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    kept = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert kept.status == GateStatus.PASSED, kept.reason
    assert kept.tool == "import-linter"
    assert [(c.name, c.kept) for c in kept.contracts] == [
        ("High above low", True),
        ("No json in core", True),
    ]

    (repo / "app/low/core.py").write_text("import app.high.view\n\nX = 1\n")
    broken = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert broken.status == GateStatus.FAILED
    assert broken.reason == "1 contract(s) broken: High above low"
    [layers] = [c for c in broken.contracts if not c.kept]
    assert layers.details is not None
    assert "app.low.core -> app.high.view (l.1)" in layers.details
    assert git(repo, "status", "--porcelain", "--ignored") == " M app/low/core.py\n"


def test_missing_config_is_an_error_with_a_clear_reason(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({k: v for k, v in FILES.items() if k != "linter.ini"})
    configured = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert configured.status == GateStatus.ERROR
    assert configured.reason == "import-linter config not found: linter.ini"

    unconfigured = GATES["imports"].run(_ctx(repo))
    assert unconfigured.status == GateStatus.ERROR
    assert unconfigured.reason is not None
    assert "no import-linter configuration found" in unconfigured.reason


def test_invalid_contract_and_unimportable_package_are_errors(
    make_repo: Callable[..., Path],
) -> None:
    bad = CONFIG.replace("type = layers\nlayers =\n    app.high\n    app.low\n", "type = layers\n")
    repo = make_repo({**FILES, "linter.ini": bad})
    result = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None and "High above low" in result.reason

    gone = CONFIG.replace("root_package = app", "root_package = no_such_pkg")
    repo2 = make_repo({**FILES, "linter.ini": gone}, name="repo2")
    result = GATES["imports"].run(_ctx(repo2, config="linter.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None and "no_such_pkg" in result.reason


def test_garbage_interpreter_is_an_error(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage-python"
    garbage.write_text("#!/bin/sh\necho 'Contracts: 2 kept, 0 broken.'\n")
    garbage.chmod(0o755)
    repo = make_repo(FILES)
    result = GATES["imports"].run(_ctx(repo, python=str(garbage), config="linter.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason is not None and result.reason.startswith("import-linter wrote no report")
