"""The guard's policy rules. Each takes the computed changes and returns violations.

Rules see the change that would really be applied (after repair), as added/removed lines
of a minimal diff, plus the whole old and new text of each file.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import GitError
from harness.guard import hiding, suppress, testast
from harness.guard.globs import match_any
from harness.guard.models import Violation
from harness.guard.secrets import rule_secrets
from harness.policy import GuardConfig
from harness.proc import run


@dataclass
class FileChange:
    old_path: str | None
    new_path: str | None
    old_text: str | None
    new_text: str | None
    added: int = 0
    removed: int = 0
    added_lines: list[tuple[int, str]] = field(default_factory=list)  # (new line no, text)
    removed_lines: list[tuple[int, str]] = field(default_factory=list)  # (old line no, text)
    script: list[Any] = field(default_factory=list, repr=False)  # textdiff edit script
    old_lines: list[str] = field(default_factory=list, repr=False)  # split, endings kept
    new_lines: list[str] = field(default_factory=list, repr=False)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or "?"

    @property
    def paths(self) -> list[str]:
        return [p for p in dict.fromkeys((self.old_path, self.new_path)) if p]

    @property
    def first_line(self) -> int | None:
        if self.added_lines:
            return self.added_lines[0][0]
        return self.removed_lines[0][0] if self.removed_lines else None


Rule = Callable[[list[FileChange], GuardConfig], list[Violation]]


@dataclass
class RepoView:
    """The repository as it was before the patch, for rules that look past the changed files
    (a helper module a test calls, the coverage configuration, the tests' literals)."""

    root: Path
    read: Callable[[str], str | None]  # repo-relative path -> text; None: missing or unreadable


# Set by `evaluate` for the rules it runs: every rule keeps the one (changes, cfg) signature.
_REPO: ContextVar[RepoView | None] = ContextVar("guard_repo", default=None)


def _text(changes: list[FileChange], path: str, new: bool) -> str | None:
    """A file's text before (new=False) or after the patch."""
    for fc in changes:
        if new and fc.new_path == path:
            return fc.new_text
        if new and fc.old_path == path:
            return None  # deleted, or renamed away
        if not new and fc.old_path == path:
            return fc.old_text
    repo = _REPO.get()
    return repo.read(path) if repo is not None else None


def changed(cfg: GuardConfig, fc: FileChange) -> int:
    if cfg.count_method == "max_side":
        return max(fc.added, fc.removed)
    return fc.added + fc.removed


# --- size -----------------------------------------------------------------------------------


def rule_size(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    out: list[Violation] = []
    limit = cfg.max_changed_lines_per_file
    for fc in changes:
        n = changed(cfg, fc)
        if n > limit:
            how = "added + removed" if cfg.count_method == "numstat" else "max(added, removed)"
            out.append(
                Violation(
                    rule="size",
                    path=fc.path,
                    line=fc.first_line,
                    message=f"{fc.path}: {n} changed lines ({how}: +{fc.added} -{fc.removed}), "
                    f"the limit is {limit} per file; make a smaller change and do the rest "
                    "in a later patch",
                )
            )
    touched = [fc for fc in changes if fc.added or fc.removed or fc.old_path != fc.new_path]
    if cfg.max_files_per_patch is not None and len(touched) > cfg.max_files_per_patch:
        out.append(
            Violation(
                rule="size",
                message=f"the patch changes {len(touched)} files, the limit is "
                f"{cfg.max_files_per_patch}; split it into smaller patches",
            )
        )
    return out


# --- paths ----------------------------------------------------------------------------------


# File systems refuse longer names (ENAMETOOLONG); say so before anything touches the disk.
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 4096


def path_problem(path: str) -> str | None:
    """Why a patch path is unacceptable on its own, or None."""
    if not path:
        return "an empty path; name the file relative to the repository root"
    if "\x00" in path:
        return f"{path!r} contains a NUL byte, which no file name may hold"
    odd = next((c for c in path if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
    if odd is not None:
        # Invisible characters make a name that reads as one file and is another.
        return f"{path!r} contains the unprintable character U+{ord(odd):04X}; use plain names"
    if len(path.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES:
        return f"the path {path[:60]!r}... is over {_MAX_PATH_BYTES} bytes long"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return f"{path!r} is absolute; use a path relative to the repository root"
    if "\\" in path:
        return f"{path!r} contains a backslash; use forward slashes"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"{path!r} is not a normalised relative path (no '.', '..' or '//')"
    if parts[0] == ".git" or any(p == ".git" for p in parts):
        return f"{path!r} is inside .git/, which a patch may never touch"
    long = next(
        (p for p in parts if len(p.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES), None
    )
    if long is not None:
        return f"{path[:60]!r}...: the name {long[:40]!r}... is over {_MAX_NAME_BYTES} bytes long"
    return None


def rule_lanes(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    out: list[Violation] = []
    for fc in changes:
        for p in fc.paths:
            if match_any(p, cfg.forbidden):
                out.append(
                    Violation(
                        rule="paths",
                        path=p,
                        message=f"{p} matches a forbidden path ({', '.join(cfg.forbidden)}); "
                        "leave it unchanged",
                    )
                )
            elif not match_any(p, cfg.lanes):
                out.append(
                    Violation(
                        rule="paths",
                        path=p,
                        message=f"{p} is outside this block's lanes ({', '.join(cfg.lanes)}); "
                        "only edit files there",
                    )
                )
    return out


# --- protected gate configuration -----------------------------------------------------------

GATE_CONFIG_FILES = frozenset(
    {
        "ruff.toml",
        ".ruff.toml",
        "mypy.ini",
        ".mypy.ini",
        ".coveragerc",
        "pytest.ini",
        "bandit.yaml",
        "bandit.yml",
        ".bandit",
        "linter.ini",
        ".importlinter",
        ".gitleaks.toml",
        ".gitleaksignore",
        ".secrets.baseline",
        ".pre-commit-config.yaml",
        ".flake8",
        # pytest reads these, and Python runs the next three at every start-up, so each can
        # skip, deselect or force-pass tests.
        ".pytest.ini",
        "pytest.toml",
        ".pytest.toml",
        "sitecustomize.py",
        "usercustomize.py",
        # ruff (and git-aware tools) skip what these name, so a line here hides a file.
        ".gitignore",
        ".ignore",
    }
)
GATE_CONFIG_GLOBS = (".github/workflows/**", ".gitlab-ci.yml", "**/*.pth")
# Names that change what pytest collects or how it reports, when bound in a conftest.py.
_HOOK_NAMES = re.compile(r"^(?:pytest_\w*|collect_ignore(?:_glob)?)$")
TOML_TOOLS = ("ruff", "mypy", "coverage", "pytest", "bandit", "importlinter", "gitleaks")
INI_SECTIONS = re.compile(
    r"^(mypy|tool:pytest|pytest|coverage:.*|flake8|bandit|importlinter.*|ruff.*|pylint.*)"
    r"([-:].*)?$"
)


def _toml_tools(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return {}
    try:
        tool = tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        return None
    return {k: tool.get(k) for k in TOML_TOOLS} if isinstance(tool, dict) else {}


def _ini_sections(text: str | None) -> dict[str, dict[str, str]] | None:
    if text is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return {s: dict(parser[s]) for s in parser.sections() if INI_SECTIONS.match(s)}


def _table_line(text: str | None, tool: str) -> int | None:
    for i, line in enumerate((text or "").splitlines(), 1):
        if re.match(rf"^\s*\[+\s*tool\.{tool}\b", line) or re.match(rf"^\s*tool\.{tool}\b", line):
            return i
    return None


def _hook_statements(text: str | None) -> list[str] | None:
    """A conftest's module-level statements that bind or mention pytest hooks, dumped."""
    if not text:
        return []
    tree = testast.parse(text)
    if tree is None:
        return None

    def hooky(node: ast.AST) -> bool:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return bool(_HOOK_NAMES.match(node.name))
        if isinstance(node, ast.Name):
            return bool(_HOOK_NAMES.match(node.id))
        if isinstance(node, ast.Attribute):
            return bool(_HOOK_NAMES.match(node.attr))
        if isinstance(node, ast.alias):
            # `from plugin import *` can bring in hooks without naming them.
            bound = node.asname or node.name.rsplit(".", 1)[-1]
            return bound == "*" or bool(_HOOK_NAMES.match(bound))
        # globals()["pytest_runtest_setup"] = ... binds a hook without naming it in code
        return isinstance(node, ast.Constant) and (
            isinstance(node.value, str) and bool(_HOOK_NAMES.match(node.value))
        )

    return [ast.dump(stmt) for stmt in tree.body if any(hooky(n) for n in ast.walk(stmt))]


def _conftest_problem(fc: FileChange) -> str | None:
    if PurePosixPath(fc.path).name != "conftest.py" and not any(
        PurePosixPath(p).name == "conftest.py" for p in fc.paths
    ):
        return None
    old, new = _hook_statements(fc.old_text), _hook_statements(fc.new_text)
    if new is None:
        return f"{fc.path} would not parse, which breaks test collection"
    if old != new:
        return (
            f"{fc.path}: its pytest hooks (def pytest_*, collect_ignore, collect_ignore_glob) "
            "decide which tests run and how they report (plain fixtures may change there); "
            "they are gate configuration"
        )
    return None


def gate_config_problem(fc: FileChange) -> tuple[str, int | None] | None:
    """(what is protected, line) when the change touches gate configuration."""
    for p in fc.paths:
        name = PurePosixPath(p).name
        if name in GATE_CONFIG_FILES or match_any(p, GATE_CONFIG_GLOBS):
            return f"{p} configures a quality gate", fc.first_line
    hooks = _conftest_problem(fc)
    if hooks:
        return hooks, fc.first_line
    name = PurePosixPath(fc.path).name
    if name == "pyproject.toml":
        old, new = _toml_tools(fc.old_text), _toml_tools(fc.new_text)
        if new is None:
            return f"{fc.path} would not be valid TOML, which breaks the gates", fc.first_line
        if old is None:
            return None
        for tool in TOML_TOOLS:
            if old.get(tool) != new.get(tool):
                where = _table_line(fc.new_text, tool) or _table_line(fc.old_text, tool)
                return f"[tool.{tool}] in {fc.path} is gate configuration", where
    if name in ("setup.cfg", "tox.ini"):
        old_s, new_s = _ini_sections(fc.old_text), _ini_sections(fc.new_text)
        if old_s is None or new_s is None:
            return f"{fc.path} would not parse, which breaks the gates", fc.first_line
        for sec in sorted(set(old_s) | set(new_s)):
            if old_s.get(sec) != new_s.get(sec):
                return f"[{sec}] in {fc.path} is gate configuration", fc.first_line
    return None


def rule_gate_config(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    if not cfg.protect_gate_config:
        return []
    out: list[Violation] = []
    for fc in changes:
        problem = gate_config_problem(fc)
        if problem:
            what, line = problem
            out.append(
                Violation(
                    rule="gate_config",
                    path=fc.path,
                    line=line,
                    message=f"{what} and may not be changed by a patch; fix the code so the "
                    "gate passes as configured",
                )
            )
    return out


# --- suppressions ---------------------------------------------------------------------------

_DOC_SUFFIXES = (".md", ".rst", ".txt")


Markers = tuple[tuple[str, re.Pattern[str]], ...]


def _coverage_config() -> list[str]:
    """The exclude patterns of the repository's coverage configuration, wherever it lives."""
    repo = _REPO.get()
    if repo is None:
        return []
    keys = ("exclude_lines", "exclude_also", "partial_branches", "partial_also")
    found: list[str] = []
    text = repo.read("pyproject.toml")
    if text:
        try:
            report = tomllib.loads(text).get("tool", {}).get("coverage", {}).get("report", {})
        except (tomllib.TOMLDecodeError, AttributeError):
            report = {}
        for key in keys:
            value = report.get(key) if isinstance(report, dict) else None
            if isinstance(value, list):
                found.extend(str(v) for v in value)
    for name, section in (
        (".coveragerc", "report"),
        ("setup.cfg", "coverage:report"),
        ("tox.ini", "coverage:report"),
    ):
        text = repo.read(name)
        if not text:
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue
        if parser.has_section(section):
            for key in keys:
                found.extend(v for v in parser[section].get(key, "").splitlines() if v.strip())
    return found


def _coverage_markers() -> Markers:
    """The coverage configuration's exclude patterns, to be searched for in comments: a comment
    that matches one hides its line like '# pragma: no cover' does. A pattern for code
    ('if TYPE_CHECKING:') does not match a comment; one without two letters in a row ('...')
    would match ordinary comments and is left out."""
    out: list[tuple[str, re.Pattern[str]]] = []
    for pattern in _coverage_config():
        if not re.search("[A-Za-z]{2}", pattern) or re.search("pragma", pattern, re.I):
            continue  # pragmas are matched already, in every spelling
        try:
            out.append((f"coverage exclude marker {pattern.strip()!r}", re.compile(pattern)))
        except re.error:
            continue
    return tuple(out)


def _file_suppressions(fc: FileChange, markers: Markers = ()) -> list[tuple[int, str, bool]]:
    """(new line, kind, justified) for each suppression the change adds, net of removals."""
    python = fc.path.endswith((".py", ".pyi"))
    added = suppress.in_lines(fc.new_text or "", fc.added_lines, python, markers)
    gone = Counter(
        s.key for s in suppress.in_lines(fc.old_text or "", fc.removed_lines, python, markers)
    )
    out: list[tuple[int, str, bool]] = []
    for s in added:
        if gone[s.key] > 0:
            gone[s.key] -= 1  # the same suppression moved with its line
            continue
        out.append((s.line, s.kind, s.justified))
    if python and fc.new_text and "no_type_check" in fc.new_text:
        before = suppress.no_type_check_lines(fc.old_text) or []
        after = suppress.no_type_check_lines(fc.new_text) or []
        added_nos = {n for n, _ in fc.added_lines}
        extra = len(after) - len(before)
        fresh = [n for n in after if n in added_nos] or after
        out.extend((n, "@no_type_check", False) for n in fresh[: max(extra, 0)])
    return out


def rule_suppressions(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    budget = cfg.suppressions.budget
    new: list[tuple[FileChange, int, str, bool]] = []
    commented = any("#" in t for fc in changes for _, t in fc.added_lines)
    markers = _coverage_markers() if commented else ()
    for fc in changes:
        if fc.path.endswith(_DOC_SUFFIXES):
            continue
        for line_no, kind, justified in _file_suppressions(fc, markers):
            new.append((fc, line_no, kind, justified))
    out: list[Violation] = []
    for index, (fc, line_no, kind, justified) in enumerate(new):
        if index >= budget:
            extra = f" (the budget is {budget} per patch)" if budget else ""
            msg = (
                f"{fc.path}:{line_no}: adds '{kind}'{extra}; "
                "fix the finding instead of suppressing it"
            )
        elif cfg.suppressions.require_justification and not justified:
            msg = (
                f"{fc.path}:{line_no}: '{kind}' needs a justification after it on the same line, "
                "e.g. '# noqa: S603  # argv is a constant list'"
            )
        else:
            continue
        out.append(Violation(rule="suppression", path=fc.path, line=line_no, message=msg))
    return out


# --- tests are not weakened -----------------------------------------------------------------

SKIPS = re.compile(
    r"pytest\.mark\.(?:skip|skipif|xfail)\b|pytest\.(?:skip|xfail|importorskip)\s*\("
    r"|unittest\.(?:skip|skipIf|skipUnless|expectedFailure)\b"
    r"|@(?:skip|skipIf|skipUnless|expectedFailure)\b|\bSkipTest\b|\.skipTest\s*\("
)
_ASSERT_LINE = re.compile(r"^\s*(?:assert\b|self\.assert\w*\s*\(|pytest\.raises\s*\()")


def _is_test(path: str | None, cfg: GuardConfig) -> bool:
    return bool(path) and str(path).endswith(".py") and match_any(str(path), cfg.test_globs)


def _is_conftest(path: str | None) -> bool:
    return bool(path) and PurePosixPath(str(path)).name == "conftest.py"


def _skip_violations_by_regex(fc: FileChange) -> list[tuple[int, str]]:
    """Fallback for text that does not parse: added skip spellings net of removed ones."""
    found: list[tuple[int, str]] = []
    removed_skips = sum(len(SKIPS.findall(t)) for _, t in fc.removed_lines)
    for line_no, text in fc.added_lines:
        for m in SKIPS.finditer(text):
            if removed_skips > 0:
                removed_skips -= 1
                continue
            found.append((line_no, m.group(0).strip("(@ ")))
    return found


def _more(old: list[int], new: list[int], added: set[int]) -> list[int]:
    """Lines of the items `new` has beyond `old`, preferring ones on added lines."""
    extra = len(new) - len(old)
    if extra <= 0:
        return []
    fresh = [n for n in new if n in added] or new
    return fresh[:extra]


_FLAG_MESSAGES = {
    "tests.self_compare": "compares {what}; compare the result with the expected value written out",
    "tests.dead_assert": "an assert in {what} never runs (under a condition that is never "
    "true, in a loop over nothing, or in a nested function nobody calls); assert where the "
    "test runs",
    "tests.finally_return": "'{what}' in a finally block discards a failing assert's error; "
    "remove it",
    "tests.raises_assertion": "pytest.raises(AssertionError) around an assert passes exactly "
    "when the check fails; assert the expected value directly",
    "tests.dynamic_skip": "{what} skips, xfails or marks tests at run time; tests may not be "
    "skipped or marked xfail — fix the code or the test instead",
    "tests.exit": "{what}(...) ends the test session early, so pytest reports no failure; "
    "remove it",
    "tests.dunder_test": "setting __test__ stops pytest collecting the tests; remove it",
    "tests.rebound_test": "rebinds or deletes test {what}, so pytest collects another "
    "function or none; give a new test a new name",
    "tests.fixture_on_test": "@pytest.fixture on {what} turns the test into a fixture, which "
    "pytest does not run as a test; remove the decorator",
    "tests.empty_parametrize": "an empty parameter list makes pytest skip the test; keep the cases",
    "tests.patched_subject": "replaces {what}, which the tests call, with monkeypatch/mock, so "
    "the test checks the stub instead of the code; patch only what the code under test calls",
}


def _more_flags(
    old: list[tuple[str, int, str]], new: list[tuple[str, int, str]], added: set[int]
) -> list[tuple[str, int, str]]:
    """The findings `new` has beyond `old`, per (rule, what), preferring ones on added lines."""
    have = Counter((r, w) for r, _, w in old)
    out: list[tuple[str, int, str]] = []
    for flag in sorted(new, key=lambda f: (f[1] not in added, f[1])):
        key = (flag[0], flag[2])
        if have[key] > 0:
            have[key] -= 1
        else:
            out.append(flag)
    return sorted(out, key=lambda f: f[1])


class _Helpers:
    """Checks in helpers that tests import from other modules, read before or after the patch."""

    def __init__(self, changes: list[FileChange], cfg: GuardConfig) -> None:
        self.changes = changes
        self.cfg = cfg
        self.memo: dict[tuple[str, int, str, str, bool], tuple[int, int]] = {}

    def _paths(self, module: str, level: int, test_path: str) -> list[str]:
        here = PurePosixPath(test_path).parent
        rel = module.replace(".", "/")
        if level:
            base = here
            for _ in range(level - 1):
                base = base.parent
            stems = [str(base / rel)] if rel else []
        else:
            stems = [rel, f"src/{rel}", str(here / rel)]
        return [p for stem in stems for p in (f"{stem}.py", f"{stem}/__init__.py")]

    def checks(self, info: testast.TestInfo, test_path: str, new: bool) -> tuple[int, int]:
        """(asserts, value checks) of a test, its imported helpers counted in."""
        asserts, value = info.asserts, info.value
        for module, level, name in dict.fromkeys(info.external):
            key = (module, level, name, test_path, new)
            if key not in self.memo:
                self.memo[key] = self._helper(module, level, name, test_path, new)
            a, v = self.memo[key]
            asserts, value = asserts + a, value + v
        return asserts, value

    def _helper(
        self, module: str, level: int, name: str, test_path: str, new: bool
    ) -> tuple[int, int]:
        touched = {p for fc in self.changes for p in fc.paths}
        for path in self._paths(module, level, test_path):
            # Only test modules and files of this patch are read: a library's or the
            # package's own assert helper (numpy.testing.assert_allclose) asserts by its name,
            # and the code under test is not parsed on every check.
            if not (_is_test(path, self.cfg) or _is_conftest(path) or path in touched):
                continue
            text = _text(self.changes, path, new)
            if text is None:
                continue
            found = testast.facts(text)
            return found.functions.get(name, (0, 0)) if found else (0, 0)
        return (1, 1) if name.startswith("assert") else (0, 0)


def _project_module(top: str, changes: list[FileChange]) -> bool:
    """Whether a top-level module name is the repository's own code (not stdlib, not a dep)."""
    if top in sys.stdlib_module_names:
        return False
    repo = _REPO.get()
    if repo is None:
        return True
    for stem in (top, f"src/{top}"):
        for path in (f"{stem}/__init__.py", f"{stem}.py"):
            if _text(changes, path, True) is not None or _text(changes, path, False) is not None:
                return True
    return False


def rule_tests(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    if not cfg.protect_tests:
        return []
    out: list[Violation] = []
    helpers = _Helpers(changes, cfg)

    def v(fc: FileChange, line: int | None, msg: str, rule: str = "tests") -> None:
        out.append(Violation(rule=rule, path=fc.path, line=line, message=msg))

    landing = {fc.new_path for fc in changes if fc.new_path and fc.old_path != fc.new_path}
    for fc in changes:
        found_before = len(out)
        old_is_test = _is_test(fc.old_path, cfg)
        if old_is_test and fc.new_path is None:
            if fc.old_path in landing:
                v(
                    fc,
                    None,
                    f"deletes test file {fc.old_path} and renames another file onto its path, "
                    "which hides the deletion as an unchanged rename; tests may not be removed",
                    "paths.rename_over_test",
                )
            else:
                v(fc, None, f"deletes test file {fc.old_path}; tests may not be removed")
            continue
        if old_is_test and fc.new_path != fc.old_path:
            v(fc, None, f"renames test file {fc.old_path} to {fc.new_path}; keep test files")
        # A conftest.py reaches every test below it, wherever it lives.
        watched = old_is_test or _is_test(fc.new_path, cfg) or _is_conftest(fc.new_path)
        if not watched:
            continue
        old_facts = (
            testast.facts(fc.old_text or "")
            if old_is_test or _is_conftest(fc.old_path)
            else testast.TestFacts()
        )
        new_facts = testast.facts(fc.new_text or "") if fc.new_text is not None else None
        added = {n for n, _ in fc.added_lines}
        if new_facts is None or old_facts is None:
            skips = _skip_violations_by_regex(fc)
        else:
            old_lines = [n for n, _ in old_facts.skips]
            lines = _more(old_lines, [n for n, _ in new_facts.skips], added)
            names = dict(new_facts.skips)
            skips = [(n, names.get(n, "skip")) for n in lines]
        for line_no, what in skips:
            v(
                fc,
                line_no,
                f"{fc.path}:{line_no}: adds '{what}'; tests may not be skipped or marked "
                "xfail — fix the code or the test instead",
            )
        if new_facts is not None and old_facts is not None:
            for rule, line_no, what in _more_flags(old_facts.flags, new_facts.flags, added):
                msg = _FLAG_MESSAGES[rule].format(what=what)
                v(fc, line_no, f"{fc.path}:{line_no}: {msg}", rule)
            old_patches = Counter(t for _, t in old_facts.autouse_patches)
            for line_no, target in new_facts.autouse_patches:
                if old_patches[target] > 0:
                    old_patches[target] -= 1
                elif _project_module(target.split(".", 1)[0], changes):
                    v(
                        fc,
                        line_no,
                        f"{fc.path}:{line_no}: an autouse fixture replaces {target}, project "
                        "code, for every test, so the tests check the stub; patch it only in "
                        "the tests that need it",
                        "tests.patched_subject",
                    )
        if fc.new_text is not None and new_facts is not None:
            old_tests = old_facts.tests if old_facts is not None else {}
            for name, info in new_facts.tests.items():
                if name in old_tests or info.imports:
                    continue
                if info.asserts == 0 and helpers.checks(info, fc.path, True)[0] == 0:
                    v(
                        fc,
                        fc.first_line,
                        f"{fc.path}: new test {name} checks nothing (no assert, no "
                        "pytest.raises, no helper that asserts); assert on the code's result",
                        "tests.no_asserts",
                    )
        if fc.old_text is None or fc.new_text is None:
            if new_facts is not None and fc.new_text is not None:
                for line_no in _more([], new_facts.trivial, added):
                    v(
                        fc,
                        line_no,
                        f"{fc.path}:{line_no}: an assert that is always true tests "
                        "nothing; assert on the code's result",
                    )
            continue
        if new_facts is None or old_facts is None:
            lost = sum(1 for _, t in fc.removed_lines if _ASSERT_LINE.match(t)) - sum(
                1 for _, t in fc.added_lines if _ASSERT_LINE.match(t)
            )
            if lost > 0:
                v(fc, fc.first_line, f"{fc.path}: removes {lost} assert(s) from tests")
            continue
        for line_no in _more(old_facts.trivial, new_facts.trivial, added):
            v(
                fc,
                line_no,
                f"{fc.path}:{line_no}: adds an assert that is always true, which "
                "tests nothing; assert on the code's result",
            )
        for line_no in _more(old_facts.swallowers, new_facts.swallowers, added):
            v(
                fc,
                line_no,
                f"{fc.path}:{line_no}: catches AssertionError around test code, so "
                "a failing assert would pass; let assertion failures propagate",
            )
        # A rule that named the trick already explains the counts dropping.
        _compare_tests(fc, old_facts, new_facts, helpers, v, counts=len(out) == found_before)
    return out


def _compare_tests(
    fc: FileChange,
    old_facts: testast.TestFacts,
    new_facts: testast.TestFacts,
    helpers: _Helpers,
    v: Callable[..., None],
    counts: bool,
) -> None:
    """Each test the file had before: still there, checking as much as before."""
    for name, old in old_facts.tests.items():
        new = new_facts.tests.get(name)
        if new is None:
            v(
                fc,
                fc.first_line,
                f"{fc.path}: removes or renames test {name}; existing tests must stay",
            )
            continue
        if old.effects and not new.effects:
            v(
                fc,
                fc.first_line,
                f"{fc.path}: empties test {name} (only pass, '...' or a docstring is left); "
                "keep what it checks",
                "tests.emptied",
            )
            continue
        if not old.asserts and new.imports < old.imports:
            v(
                fc,
                fc.first_line,
                f"{fc.path}: test {name} checks that its imports work and loses "
                f"{old.imports - new.imports} of them; keep the imports (they are the test)",
                "tests.emptied",
            )
            continue
        before, after = (old.asserts, old.value), (new.asserts, new.value)
        if not counts:
            continue
        if after[0] < before[0] or after[1] < before[1]:
            before = helpers.checks(old, fc.path, False)
            after = helpers.checks(new, fc.path, True)
        if after[0] < before[0]:
            v(
                fc,
                fc.first_line,
                f"{fc.path}: test {name} loses {before[0] - after[0]} assert(s); "
                "existing assertions must stay",
            )
        elif after[1] < before[1]:
            v(
                fc,
                fc.first_line,
                f"{fc.path}: test {name} checks {before[1] - after[1]} value(s) less: an "
                "assert on a value became 'is not None', isinstance, a mock call check or "
                "similar; keep asserting the expected value",
                "tests.weakened_assert",
            )
        elif new_facts.early_returns.get(name, 0) > old_facts.early_returns.get(name, 0):
            v(
                fc,
                fc.first_line,
                f"{fc.path}: test {name} gains a 'return' before its asserts, so they "
                "never run; remove the early return",
            )


# --- hiding from the gates ------------------------------------------------------------------

# Test files may reach modules by computed names (checking exports, parametrizing over
# modules); what they may not hide is types.
_TEST_SIDE_HIDING = frozenset({"hiding.cast_any", "hiding.not_type_checking"})


def _spellings(term: str) -> list[str]:
    kind, value = term.split(":", 1)
    return [f'"{value}"', f"'{value}'"] if kind == "s" else [value]


def _tests_mention(terms: set[str], changes: list[FileChange], cfg: GuardConfig) -> set[str]:
    """Which of the literals (hiding.compared_literals' terms) the tests spell after the patch:
    a string quoted, a number as a whole word."""
    found: set[str] = set()
    for fc in changes:
        if fc.new_text and (_is_test(fc.new_path, cfg) or _is_conftest(fc.new_path)):
            for term in terms - found:
                for spelled in _spellings(term):
                    if re.search(rf"(?<![\w.]){re.escape(spelled)}(?![\w.])", fc.new_text):
                        found.add(term)
    repo = _REPO.get()
    left = sorted(terms - found)
    if repo is None or not left:
        return found
    specs = [f":(glob){g}" for g in (*cfg.test_globs, "**/conftest.py")]
    hits: set[str] = set()
    for words, group in (
        (True, [t for t in left if t[0] == "n"]),
        (False, [t for t in left if t[0] == "s"]),
    ):
        if not group:
            continue
        argv = ["git", "grep", "-I", "-h", "-o", "-F", *(["-w"] if words else [])]
        for term in group:
            for spelled in _spellings(term):
                argv.extend(("-e", spelled))
        res = run([*argv, "--", *specs], repo.root, timeout=60)
        if res.returncode not in (0, 1):
            raise GitError(f"git grep failed in {repo.root}: {res.tail or res.returncode}")
        hits.update(res.stdout.splitlines())
    return found | {t for t in left if any(s in hits for s in _spellings(t))}


def rule_hiding(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    out: list[Violation] = []
    literals: list[tuple[FileChange, int, str, list[str]]] = []
    for fc in changes:
        path = fc.new_path
        if path is None:
            continue
        if cfg.protect_gate_config:
            problem = hiding.stub_problem(path) if fc.old_path != path else None
            beside = path[:-1] if path.endswith(".pyi") else None
            if beside and (_text(changes, beside, False) or _text(changes, beside, True)):
                problem = None  # gate_config refuses a stub that shadows its module
            if problem:
                out.append(Violation(rule="hiding.stub_package", path=path, message=problem))
            problem = hiding.plugin_problem(path, fc.old_text, fc.new_text)
            if problem:
                out.append(
                    Violation(
                        rule="hiding.entry_point_plugin",
                        path=path,
                        line=fc.first_line,
                        message=problem,
                    )
                )
        if not path.endswith(".py") or not (fc.added or fc.old_path != path):
            continue
        test_side = _is_test(path, cfg) or _is_conftest(path)
        new = hiding.findings(fc.new_text, source=not test_side)
        old = hiding.findings(fc.old_text, source=not test_side)
        if new is None:
            continue  # does not parse: the gates say so
        added = {n for n, _ in fc.added_lines}
        for f in hiding.new_findings(old or [], new, added):
            if test_side and f.rule not in _TEST_SIDE_HIDING:
                continue
            out.append(
                Violation(
                    rule=f.rule, path=path, line=f.line, message=f"{path}:{f.line}: {f.message}"
                )
            )
        if not test_side:
            literals.extend(_new_literals(fc, added))
    if literals:
        terms = {t for _, _, _, ts in literals for t in ts}
        mentioned = _tests_mention(terms, changes, cfg)
        for fc, line, shown, ts in literals:
            if all(t in mentioned for t in ts):
                out.append(
                    Violation(
                        rule="hiding.test_literal",
                        path=fc.path,
                        line=line,
                        message=f"{fc.path}:{line}: a new comparison with {shown}, a value the "
                        "tests use: code that special-cases the tests' inputs passes them "
                        "without being right; compute the result for every input",
                    )
                )
    return out


def _new_literals(
    fc: FileChange, added: set[int]
) -> Iterable[tuple[FileChange, int, str, list[str]]]:
    new = hiding.compared_literals(fc.new_text)
    if not new:
        return []
    have = Counter(shown for _, shown, _ in hiding.compared_literals(fc.old_text) or [])
    out = []
    for line, shown, terms in sorted(new, key=lambda x: (x[0] not in added, x[0])):
        if have[shown] > 0:
            have[shown] -= 1
        elif line in added:
            out.append((fc, line, shown, terms))
    return out


# The static layer's rules, cheapest first. Secrets are a layer of their own (they read every
# added line of every file), run only when these accept.
RULES: dict[str, Rule] = {
    "size": rule_size,
    "paths": rule_lanes,
    "gate_config": rule_gate_config,
    "suppression": rule_suppressions,
    "tests": rule_tests,
    "hiding": rule_hiding,
}
SECRET_RULES: dict[str, Rule] = {"secrets": rule_secrets}


def evaluate(
    changes: list[FileChange],
    cfg: GuardConfig,
    rules: dict[str, Rule] | None = None,
    repo: RepoView | None = None,
) -> list[Violation]:
    token = _REPO.set(repo)
    try:
        out: list[Violation] = []
        for rule in (RULES if rules is None else rules).values():
            out.extend(rule(changes, cfg))
        return out
    finally:
        _REPO.reset(token)
