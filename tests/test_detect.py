from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.detect import defaults, detect
from harness.policy import Policy


@pytest.fixture(autouse=True)
def _no_active_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)


def test_src_layout(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pyproject.toml": '[project]\nname = "my-lib"\n',
            "src/my_lib/__init__.py": "",
            "src/my_lib/core.py": "X = 1\n",
            "tests/test_core.py": "def test_x():\n    pass\n",
        }
    )
    det = detect(repo)
    assert det.layout == "src"
    assert det.packages == ["my_lib"]
    assert det.package_paths == ["src/my_lib"]
    assert det.source_root == "src"
    assert det.tests == ["tests"]


def test_src_layout_namespace_package(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"src/ns/mod.py": "X = 1\n", "setup.py": "", "test/test_a.py": ""})
    det = detect(repo)
    assert (det.layout, det.packages, det.package_paths) == ("src", ["ns"], ["src/ns"])
    assert det.tests == ["test"]


def test_flat_layout_puts_the_distribution_first(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "setup.cfg": "[metadata]\nname = zeta\n",
            "alpha/__init__.py": "",
            "zeta/__init__.py": "",
            "zeta/tests/__init__.py": "",
            "zeta/tests/test_z.py": "",
            "docs/conf.py": "",
            "docs/__init__.py": "",
            "setup.py": "",
        }
    )
    det = detect(repo)
    assert det.layout == "flat"
    assert det.packages == ["zeta", "alpha"]  # docs/ is never the project's code
    assert det.tests == ["zeta/tests"]


def test_single_module_named_like_the_distribution(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "setup.py": "from setuptools import setup\nsetup(name='tabulate', py_modules=[])\n",
            "tabulate.py": "X = 1\n",
            "benchmark.py": "import tabulate\n",
            "test/test_api.py": "",
        }
    )
    det = detect(repo)
    assert (det.layout, det.packages) == ("module", ["tabulate"])
    assert det.package_paths == ["tabulate.py"]
    assert det.source_root == "."


def test_nothing_to_find(make_repo: Callable[..., Path]) -> None:
    det = detect(make_repo({"README.md": "hi\n"}))
    assert det.layout == "none" and det.packages == []
    assert any("no Python package" in n for n in det.notes)


def test_tool_configs_are_found_where_the_tools_look(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "setup.cfg": "[mypy]\nfiles = pkg\n[importlinter]\nroot_package = pkg\n"
            "[coverage:run]\nbranch = true\n",
            "pyproject.toml": "[tool.bandit]\nskips = ['B101']\n[tool.ruff]\nline-length = 90\n",
            "tox.ini": "[pytest]\naddopts = -q\n",
        }
    )
    det = detect(repo)
    assert det.mypy_config == "setup.cfg" and det.mypy_has_files
    assert det.imports_config == "setup.cfg"
    assert det.coverage_config == "setup.cfg"
    assert det.bandit_config == "pyproject.toml"
    assert det.ruff_config == "pyproject.toml"
    assert det.pytest_config == "tox.ini"


def test_project_venv_is_the_interpreter(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": ""})
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text("")
    det = detect(repo)
    assert det.python == str(repo / ".venv" / "bin" / "python")
    assert det.python_source == ".venv"


def test_no_venv_says_which_interpreter(make_repo: Callable[..., Path]) -> None:
    det = detect(make_repo({"pkg/__init__.py": ""}))
    assert det.python is None
    assert any("harness's own" in n for n in det.notes)


def test_defaults_fill_only_what_the_user_left_unset(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"src/lib/__init__.py": "", "tests/test_a.py": ""})
    det = detect(repo)
    raw = {"gates": {"mypy": {"paths": ["src/lib/core.py"]}, "bandit": {"enabled": False}}}
    policy = Policy.model_validate(defaults(det, raw))
    assert policy.gates.mypy.paths == ["src/lib/core.py"]  # the user's value wins
    assert policy.gates.bandit.enabled is False
    assert policy.gates.bandit.paths == ["src/lib"]
    assert policy.gates.pytest.cov == ["lib"]
    assert policy.gates.pythonpath == ["src"]
    assert policy.gates.imports.enabled is False  # no contracts in this repository
    assert raw == {"gates": {"mypy": {"paths": ["src/lib/core.py"]}, "bandit": {"enabled": False}}}


def test_a_named_import_config_keeps_the_gate_on(make_repo: Callable[..., Path]) -> None:
    det = detect(make_repo({"pkg/__init__.py": ""}))
    policy = Policy.model_validate(defaults(det, {"gates": {"imports": {"config": "x.ini"}}}))
    assert policy.gates.imports.enabled and policy.gates.imports.config == "x.ini"


def test_mypy_files_in_config_means_no_paths(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "mypy.ini": "[mypy]\nfiles = pkg\n"})
    policy = Policy.model_validate(defaults(detect(repo), {}))
    assert policy.gates.mypy.paths == []


def test_bandit_leaves_out_tests_inside_the_package(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"toolz/__init__.py": "", "toolz/tests/test_a.py": "assert 1\n"})
    det = detect(repo)
    assert det.tests_in_packages() == ["toolz/tests"]
    policy = Policy.model_validate(defaults(det, {}))
    assert policy.gates.bandit.args == ["-x", "toolz/tests"]


