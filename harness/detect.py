"""Zero-config: what a Python repository looks like, read from its files, never from its name.

`detect(repo)` finds the layout (src/, flat packages, a single module), the tests, the tools'
own configuration and the project's interpreter. `defaults(detected, raw)` turns that into the
policy values a user did not set themselves; `harness init` writes the same values into
`harness.toml` with a comment on each, so both paths agree.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, Field

from harness import gitplain
from harness.errors import GitError

Layout = Literal["src", "flat", "module", "none"]

# Top-level directories that are never the project's own importable code.
_NOT_CODE = frozenset(
    {
        "tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks",
        "benchmark", "bench", "scripts", "script", "tools", "tool", "build", "dist", "site",
        "env", "venv", "node_modules", "htmlcov", "runs", "changelog.d", "ci", "requirements",
    }
)  # fmt: skip
# Top-level modules that are project plumbing, not the project.
_NOT_MODULES = frozenset(
    {"setup", "conftest", "noxfile", "tasks", "fabfile", "manage", "versioneer", "_version"}
)
_TEST_DIRS = ("tests", "test", "testing")
_PY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Detected(BaseModel):
    """What the repository is, and how each finding was made (`notes`)."""

    name: str = Field("", description="the distribution's name, as an import name")
    layout: Layout = Field(description="src, flat (packages at the root), module, or none")
    packages: list[str] = Field(default_factory=list, description="import names of the code")
    package_paths: list[str] = Field(
        default_factory=list, description="the same, as repo-relative paths (src/attr, six.py)"
    )
    source_root: str = Field(".", description="the directory the packages import from")
    tests: list[str] = Field(default_factory=list, description="repo-relative test paths")
    python: str | None = Field(None, description="the project's own interpreter, if found")
    python_source: str = Field("harness", description="where the interpreter was found")
    mypy_config: str | None = Field(None, description="the file holding mypy's settings")
    mypy_has_files: bool = Field(False, description="mypy's config names the files to check")
    pytest_config: str | None = None
    coverage_config: str | None = None
    ruff_config: str | None = None
    bandit_config: str | None = Field(None, description="a file bandit reads with -c")
    imports_config: str | None = Field(None, description="the file holding import contracts")
    line_length: int | None = Field(
        None,
        description="the line length the project's flake8 or black enforces, for ruff, which "
        "sets none of its own (None: nothing to carry)",
    )
    line_length_from: str = Field("", description="where `line_length` was found")
    python_floor: str | None = Field(
        None,
        description="the oldest Python (X.Y) the project declares it supports, where ruff's "
        "own config sets no target version (None: not declared, or ruff's own)",
    )
    target_version: str | None = Field(
        None, description="ruff's `--target-version` for `python_floor` (py37 at the lowest)"
    )
    python_floor_from: str = Field("", description="where `python_floor` was found")
    notes: list[str] = Field(default_factory=list)

    def tests_in_packages(self) -> list[str]:
        return [t for t in self.tests if any(t.startswith(p + "/") for p in self.package_paths)]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    # A file the tools cannot read either: they will say so when they run.
    with contextlib.suppress(OSError, configparser.Error):
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"), str(path))
    return parser


def _tool(pyproject: dict[str, Any], *keys: str) -> Any:
    node: Any = pyproject.get("tool", {})
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _dist_name(repo: Path, pyproject: dict[str, Any], setup_cfg: configparser.ConfigParser) -> str:
    """The distribution's name as an import name ('python-dateutil' -> 'python_dateutil')."""
    name = ""
    project = pyproject.get("project")
    if isinstance(project, dict) and isinstance(project.get("name"), str):
        name = project["name"]
    elif setup_cfg.has_option("metadata", "name"):
        name = setup_cfg.get("metadata", "name")
    else:
        try:
            text = (repo / "setup.py").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        m = re.search(r"\bname\s*=\s*['\"]([^'\"]+)['\"]", text)
        # `NAME = "attrs"` ... `setup(name=NAME)`: follow one constant.
        ref = re.search(r"\bname\s*=\s*([A-Za-z_]\w*)\s*[,)]", text)
        if m is None and ref is not None:
            m = re.search(rf"^{re.escape(ref.group(1))}\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        name = m.group(1) if m else ""
    return re.sub(r"[-.]+", "_", name.strip()).lower()


def _is_package(path: Path) -> bool:
    return path.is_dir() and (path / "__init__.py").is_file()


def _has_python(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.py"))


def _code_in(root: Path, *, namespaces: bool) -> list[str]:
    """Importable packages (and, with `namespaces`, dirs of modules) directly under `root`."""
    found = []
    for child in sorted(root.iterdir()):
        name = child.name
        if not _PY_NAME.match(name) or name.lower() in _NOT_CODE:
            continue
        if _is_package(child) or (namespaces and _has_python(child)):
            found.append(name)
    return found


def _modules_in(root: Path, dist: str) -> list[str]:
    mods = sorted(
        p.stem
        for p in root.glob("*.py")
        if _PY_NAME.match(p.stem)
        and p.stem not in _NOT_MODULES
        and not p.stem.startswith("test_")
        and not p.stem.endswith("_test")
    )
    # `six.py` beside `benchmark.py`: the one named like the distribution is the project.
    return [dist] if dist in mods else mods


def _layout(repo: Path, dist: str, notes: list[str]) -> tuple[Layout, str, list[str], list[str]]:
    src = repo / "src"
    if src.is_dir():
        names = _code_in(src, namespaces=True) + _modules_in(src, dist)
        if names:
            paths = [f"src/{n}" if (src / n).is_dir() else f"src/{n}.py" for n in names]
            notes.append(f"layout: src/ ({', '.join(paths)})")
            return "src", "src", names, paths
    packages = _code_in(repo, namespaces=False)
    if packages:
        if dist in packages:
            packages = [dist] + [p for p in packages if p != dist]
        notes.append(f"layout: flat, packages at the root ({', '.join(packages)})")
        return "flat", ".", packages, list(packages)
    modules = _modules_in(repo, dist)
    if modules:
        paths = [f"{m}.py" for m in modules]
        notes.append(f"layout: single module ({', '.join(paths)})")
        return "module", ".", modules, paths
    notes.append("layout: no Python package or module found at the root or under src/")
    return "none", ".", [], []


def _tests(repo: Path, package_paths: list[str]) -> list[str]:
    found = [d for d in _TEST_DIRS if (repo / d).is_dir()]
    if found:
        return found
    inside = [f"{p}/{d}" for p in package_paths for d in _TEST_DIRS if (repo / p / d).is_dir()]
    if inside:
        return inside
    return sorted(p.name for p in repo.glob("test_*.py"))


def _venv_python(venv: Path) -> Path | None:
    for rel in ("bin/python", "Scripts/python.exe"):
        if (venv / rel).is_file():
            return venv / rel
    return None


def _interpreter(repo: Path, notes: list[str]) -> tuple[str | None, str]:
    for name in (".venv", "venv"):
        found = _venv_python(repo / name)
        if found is not None:
            notes.append(f"interpreter: {name}/ ({found}) runs the tests and resolves imports")
            return str(found), name
    active = os.environ.get("VIRTUAL_ENV")
    if active and Path(active).resolve() != Path(sys.prefix).resolve():
        found = _venv_python(Path(active))
        if found is not None:
            notes.append(f"interpreter: the active virtualenv ({found})")
            return str(found), "VIRTUAL_ENV"
    notes.append(
        f"interpreter: no .venv/ or venv/ in the repository; the tests run with harness's own "
        f"({sys.executable}); set [gates] python to the project's"
    )
    return None, "harness"


# What tools and installs leave in a checkout and nothing imports or reads as data.
_LITTER = re.compile(
    r"(^|/)(__pycache__|\.mypy_cache|\.pytest_cache|\.ruff_cache|\.hypothesis|[^/]*\.egg-info)"
    r"(/|$)|\.py[cod]$|(^|/)\.coverage[^/]*$|(^|/)\.DS_Store$"
)


def _ignored_in_code(repo: Path, paths: list[str]) -> list[str]:
    """Files git ignores inside the code: a run's worktree is a checkout of a commit, so it
    has none of them (generated `_version.py`, compiled `.mo` or `.so` files), and the tests
    that need them fail or skip there while they pass in the user's checkout."""
    if not paths:
        return []
    try:
        found = gitplain.ignored_entries(repo, paths)
    except (gitplain.GitFailed, GitError):
        return []
    return [p for p in found if not _LITTER.search(p)]


def _stubbed_code(repo: Path, paths: list[str]) -> list[str]:
    """Modules with a `.pyi` stub beside them: mypy reads the stub and never checks the code."""
    out: list[str] = []
    for p in paths:
        if (repo / p).is_dir():
            stubs = sorted((repo / p).rglob("*.pyi"))
            out += [s.with_suffix(".py").relative_to(repo).as_posix() for s in stubs]
    return [p for p in out if (repo / p).is_file()]


# flake8 with no max-line-length (pycodestyle's default); what black and ruff default to.
FLAKE8_LINE_LENGTH = 79
_E501 = "E501"


def _int_setting(value: object) -> int | None:
    try:
        n = int(str(value).strip())
    except ValueError:
        return None
    return n if n > 0 else None


T = TypeVar("T")


def _ruff_setting(
    path: Path, keys: tuple[tuple[str, ...], ...], read: Callable[[Any], T | None], depth: int = 0
) -> tuple[T, str] | None:
    """The first of `keys` (paths of nested keys) a ruff config file sets itself, as `read`
    takes it, following `extend`, and where; None if it sets none. A pyproject.toml counts
    only through its [tool.ruff] table, as ruff reads it."""
    data = _read_toml(path)
    table = _tool(data, "ruff") if path.name == "pyproject.toml" else data
    if not isinstance(table, dict):
        return None
    for key_path in keys:
        node: Any = table
        for key in key_path:
            node = node.get(key) if isinstance(node, dict) else None
        value = read(node) if node is not None else None
        if value is not None:
            return value, f"{path.name} {'.'.join(key_path)}"
    extend = table.get("extend")
    if isinstance(extend, str) and depth < 5:
        return _ruff_setting(path.parent / extend, keys, read, depth + 1)
    return None


def ruff_line_length(path: Path) -> tuple[int, str] | None:
    """The line length a ruff config file sets itself (`line-length`, or E501's own
    `lint.pycodestyle.max-line-length`), and where."""
    keys = (("line-length",), ("lint", "pycodestyle", "max-line-length"),
            ("pycodestyle", "max-line-length"))  # fmt: skip
    return _ruff_setting(path, keys, _int_setting)


def _own_ruff_config(repo: Path, pyproject: dict[str, Any]) -> str | None:
    # ruff's own order in one directory: .ruff.toml, then ruff.toml, then pyproject.toml.
    for name in (".ruff.toml", "ruff.toml"):
        if (repo / name).is_file():
            return name
    return "pyproject.toml" if _tool(pyproject, "ruff") is not None else None


def _codes(section: configparser.SectionProxy, *names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        for key in (name, name.replace("-", "_")):
            if key in section:
                out += [c for c in re.split(r"[\s,]+", section[key]) if c]
    return out


def _longest_prefix(codes: list[str], code: str) -> int:
    return max((len(c) for c in codes if code.startswith(c)), default=0)


def _flake8_checks_e501(section: configparser.SectionProxy) -> bool:
    """Whether flake8 reports E501 under this [flake8] section. flake8's own rule: a code given
    only by its defaults loses to any ignore; a code selected explicitly loses only to a longer
    (more specific) ignore; a `select` that leaves E501 out leaves it unchecked."""
    select = _codes(section, "select")
    explicit = _longest_prefix(select + _codes(section, "extend-select"), _E501)
    if select and not explicit:
        return False
    ignored = _longest_prefix(_codes(section, "ignore", "extend-ignore"), _E501)
    return not ignored or (explicit > 0 and explicit >= ignored)


def flake8_section(
    repo: Path, parsers: dict[str, configparser.ConfigParser] | None = None
) -> tuple[str, configparser.SectionProxy] | None:
    """The [flake8] section flake8 reads and where ("setup.cfg [flake8]"): the first of
    setup.cfg, tox.ini and .flake8 that has one; None when flake8 is not configured. `parsers`:
    files already read."""
    for name in ("setup.cfg", "tox.ini", ".flake8"):
        parser = parsers[name] if parsers and name in parsers else _read_ini(repo / name)
        if parser.has_section("flake8"):
            return f"{name} [flake8]", parser["flake8"]
    return None


def _flake8_line_length(
    repo: Path, parsers: dict[str, configparser.ConfigParser]
) -> tuple[int | None, str]:
    """(the line length the project's flake8 enforces, where); (None, why) when flake8 is not
    configured or does not check line length."""
    found = flake8_section(repo, parsers)
    if found is None:
        return None, ""
    where, section = found
    if not _flake8_checks_e501(section):
        return None, f"{where} does not check E501"
    for key in ("max-line-length", "max_line_length"):
        if key in section:
            n = _int_setting(section[key])
            if n is None:
                return None, f"{where} {key} = {section[key]!r} is not a length"
            return n, f"{where} {key}"
    return FLAKE8_LINE_LENGTH, f"flake8's default ({where} sets no max-line-length)"


def _black_line_length(pyproject: dict[str, Any]) -> int | None:
    for key in ("line-length", "line_length"):  # black reads either spelling
        value = _tool(pyproject, "black", key)
        if value is not None:
            return _int_setting(value)
    return None


def _line_length(
    repo: Path,
    pyproject: dict[str, Any],
    parsers: dict[str, configparser.ConfigParser],
    det: Detected,
) -> None:
    """The project's line length, for ruff where ruff sets none of its own: ruff's default (88)
    is not what a project that lints with flake8 at 79 enforces, so E501 would be counted
    against the wrong limit and a fix could write a line the project's own flake8 rejects.
    flake8's wins over black's when they disagree: it is the lint that fails on a long line;
    black only formats (and leaves a line it cannot split as long as it is)."""
    own = _own_ruff_config(repo, pyproject)
    found = ruff_line_length(repo / own) if own else None
    if found is not None:
        det.notes.append(f"line length: ruff's own, {found[0]} ({found[1]})")
        return
    flake8, flake8_where = _flake8_line_length(repo, parsers)
    black = _black_line_length(pyproject)
    black_where = "pyproject.toml [tool.black] line-length"
    if flake8 is not None:
        det.line_length, det.line_length_from = flake8, flake8_where
        if black is not None and black != flake8:
            det.line_length_from += f"; black says {black} ({black_where}), flake8 is the lint"
    elif black is not None:
        det.line_length, det.line_length_from = black, black_where
        if flake8_where:
            det.line_length_from += f"; {flake8_where}"
    if det.line_length is None:
        det.notes.append(
            "line length: ruff's default (88); no line length set for ruff, flake8 or black"
            + (f" ({flake8_where})" if flake8_where else "")
        )
        return
    det.notes.append(
        f"line length: {det.line_length} from {det.line_length_from}; ruff has none of its own "
        f"and is run with --line-length {det.line_length}"
    )


# The Pythons a declared floor is looked for among; ruff's oldest target is 3.7.
_PYTHONS = ("2.7", *(f"3.{minor}" for minor in range(15)))
RUFF_LOWEST_MINOR = 7


def ruff_target_version(path: Path) -> tuple[str, str] | None:
    """The `target-version` a ruff config file sets itself, and where."""
    return _ruff_setting(path, (("target-version",),), lambda v: v if isinstance(v, str) else None)


def _setup_py_requires(repo: Path) -> tuple[str | None, str]:
    """(setup.py's `setup(python_requires=...)` string, why not) read from its syntax tree:
    setup.py is never run, so a value it computes is not known."""
    try:
        tree = ast.parse((repo / "setup.py").read_bytes())
    except OSError:
        return None, ""
    except (SyntaxError, ValueError):
        return None, "setup.py does not parse"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name != "setup":
            continue
        for kw in node.keywords:
            if kw.arg != "python_requires":
                continue
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                return kw.value.value, ""
            return None, "setup.py python_requires is not a string literal (not run to know it)"
    return None, ""


def _declared_requires(
    repo: Path, pyproject: dict[str, Any], setup_cfg: configparser.ConfigParser
) -> tuple[str | None, str, str]:
    """(the project's Python specifier, where, why none) from the first of pyproject's
    [project] requires-python, setup.cfg [options] python_requires, setup.py's setup()."""
    project = pyproject.get("project")
    value = project.get("requires-python") if isinstance(project, dict) else None
    if isinstance(value, str):
        return value, "pyproject.toml [project] requires-python", ""
    if setup_cfg.has_option("options", "python_requires"):
        where = "setup.cfg [options] python_requires"
        return setup_cfg.get("options", "python_requires"), where, ""
    found, why = _setup_py_requires(repo)
    return found, "setup.py python_requires" if found is not None else "", why


def python_floor(specifier: str) -> str | None:
    """The oldest of 2.7, 3.0 ... 3.14 the specifier allows (a minor counts if its .0 or a late
    patch release is allowed: `>=3.5.2` still means the 3.5 language); None if none is."""
    try:
        spec = SpecifierSet(specifier.strip())
    except InvalidSpecifier:
        return None
    allowed = (
        v for v in _PYTHONS if any(spec.contains(v + p, prereleases=True) for p in ("", ".99"))
    )
    return next(allowed, None)


def _python_floor(
    repo: Path, pyproject: dict[str, Any], setup_cfg: configparser.ConfigParser, det: Detected
) -> None:
    """The oldest Python the project declares, for ruff where ruff's own config sets no target
    version: ruff reads only pyproject's requires-python, so a floor declared in setup.cfg or
    setup.py left ruff at its default target, and its pyupgrade fixes wrote f-strings into
    code that supports 3.5."""
    own = _own_ruff_config(repo, pyproject)
    found = ruff_target_version(repo / own) if own else None
    if found is not None:
        det.notes.append(f"python floor: ruff's own target version, {found[0]} ({found[1]})")
        return
    spec, where, why = _declared_requires(repo, pyproject, setup_cfg)
    if spec is None:
        det.notes.append(
            f"python floor: unknown, {why}"
            if why
            else "python floor: none declared "
            "(pyproject requires-python, setup.cfg or setup.py python_requires)"
        )
        return
    floor = python_floor(spec)
    if floor is None:
        det.notes.append(f"python floor: {where} {spec!r} allows none of 2.7, 3.0 ... 3.14")
        return
    major, minor = (int(x) for x in floor.split("."))
    det.python_floor, det.python_floor_from = floor, f"{where} {spec.strip()}"
    det.target_version = f"py3{max(minor, RUFF_LOWEST_MINOR) if major == 3 else RUFF_LOWEST_MINOR}"
    older = (major, minor) < (3, RUFF_LOWEST_MINOR)
    det.notes.append(
        f"python floor: {floor} from {det.python_floor_from}; ruff is run with --target-version "
        f"{det.target_version}"
        + ("; older than ruff's lowest target: no pyupgrade (UP) fix is proposed" if older else "")
    )


def detect(repo: Path) -> Detected:
    repo = Path(repo)
    notes: list[str] = []
    pyproject = _read_toml(repo / "pyproject.toml")
    setup_cfg = _read_ini(repo / "setup.cfg")
    tox_ini = _read_ini(repo / "tox.ini")
    dist = _dist_name(repo, pyproject, setup_cfg)
    layout, root, packages, paths = _layout(repo, dist, notes)
    tests = _tests(repo, paths)
    notes.append(f"tests: {', '.join(tests)}" if tests else "tests: none found")
    ignored = _ignored_in_code(repo, paths)
    if ignored:
        more = f" and {len(ignored) - 1} more" if len(ignored) > 1 else ""
        notes.append(
            f"not in a run's worktree: {ignored[0]}{more}, ignored by git inside the code "
            "(a run checks out the commit: tests that need these files skip or fail there)"
        )
    python, python_source = _interpreter(repo, notes)
    det = Detected(
        name=dist,
        layout=layout,
        packages=packages,
        package_paths=paths,
        source_root=root,
        tests=tests,
        python=python,
        python_source=python_source,
        notes=notes,
    )

    # Each tool reads its own files; these are found only to say so and to decide defaults.
    det.ruff_config = _own_ruff_config(repo, pyproject)
    for name in ("mypy.ini", ".mypy.ini"):
        if (repo / name).is_file():
            det.mypy_config = name
            det.mypy_has_files = _read_ini(repo / name).has_option("mypy", "files")
            break
    else:
        if _tool(pyproject, "mypy") is not None:
            det.mypy_config = "pyproject.toml"
            det.mypy_has_files = bool(_tool(pyproject, "mypy", "files"))
        elif setup_cfg.has_section("mypy"):
            det.mypy_config = "setup.cfg"
            det.mypy_has_files = setup_cfg.has_option("mypy", "files")
    for name in ("pytest.ini", ".pytest.ini"):
        if (repo / name).is_file():
            det.pytest_config = name
            break
    else:
        if _tool(pyproject, "pytest", "ini_options") is not None:
            det.pytest_config = "pyproject.toml"
        elif tox_ini.has_section("pytest"):
            det.pytest_config = "tox.ini"
        elif setup_cfg.has_section("tool:pytest"):
            det.pytest_config = "setup.cfg"
    if (repo / ".coveragerc").is_file():
        det.coverage_config = ".coveragerc"
    elif any(s.startswith("coverage:") for s in setup_cfg.sections()):
        det.coverage_config = "setup.cfg"
    elif any(s.startswith("coverage:") for s in tox_ini.sections()):
        det.coverage_config = "tox.ini"
    elif _tool(pyproject, "coverage") is not None:
        det.coverage_config = "pyproject.toml"
    for name in ("bandit.yaml", "bandit.yml", ".bandit.yaml", ".bandit.yml"):
        if (repo / name).is_file():
            det.bandit_config = name
            break
    else:
        if _tool(pyproject, "bandit") is not None:
            det.bandit_config = "pyproject.toml"
    if (repo / ".importlinter").is_file():
        det.imports_config = ".importlinter"
    elif setup_cfg.has_section("importlinter"):
        det.imports_config = "setup.cfg"
    elif _tool(pyproject, "importlinter") is not None:
        det.imports_config = "pyproject.toml"
    elif (repo / "linter.ini").is_file() and _read_ini(repo / "linter.ini").has_section(
        "importlinter"
    ):
        det.imports_config = "linter.ini"
    for tool in ("ruff", "mypy", "pytest", "coverage", "bandit"):
        where = getattr(det, f"{tool}_config")
        det.notes.append(f"{tool}: settings from {where}" if where else f"{tool}: its defaults")
    _line_length(repo, pyproject, {"setup.cfg": setup_cfg, "tox.ini": tox_ini}, det)
    _python_floor(repo, pyproject, setup_cfg, det)
    stubbed = _stubbed_code(repo, paths)
    if stubbed:
        more = f" and {len(stubbed) - 1} more" if len(stubbed) > 1 else ""
        det.notes.append(
            f"mypy: {stubbed[0]}{more} with a .pyi stub beside it: mypy checks the stub, "
            "never that code"
        )
    det.notes.append(
        f"imports: contracts in {det.imports_config}"
        if det.imports_config
        else "imports: skipped, no import-linter contracts "
        "(.importlinter, setup.cfg [importlinter], pyproject.toml [tool.importlinter])"
    )
    return det


def defaults(det: Detected, raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` (a policy as parsed TOML) with what the user left unset filled from `det`.

    The user's keys always win. A gate whose input is missing is turned off only when the user
    said nothing about it: a policy that names a config file keeps the gate on, so a missing
    file is an error rather than a silent skip."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    gates: dict[str, Any] = dict(out.get("gates") or {})
    out["gates"] = gates

    def gate(name: str) -> dict[str, Any]:
        table = dict(gates.get(name) or {})
        gates[name] = table
        return table

    if "python" not in gates and det.python is not None:
        gates["python"] = det.python
    if "pythonpath" not in gates and det.layout != "none":
        gates["pythonpath"] = [det.source_root]
    mypy = gate("mypy")
    if "paths" not in mypy and not det.mypy_has_files and det.package_paths:
        mypy["paths"] = list(det.package_paths)
        inside = det.tests_in_packages()
        if inside and "args" not in mypy:
            # The project's code, not the tests that live inside it (as for bandit).
            mypy["args"] = ["--exclude", "|".join(f"^{re.escape(t)}/" for t in inside)]
    bandit = gate("bandit")
    if "paths" not in bandit and det.package_paths:
        bandit["paths"] = list(det.package_paths)
        inside = det.tests_in_packages()
        if inside and "args" not in bandit:
            # Tests inside the package: bandit's B101 would flag every assert in them.
            bandit["args"] = ["-x", ",".join(inside)]
    if "config" not in bandit and det.bandit_config:
        bandit["config"] = det.bandit_config
    ruff = gate("ruff")
    # A config file the policy names may set its own; the gate decides when it runs.
    if "line_length" not in ruff and det.line_length is not None:
        ruff["line_length"] = det.line_length
    if "target_version" not in ruff and det.target_version is not None:
        ruff["target_version"] = det.target_version
    if "python_floor" not in ruff and det.python_floor is not None:
        ruff["python_floor"] = det.python_floor
    pytest = gate("pytest")
    if "cov" not in pytest and det.packages:
        pytest["cov"] = list(det.packages)
    imports = gate("imports")
    if "config" not in imports and "enabled" not in imports:
        if det.imports_config:
            imports["config"] = det.imports_config
        else:
            imports["enabled"] = False
    return out
