"""The import-linter gate: `lint-imports` run for real, its text report parsed strictly."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import imports
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


def _ctx(
    repo: Path, python: str = sys.executable, pythonpath: tuple[str, ...] = (), **cfg: object
) -> GateContext:
    return GateContext(
        repo=repo, python=python, cfg=GateConfig.model_validate(cfg), pythonpath=pythonpath
    )


def test_contracts_kept_then_broken_with_details(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    kept = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert kept.status == GateStatus.PASSED, kept.reason
    assert kept.tool == "import-linter"
    assert kept.command[0].endswith("lint-imports")
    assert [(c.name, c.kept, c.details) for c in kept.contracts] == [
        ("High above low", True, None),
        ("No json in core", True, None),
    ]

    (repo / "app/low/core.py").write_text("import json\nimport app.high.view\n\nX = 1\n")
    broken = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert broken.status == GateStatus.FAILED
    assert broken.exit_code == 1
    assert broken.reason == "2 contract(s) broken: High above low, No json in core"
    layers, nojson = broken.contracts
    assert layers.details == (
        "app.low is not allowed to import app.high:\n\n- app.low.core -> app.high.view (l.2)"
    )
    assert nojson.details is not None and "app.low.core -> json (l.1)" in nojson.details
    # No cache, no bytecode: the target's tree is as it was.
    assert git(repo, "status", "--porcelain", "--ignored") == " M app/low/core.py\n"


def test_a_long_contract_name_is_not_wrapped(make_repo: Callable[..., Path]) -> None:
    name = "High above low, and a name long enough that a terminal of 80 columns would wrap it"
    repo = make_repo({**FILES, "linter.ini": CONFIG.replace("High above low", name)})
    result = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert result.status == GateStatus.PASSED, result.reason
    assert result.contracts[0].name == name


def test_missing_config_is_an_error_with_a_clear_reason(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({k: v for k, v in FILES.items() if k != "linter.ini"})
    configured = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert configured.status == GateStatus.ERROR
    assert configured.reason == "import-linter config not found: linter.ini"

    unconfigured = GATES["imports"].run(_ctx(repo))
    assert unconfigured.status == GateStatus.ERROR
    assert unconfigured.reason == (
        "import-linter could not run (exit 1): Could not read any configuration."
    )


def test_config_is_discovered_when_none_is_named(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {**{k: v for k, v in FILES.items() if k != "linter.ini"}, ".importlinter": CONFIG}
    )
    result = GATES["imports"].run(_ctx(repo))
    assert result.status == GateStatus.PASSED, result.reason
    assert len(result.contracts) == 2


def test_invalid_contract_and_missing_root_package_are_errors(
    make_repo: Callable[..., Path],
) -> None:
    bad = CONFIG.replace("type = layers\nlayers =\n    app.high\n    app.low\n", "type = layers\n")
    repo = make_repo({**FILES, "linter.ini": bad})
    result = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason == (
        'import-linter could not run (exit 1): Contract "High above low" is not configured '
        "correctly: | layers: This is a required field."
    )

    gone = CONFIG.replace("root_package = app", "root_package = no_such_pkg")
    repo2 = make_repo({**FILES, "linter.ini": gone}, name="repo2")
    result = GATES["imports"].run(_ctx(repo2, config="linter.ini"))
    assert result.status == GateStatus.ERROR
    assert result.reason == (
        "import-linter could not run (exit 1): "
        "Could not find package 'no_such_pkg' in your Python path."
    )


def test_a_src_layout_is_found_through_pythonpath(make_repo: Callable[..., Path]) -> None:
    files = {f"src/{k}": v for k, v in FILES.items() if k != "linter.ini"}
    repo = make_repo({**files, "linter.ini": CONFIG})
    lost = GATES["imports"].run(_ctx(repo, config="linter.ini"))
    assert lost.status == GateStatus.ERROR
    assert lost.reason is not None and "Could not find package 'app'" in lost.reason

    found = GATES["imports"].run(_ctx(repo, pythonpath=("src",), config="linter.ini"))
    assert found.status == GateStatus.PASSED, found.reason
    assert [c.kept for c in found.contracts] == [True, True]


# The report of lint-imports 2.x as it prints it with --no-logo, two contracts, one broken.
REPORT = """
---------
Contracts
---------

Analyzed 6 files, 3 dependencies.
---------------------------------

High above low BROKEN
No json in core KEPT (2 ignored imports, 1 warning)

Contracts: 1 kept, 1 broken.


----------------
Broken contracts
----------------

High above low
--------------

app.low is not allowed to import app.high:

- app.low.core -> app.high.view (l.1)


"""


def test_the_parser_reads_the_report_format() -> None:
    report = imports.parse(REPORT)
    assert (report.kept, report.broken) == (1, 1)
    assert [(c.name, c.kept) for c in report.contracts] == [
        ("High above low", False),
        ("No json in core", True),
    ]
    assert report.contracts[0].details == (
        "app.low is not allowed to import app.high:\n\n- app.low.core -> app.high.view (l.1)"
    )
    assert imports.disagreement(report, 1) is None
    assert imports.disagreement(report, 0) == (
        "import-linter exited 0 but reported 1 kept, 1 broken"
    )
    assert imports.disagreement(report, 2) is not None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "expected one 'Contracts: N kept, M broken.' line, got 0"),
        (REPORT.replace("Contracts: 1 kept, 1 broken.", "Contracts: 1 kept."), "got 0"),
        (REPORT + "Contracts: 1 kept, 1 broken.\n", "got 2"),
        (REPORT.replace("1 kept, 1 broken", "2 kept, 0 broken"), "the contract lines say"),
        (REPORT.replace("KEPT (2 ignored", "SKIPPED (2 ignored"), "unexpected line"),
        (REPORT.replace("Analyzed 6 files", "Checked 6 files"), "no 'Analyzed"),
        (REPORT.replace("Broken contracts", "Failures"), "no 'Broken contracts' section"),
        (REPORT.replace("High above low\n-----", "High above low:\n-----"), "no details"),
        (
            REPORT.split("----------------\nBroken")[0]
            + "----------------\nBroken contracts\n----------------\n\nHigh above low\n"
            "--------------\n\n",
            "empty details",
        ),
        ('{"contracts": [{"name": "x", "kept": true}]}', "got 0"),
    ],
)
def test_the_parser_refuses_a_format_it_does_not_know(text: str, complaint: str) -> None:
    """A future change of lint-imports' report must fail the suite, not read as all kept."""
    with pytest.raises(ValueError) as info:
        imports.parse(text)
    assert complaint in str(info.value)