def test_mypy_leaves_out_tests_inside_the_package_too(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"toolz/__init__.py": "", "toolz/tests/test_a.py": "x: int = 'a'\n"})
    policy = Policy.model_validate(defaults(detect(repo), {}))
    assert policy.gates.mypy.args == ["--exclude", "^toolz/tests/"]


def test_the_name_setup_py_gives_through_a_constant(make_repo: Callable[..., Path]) -> None:
    setup = 'NAME = "attrs"\n\nsetup(name=NAME, version="1")\n'
    det = detect(make_repo({"setup.py": setup, "src/attr/__init__.py": ""}))
    assert det.name == "attrs"


def test_files_git_ignores_inside_the_code_are_named_as_missing_from_a_run(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            ".gitignore": "*.mo\n_version.py\n__pycache__/\n*.egg-info/\n",
            "pyproject.toml": '[project]\nname = "my-lib"\n',
            "src/my_lib/__init__.py": "from ._version import v\n",
            "src/my_lib/locale/de/x.po": "",
            "tests/test_core.py": "def test_x():\n    pass\n",
        }
    )
    assert not any("worktree" in n for n in detect(repo).notes)
    # What a build leaves in a checkout: the run's worktree, a checkout of the commit, lacks it.
    (repo / "src/my_lib/_version.py").write_text("v = '1'\n")
    (repo / "src/my_lib/locale/de/x.mo").write_text("")
    (repo / "src/my_lib/__pycache__").mkdir()
    (repo / "src/my_lib/__pycache__/m.cpython-311.pyc").write_text("")
    (repo / "src/my_lib.egg-info").mkdir()
    (repo / "src/my_lib.egg-info/PKG-INFO").write_text("")
    notes = [n for n in detect(repo).notes if "worktree" in n]
    assert notes == [
        "not in a run's worktree: src/my_lib/_version.py and 1 more, ignored by git inside "
        "the code (a run checks out the commit: tests that need these files skip or fail there)"
    ]


def test_code_with_a_stub_beside_it_is_named_as_unchecked_by_mypy(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            "pyproject.toml": '[project]\nname = "mi"\n',
            "mi/__init__.py": "",
            "mi/more.py": "x = 1\n",
            "mi/more.pyi": "x: int\n",
            "mi/plain.py": "y = 2\n",
        }
    )
    notes = [n for n in detect(repo).notes if ".pyi" in n]
    assert notes == [
        "mypy: mi/more.py with a .pyi stub beside it: mypy checks the stub, never that code"
    ]


# ------------------------------------------------------------------ the project's line length
BLACK_88 = "[tool.black]\nline-length = 88\n"
LINE_LENGTHS = {
    # flake8's setting, in each file flake8 reads, either spelling.
    "setup.cfg": ({"setup.cfg": "[flake8]\nmax-line-length = 79\n"}, 79, "setup.cfg [flake8]"),
    "tox.ini": ({"tox.ini": "[flake8]\nmax_line_length = 100\n"}, 100, "tox.ini [flake8]"),
    ".flake8": ({".flake8": "[flake8]\nmax-line-length = 99\n"}, 99, ".flake8 [flake8]"),
    # flake8 reads the first of setup.cfg, tox.ini, .flake8 with a [flake8] section.
    "first": (
        {
            "setup.cfg": "[flake8]\nmax-line-length = 90\n",
            ".flake8": "[flake8]\nmax-line-length = 99\n",
        },
        90,
        "setup.cfg",
    ),
    # A [flake8] section without a length: flake8 checks 79 (more-itertools 8.14.0).
    "flake8-default": ({"setup.cfg": "[flake8]\nignore = E203, W503\n"}, 79, "flake8's default"),
    # flake8 and black disagree: flake8 is the lint that rejects a long line.
    "disagree": (
        {"setup.cfg": "[flake8]\nmax-line-length = 79\n", "pyproject.toml": BLACK_88},
        79,
        "black says 88",
    ),
    "black": ({"pyproject.toml": "[tool.black]\nline-length = 79\n"}, 79, "[tool.black]"),
    # flake8 does not check E501 here, so black's length is the one the project keeps.
    "flake8-ignores-E501": (
        {
            "setup.cfg": "[flake8]\nextend-ignore = E5\n",
            "pyproject.toml": "[tool.black]\nline-length = 100\n",
        },
        100,
        "[tool.black]",
    ),
    "flake8-selects-without-E501": ({"tox.ini": "[flake8]\nselect = F,W\n"}, None, ""),
    "flake8-selects-E501-over-ignore": (
        {"tox.ini": "[flake8]\nselect = E501\nignore = E5\nmax-line-length = 70\n"},
        70,
        "tox.ini",
    ),
    # ruff's own config without a length: the project's is carried.
    "ruff-without-length": (
        {
            "ruff.toml": '[lint]\nselect = ["E501"]\n',
            "setup.cfg": "[flake8]\nmax-line-length = 79\n",
        },
        79,
        "setup.cfg",
    ),
    # ruff's own length (directly, through `extend`, or E501's own) is left alone.
    "ruff-own": (
        {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "setup.cfg": "[flake8]\n"},
        None,
        "",
    ),
    "ruff-extend": (
        {
            ".ruff.toml": 'extend = "base.toml"\n',
            "base.toml": "[lint.pycodestyle]\nmax-line-length = 120\n",
            ".flake8": "[flake8]\n",
        },
        None,
        "",
    ),
    "nothing": ({"pyproject.toml": "[tool.black]\n"}, None, ""),
}


@pytest.mark.parametrize("case", sorted(LINE_LENGTHS))
def test_the_projects_line_length_is_found_for_ruff(
    make_repo: Callable[..., Path], case: str
) -> None:
    files, want, where = LINE_LENGTHS[case]
    det = detect(make_repo({**files, "m.py": "X = 1\n"}))
    assert (det.line_length, where in det.line_length_from) == (want, True)
    [note] = [n for n in det.notes if n.startswith("line length:")]
    filled = defaults(det, {})["gates"]["ruff"]
    if want is None:
        assert "line_length" not in filled and "--line-length" not in note
    else:
        assert filled["line_length"] == want and f"--line-length {want}" in note
        assert Policy.model_validate(defaults(det, {})).gates.ruff.line_length == want
    # The user's own value always wins.
    assert defaults(det, {"gates": {"ruff": {"line_length": 120}}})["gates"]["ruff"] == {
        "line_length": 120
    }


# ------------------------------------------------------------------ the project's Python floor
SIX_SETUP = (
    "from setuptools import setup\n"
    'setup(name="six", python_requires=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*")\n'
)
FLOORS = {
    # (files, floor, ruff's target, where; a note that says why when there is none)
    "pyproject": (
        {"pyproject.toml": '[project]\nname = "m"\nrequires-python = ">=3.9"\n'},
        "3.9",
        "py39",
        "pyproject.toml [project] requires-python >=3.9",
    ),
    # cachetools 4.2.4
    "setup.cfg": (
        {"setup.cfg": "[metadata]\nname = m\n[options]\npython_requires = ~= 3.5\n"},
        "3.5",
        "py37",
        "setup.cfg [options] python_requires ~= 3.5",
    ),
    # six 1.16.0: read from setup.py's syntax tree, never run
    "setup.py": ({"setup.py": SIX_SETUP}, "2.7", "py37", "setup.py python_requires >=2.7"),
    # pyproject's requires-python comes first.
    "first": (
        {
            "pyproject.toml": '[project]\nname = "m"\nrequires-python = ">=3.8"\n',
            "setup.cfg": "[options]\npython_requires = >=3.5\n",
        },
        "3.8",
        "py38",
        "pyproject.toml",
    ),
    "computed": (
        {"setup.py": "import setuptools\nsetuptools.setup(python_requires=REQ + '.*')\n"},
        None,
        None,
        "python floor: unknown, setup.py python_requires is not a string literal",
    ),
    "nothing-allowed": (
        {"setup.cfg": "[options]\npython_requires = >=4\n"},
        None,
        None,
        "allows none of",
    ),
    # ruff's own target version (through `extend` here) is left alone.
    "ruff-own": (
        {
            "ruff.toml": 'extend = "base.toml"\n',
            "base.toml": 'target-version = "py38"\n',
            "setup.cfg": "[options]\npython_requires = >=3.5\n",
        },
        None,
        None,
        "ruff's own target version, py38 (base.toml target-version)",
    ),
    "none": ({"setup.py": "from setuptools import setup\nsetup()\n"}, None, None, "none declared"),
}


@pytest.mark.parametrize("case", sorted(FLOORS))
def test_the_projects_python_floor_is_found_for_ruff(
    make_repo: Callable[..., Path], case: str
) -> None:
    files, floor, target, where = FLOORS[case]
    det = detect(make_repo({**files, "m.py": "X = 1\n"}))
    assert (det.python_floor, det.target_version) == (floor, target)
    [note] = [n for n in det.notes if n.startswith("python floor:")]
    filled = defaults(det, {})["gates"]["ruff"]
    ruff = Policy.model_validate(defaults(det, {})).gates.ruff
    if floor is None:
        assert where in note and "--target-version" not in note
        assert "target_version" not in filled and "python_floor" not in filled
        assert "target_version" not in ruff.model_dump()  # an unset policy dumps as before
        return
    assert det.python_floor_from.startswith(where) and f"--target-version {target}" in note
    assert (ruff.target_version, ruff.python_floor) == (target, floor)
    assert ("no pyupgrade (UP) fix" in note) == (target == "py37" and floor != "3.7")
    # The user's own value always wins.
    mine = defaults(det, {"gates": {"ruff": {"target_version": "py311"}}})["gates"]["ruff"]
    assert mine["target_version"] == "py311"


def test_a_target_version_outside_ruffs_range_is_refused() -> None:
    with pytest.raises(ValueError, match="target_version"):
        Policy.model_validate({"gates": {"ruff": {"target_version": "py35"}}})
