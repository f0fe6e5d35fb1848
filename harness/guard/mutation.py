"""The guard's mutation layer: a new test must fail on mutants of the code it runs, and a
changed test must not catch fewer of them than it did before the patch.

A test that checks nothing (no assert, an assert that compares a value with itself, an assert
that never runs, the function under test replaced by a mock) passes on every mutant of the code
it runs, except those that make the code raise, hang or crash, which merely calling it notices.
So a mutant counts as *caught* only when one of the test's own checks fails on it: an
AssertionError or pytest's Failed (pytest.fail, pytest.raises' "DID NOT RAISE") raised outside
the project's source files, as the end of pytest's long traceback says. A new test that
catches no mutant is refused whatever its spelling (`mutation.kills_nothing`), and so is a
changed one whose version before the patch caught some (one that caught none before may catch
none after: a lint fix to a weak test is not a weakening), and a patch that lowers the
mutation score of the tests that cover the changed code is refused (`mutation.score_dropped`):
the same mutants (keyed without line numbers), the tests as they were on the tree before the
patch against the tests with it. With `source_patches`, a source patch is judged on the
unchanged tests that ran a function it changes.

Scope and cost: only those tests run, and only against mutants of the functions they ran
(coverage contexts, measured here: a new test is in no map recorded earlier). Mutants are made
by a few AST operators of our own (comparison flipped, condition negated, `not` dropped,
`and`/`or` swapped, constant changed, arithmetic swapped, a return value replaced by None, a
call statement removed), at most `max_mutants` of them, shared fairly among the tests,
within `budget_seconds`. Each mutant runs with a timeout derived from the tests' measured
duration; one that hangs or kills the interpreter counts as killed.

Nothing is mutated in place: the worktree is copied to a temporary directory, the copy's source
root goes first on PYTHONPATH (checked with `find_spec`, as the gates check the worktree), and
every mutant is written there. The worktree is only read.

Why not a mutation library: mutmut 3 runs as a CLI over a whole project, writes a `mutants/`
tree and its state into the project, and needs its own configuration; cosmic-ray needs a
session database and a config file per run and mutates whole modules; mutatest has not been
released since 2022. None offers "these tests, these functions, this many seconds" as a call.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET
from pydantic import BaseModel, Field

from harness.errors import GateError, ImportLeak
from harness.gates import pytest as pytest_gate
from harness.gates.common import BASE_ENV, GateContext, one_line, rel_path, run_tool
from harness.gates.imported import measured_packages, require_worktree_imports
from harness.gates.runner import context_for, interpreter
from harness.guard.globs import match_any
from harness.guard.models import LayerRun, Violation
from harness.policy import GuardConfig, MutationConfig, Policy
from harness.proc import ProcResult, run

LAYER = "mutation"
# A mutant run may take this many times the unmutated run (plus a margin) before it is called
# a hang; the policy's floor covers pytest's own start-up on a loaded machine.
TIMEOUT_FACTOR = 3.0
# Directories never copied into the sandbox: VCS data, environments, caches.
_SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", "node_modules", ".eggs", ".hypothesis"}
)  # fmt: skip
_KILLING = ("failed", "error")


class TestKills(BaseModel):
    """What one new or changed test did to the mutants of the code it runs."""

    __test__ = False  # not a pytest class

    test: str = Field(description="pytest node id of the test function (parameters folded)")
    new: bool | None = Field(
        description="the test did not exist before the patch; None: the layer stopped first"
    )
    judged: bool = Field(description="false: not enough was run to say (see note)")
    tried: int = Field(0, description="mutants run against it (on lines it runs)")
    killed: int = Field(0, description="of those, mutants it failed on, hung on or crashed on")
    caught: int = Field(
        0,
        description="of those, mutants one of its checks failed on (an assert, unittest's "
        "assert*, pytest.fail or pytest.raises); an exception from the code, a hang or a crash "
        "kills a mutant without any check",
    )
    covers_change: bool = Field(
        False,
        description="an unchanged test that ran a function a source patch changes: it counts in "
        "the score only (source_patches)",
    )
    before_tried: int | None = Field(
        None, description="mutants run against its version before the patch (None: none passed)"
    )
    before_caught: int | None = Field(None, description="of those, caught by that version")
    note: str = ""


class MutationResult(BaseModel):
    """The mutation layer's verdict on one patch."""

    accepted: bool
    violations: list[Violation] = Field(default_factory=list)
    layer: LayerRun
    tests: list[TestKills] = Field(default_factory=list)
    mutants: int = Field(0, description="mutants selected (after the max_mutants cap)")
    tried: int = Field(
        0,
        description="mutants run (before the budget ran out, and as far as the verdict needed: "
        "a new test stops being run once one of its checks caught a mutant)",
    )
    put_off: int = Field(
        0,
        description="mutants the tests before the patch did not catch, not run with it because "
        "the score was already no lower without them: score_after is then a lower bound",
    )
    caught: int = Field(
        0, description="of those, mutants a check of a new or changed test failed on (each once)"
    )
    score_before: float | None = Field(
        None,
        description="the tests that cover the changed code (changed tests, and with "
        "source_patches the tests of changed functions), as they were before the patch on the "
        "tree before it: the share of the score's mutants one of their checks caught",
    )
    score_after: float | None = Field(
        None, description="the same tests with the patch, on the same mutants"
    )
    score_mutants: int = Field(
        0,
        description="the score's mutants: made in both trees (same key), run by either version",
    )
    score_complete: bool = Field(
        True, description="false: the budget ran out before every selected mutant was run"
    )
    lost: list[str] = Field(
        default_factory=list,
        description="mutants the tests caught before the patch that survive with it",
    )
    survived: list[str] = Field(
        default_factory=list,
        description="mutants tried that no new or changed test failed on: path:line function: what",
    )
    uncaught: list[str] = Field(
        default_factory=list,
        description="mutants that made the code raise, hang or crash, on which no check failed",
    )
    budget_exhausted: bool = False
    seconds: float = 0.0


# ---------------------------------------------------------------------- mutants
@dataclass(frozen=True)
class Mutant:
    path: str  # repo-relative
    line: int
    function: str
    operator: str
    text: str  # the whole mutated module
    # The same mutant in another version of the module has the same key: its function, the
    # statement it is in and the node it changes, by their syntax trees (no line numbers).
    key: str = ""

    def label(self) -> str:
        return f"{self.path}:{self.line} {self.function}: {self.operator}"


_COMPARE_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}  # fmt: skip


@dataclass
class _Site:
    """One place to mutate: the source span it replaces and what it puts there."""

    node: ast.AST
    line: int
    function: str
    operator: str
    replacement: str


def _paren(node: ast.AST) -> str:
    return f"({ast.unparse(node)})"


def _sites_of(node: ast.AST, function: str, line: int) -> Iterator[_Site]:
    if isinstance(node, ast.Compare):
        flipped = _COMPARE_FLIP.get(type(node.ops[0]))
        if flipped is not None:
            new = copy.deepcopy(node)
            new.ops[0] = flipped()
            yield _Site(node, line, function, f"comparison {_short(node)!r} flipped", _paren(new))
    elif isinstance(node, ast.BoolOp):
        boolop = copy.deepcopy(node)
        boolop.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield _Site(node, line, function, "and/or swapped", _paren(boolop))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield _Site(node, line, function, "'not' dropped", _paren(node.operand))
    elif isinstance(node, ast.BinOp):
        swapped = _BINOP_SWAP.get(type(node.op))
        if swapped is not None:
            binop = copy.deepcopy(node)
            binop.op = swapped()
            yield _Site(node, line, function, f"arithmetic {_short(node)!r} swapped", _paren(binop))
    elif isinstance(node, ast.Constant):
        changed = _changed_constant(node.value)
        if changed is not None:
            yield _Site(node, line, function, f"constant {_short(node)} changed", f"({changed!r})")
    elif isinstance(node, ast.If | ast.While) and not isinstance(
        node.test, ast.Compare | ast.UnaryOp
    ):
        yield _Site(node.test, line, function, "condition negated", f"(not {_paren(node.test)})")
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield _Site(node, line, function, "return value replaced by None", "return None")
    elif isinstance(node, ast.AugAssign):
        swapped = _BINOP_SWAP.get(type(node.op))
        if swapped is not None:
            aug = copy.deepcopy(node)
            aug.op = swapped()
            yield _Site(node, line, function, "augmented assignment swapped", ast.unparse(aug))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield _Site(node, line, function, "call statement removed", "pass")


def _short(node: ast.AST) -> str:
    return one_line(ast.unparse(node), 60)


def _changed_constant(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return f"XX{value}XX" if value else "XX"
    if isinstance(value, bytes):
        return b"XX" + value + b"XX"
    return None


def _walk_body(stmts: list[ast.stmt], function: str) -> Iterator[tuple[ast.AST, str, ast.stmt]]:
    """Every node of a function body, with the innermost function it belongs to and the
    statement it is part of (coverage records a statement by its first line). Nested function
    bodies are named by their own function; annotations, f-strings and docstrings are left alone
    (mutating them changes no behaviour a test sees, or does not parse)."""
    stack: list[tuple[ast.AST, str, ast.stmt]] = [(s, function, s) for s in reversed(stmts)]
    while stack:
        node, owner, stmt = stack.pop()
        if isinstance(node, ast.stmt):
            stmt = node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = f"{owner}.{node.name}"
            body = _without_docstring(node.body)
            stack.extend((s, inner, s) for s in reversed(body))
            continue
        if isinstance(node, ast.ClassDef):
            inner = f"{owner}.{node.name}"
            stack.extend((s, inner, s) for s in reversed(node.body))
            continue
        if isinstance(node, ast.JoinedStr):
            continue
        yield node, owner, stmt
        for name, value in reversed(list(ast.iter_fields(node))):
            if name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            children = value if isinstance(value, list) else [value]
            stack.extend((c, owner, stmt) for c in reversed(children) if isinstance(c, ast.AST))


_MUTABLE = (
    ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Constant, ast.If, ast.While, ast.Return,
    ast.AugAssign, ast.Expr,
)  # fmt: skip


def _header(stmt: ast.stmt) -> str:
    """A statement by its syntax tree, a compound one by its header only: a change inside an
    `if` body does not make the `if`'s own mutants different ones."""
    if isinstance(stmt, ast.If | ast.While):
        return f"{type(stmt).__name__}:{ast.dump(stmt.test)}"
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return f"For:{ast.dump(stmt.target)}:{ast.dump(stmt.iter)}"
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return "With:" + ";".join(ast.dump(i) for i in stmt.items)
    if isinstance(stmt, ast.Try | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return type(stmt).__name__
    if isinstance(stmt, ast.Match):
        return f"Match:{ast.dump(stmt.subject)}"
    return ast.dump(stmt)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:]
    return body


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Top-level functions and methods (at any class depth), by qualified name."""
    stack: list[tuple[str, ast.AST]] = [("", n) for n in reversed(tree.body)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", node
        elif isinstance(node, ast.ClassDef):
            stack.extend((f"{prefix}{node.name}.", n) for n in reversed(node.body))


def mutants_of(path: str, source: str, lines: Collection[int]) -> list[Mutant]:
    """Mutants of the function bodies of `source`, on the given lines only (the lines a test
    ran: a mutant elsewhere cannot be killed by it), in source order. Each one parses and
    differs from the original syntax tree."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    original = ast.dump(tree)
    raw = source.encode("utf-8")
    starts = _line_starts(raw)
    seen: set[tuple[int, int, str]] = set()
    out: list[Mutant] = []
    wanted = set(lines)
    # Equal nodes in equal statements of one function are told apart by their order.
    occurrences: dict[tuple[str, str, str], int] = {}
    for name, fn in _functions(tree):
        for node, owner, stmt in _walk_body(_without_docstring(fn.body), name):
            if not isinstance(node, _MUTABLE):
                continue
            ident = (owner, _header(stmt), ast.dump(node))
            nth = occurrences.get(ident, 0)
            occurrences[ident] = nth + 1
            line = stmt.lineno
            if line not in wanted:
                continue
            for site in _sites_of(node, owner, line):
                span = _span(site.node, starts)
                if span is None or (*span, site.replacement) in seen:
                    continue
                seen.add((*span, site.replacement))
                text = (raw[: span[0]] + site.replacement.encode() + raw[span[1] :]).decode()
                try:
                    if ast.dump(ast.parse(text)) == original:
                        continue
                except SyntaxError:
                    continue
                key = f"{path}|{owner}|{ident[1]}|{ident[2]}#{nth}|{site.replacement}"
                out.append(Mutant(path, site.line, site.function, site.operator, text, key))
    return out


def _line_starts(raw: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(raw):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _span(node: ast.AST, starts: list[int]) -> tuple[int, int] | None:
    """Byte offsets of a node in the source (the AST's columns count UTF-8 bytes)."""
    line: int | None = getattr(node, "lineno", None)
    col: int | None = getattr(node, "col_offset", None)
    end_line: int | None = getattr(node, "end_lineno", None)
    end_col: int | None = getattr(node, "end_col_offset", None)
    if line is None or col is None or end_line is None or end_col is None:
        return None
    if end_line > len(starts) or line < 1:
        return None
    return starts[line - 1] + col, starts[end_line - 1] + end_col


# ---------------------------------------------------------------------- what changed
def changed_functions(before: str, after: str) -> set[str]:
    """Functions and methods (qualified names) that both versions of a module define and whose
    definitions differ, by syntax tree (a line moved is no change)."""
    try:
        old = {n: ast.dump(f) for n, f in _functions(ast.parse(before))}
        new = {n: ast.dump(f) for n, f in _functions(ast.parse(after))}
    except SyntaxError:
        return set()
    return {n for n in old.keys() & new.keys() if old[n] != new[n]}


def function_lines(source: str, names: Collection[str]) -> set[int]:
    """The lines of the named functions (nested ones included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    out: set[int] = set()
    for name, fn in _functions(tree):
        if name in names:
            out.update(range(fn.lineno, (fn.end_lineno or fn.lineno) + 1))
    return out


def functions_run(source: str, lines: Collection[int]) -> set[str]:
    """The functions (qualified names) that hold any of `lines`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    wanted = set(lines)
    return {
        name
        for name, fn in _functions(tree)
        if wanted.intersection(range(fn.lineno, (fn.end_lineno or fn.lineno) + 1))
    }


def _in_functions(mutant: Mutant, names: Collection[str]) -> bool:
    return any(mutant.function == n or mutant.function.startswith(f"{n}.") for n in names)


def test_functions(source: str) -> dict[str, str]:
    """Test functions of a module as pytest collects them by default (`test*` functions and
    methods of `Test*` classes), node-id suffix -> dump of the definition."""
    tree = ast.parse(source)
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            out[node.name] = _dump(node)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    item.name.startswith("test")
                ):
                    out[f"{node.name}::{item.name}"] = _dump(item)
    return out


def _rest_of_module(source: str) -> str:
    """Everything in a test module that is not a test function: helpers, fixtures, imports."""
    tree = ast.parse(source)
    keep: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            continue
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            node = copy.deepcopy(node)
            node.body = [
                s
                for s in node.body
                if not (isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef))
                or not s.name.startswith("test")
            ]
        keep.append(node)
    # What a module's top-level imports bind is what its tests see, not how the statements are
    # spelled: ruff's I001 sorts the statements, sorts the names inside one, and splits or joins
    # `from m import a, b as c`. Compared as the sorted bindings, a sorted block changes no test.
    imports = sorted(
        b for n in keep if isinstance(n, ast.Import | ast.ImportFrom) for b in _bindings(n)
    )
    rest = [n for n in keep if not isinstance(n, ast.Import | ast.ImportFrom)]
    return "\n".join([*imports, _dump(ast.Module(body=rest, type_ignores=[]))])


def _bindings(node: ast.Import | ast.ImportFrom) -> list[str]:
    """One `import` statement as the names it binds, each with where it comes from."""
    if isinstance(node, ast.Import):
        return [f"import {a.name} as {a.asname}" for a in node.names]
    module = "." * node.level + (node.module or "")
    return [f"from {module} import {a.name} as {a.asname}" for a in node.names]


def _dump(node: ast.AST) -> str:
    # A u"" prefix (ruff's UP025 drops it) is the same string: ast keeps it only as `kind`.
    return ast.dump(_normalized(node)).replace(", kind='u'", "")


def _normalized(node: ast.AST) -> ast.AST:
    """A copy without the spellings ruff's fixes remove that change nothing a test does:
    `class A(object):` is `class A:` in Python 3 (UP004), and a `pass` beside other statements
    does nothing (PIE790)."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, ast.ClassDef):
            n.bases = [b for b in n.bases if not _is_object(b)]
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(n, name, None)
            if isinstance(stmts, list) and len(stmts) > 1:
                kept = [s for s in stmts if not isinstance(s, ast.Pass)]
                setattr(n, name, kept or stmts[:1])
    return node


def _is_object(base: ast.expr) -> bool:
    return isinstance(base, ast.Name) and base.id == "object"


def changed_tests(
    repo: Path, base: str, new_texts: Mapping[str, str | None], test_globs: Sequence[str]
) -> list[str]:
    """Node ids of the test functions a patch adds or changes. `new_texts`: the patch's files
    by repo-relative path (None: deleted). A change outside the test functions of a test module
    (a helper, a fixture, an import) counts as a change to every test in it."""
    out: list[str] = []
    for path, text in sorted(new_texts.items()):
        name = PurePosixPath(path).name
        if text is None or not path.endswith(".py") or name == "conftest.py":
            continue
        if not match_any(path, test_globs):
            continue
        try:
            new = test_functions(text)
        except SyntaxError:
            continue
        shown = run(["git", "show", f"{base}:{path}"], repo, env={"GIT_OPTIONAL_LOCKS": "0"})
        try:
            old = test_functions(shown.stdout) if shown.returncode == 0 else {}
            whole = shown.returncode != 0 or _rest_of_module(shown.stdout) != _rest_of_module(text)
        except SyntaxError:
            old, whole = {}, True
        out += [f"{path}::{t}" for t, dump in new.items() if whole or old.get(t) != dump]
    return out


# ---------------------------------------------------------------------- the sandbox
def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in _SKIP_DIRS}
    for n in names:
        if (Path(directory) / n / "pyvenv.cfg").is_file():
            skip.add(n)  # a virtual environment under another name
    return skip


@dataclass
class _Sandbox:
    """A throw-away copy of the worktree: every mutant and every swapped test file is written
    here, never to the worktree."""

    root: Path
    ctx: GateContext

    def write(self, path: str, text: str | None) -> None:
        """Write a file; None: remove it (a file the other version of the tree does not have)."""
        full = self.root / path
        if text is None:
            full.unlink(missing_ok=True)
            return
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text, encoding="utf-8")

    def read(self, path: str) -> str | None:
        full = self.root / path
        return full.read_text(encoding="utf-8") if full.is_file() else None

    def pytest(self, ids: Sequence[str], timeout: float, *, coverage: bool = False) -> _Report:
        """Run exactly `ids` (none: the suite, as the pytest gate runs it): outcome by test
        function id (None: no report, the run hung or died), where each failed assert was
        raised, and with `coverage` the lines each test function ran, by repo-relative path."""
        cfg = pytest_gate.pytest_config(self.ctx.cfg)
        ctx = replace(self.ctx, cfg=cfg.model_copy(update={"timeout": timeout}))
        with tempfile.TemporaryDirectory(prefix="harness-mutant-") as tmp_name:
            tmp = Path(tmp_name)
            junit = tmp / "junit.xml"
            argv = pytest_gate.base_argv(ctx.python, junit)
            if coverage:
                argv += [f"--cov={self.root}", "--cov-context=test", "--cov-report="]
                if cfg.config:
                    argv += [f"--cov-config={self.root / cfg.config}"]
            # The long traceback ends with "path:line: ExceptionType": where a failure was raised.
            argv += [*cfg.args, "--tb=long", "--", *(ids or cfg.paths)]
            proc = run_tool(argv, ctx, env=pytest_gate.tool_env(ctx, tmp))
            text = junit.read_text(encoding="utf-8") if junit.is_file() else None
            lines = self._contexts(tmp) if coverage and text is not None else None
        if text is None or proc.timed_out:
            return _Report(None, {}, lines, proc)
        try:
            cases = pytest_gate.parse_junit(text, self.root)
            asserted = _asserted(text, self.root)
        except ValueError:
            return _Report(None, {}, lines, proc)
        return _Report(_fold({c.id: c.verdict for c in cases}), asserted, lines, proc)

    def _contexts(self, tmp: Path) -> dict[str, dict[str, set[int]]] | None:
        """Lines by test function id and path; None when coverage wrote nothing readable."""
        data, out_file = tmp / ".coverage", tmp / "contexts.json"
        if not data.is_file():
            return None
        read = run(
            [self.ctx.python, "-c", _CONTEXTS, str(data), str(out_file)],
            self.root,
            timeout=self.ctx.cfg.timeout,
            env=BASE_ENV,
        )
        if read.returncode != 0 or not out_file.is_file():
            return None
        raw: dict[str, dict[str, list[int]]] = json.loads(out_file.read_text(encoding="utf-8"))
        out: dict[str, dict[str, set[int]]] = {}
        for test, files in raw.items():
            mine = out.setdefault(_function_id(test), {})
            for path, nums in files.items():
                mine.setdefault(rel_path(self.root, path), set()).update(nums)
        return out


@dataclass
class _Report:
    outcomes: dict[str, str] | None  # test function id -> outcome; None: no report
    asserted: dict[str, str]  # test function id -> path where its failed assert was raised
    lines: dict[str, dict[str, set[int]]] | None  # None: not measured, or unreadable
    proc: ProcResult


# The exceptions a check raises: `assert`, unittest's assert* methods, pytest.fail and
# pytest.raises' "DID NOT RAISE".
_CHECK_FAILURES = frozenset({"AssertionError", "Failed"})
_CRASH_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<type>[A-Za-z_][\w.]*)\s*$")


def _asserted(text: str, root: Path) -> dict[str, str]:
    """Test function id -> the file where its failure was raised, for the failures that are a
    check failing (not an exception from the code under test). "" when the report does not say
    where (a traceback style without locations) but its message is an assert's."""
    out: dict[str, str] = {}
    for case in SafeET.fromstring(text).iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            continue
        fid = _function_id(pytest_gate.node_id(case, root))
        tail = [ln for ln in (failure.text or "").splitlines() if ln.strip()]
        crash = _CRASH_LINE.match(tail[-1]) if tail else None
        if crash is not None:
            if crash.group("type").rsplit(".", 1)[-1] in _CHECK_FAILURES:
                out.setdefault(fid, rel_path(root, crash.group("path")))
            continue
        message = failure.get("message") or ""
        if message.startswith(("AssertionError", "assert ", "Failed")):
            out.setdefault(fid, "")
    return out


# Runs in the target's interpreter, with its coverage: the data file format is its own.
_CONTEXTS = """
import json, sys
from coverage import CoverageData

data = CoverageData(basename=sys.argv[1])
data.read()
out = {}
for path in data.measured_files():
    for lineno, contexts in (data.contexts_by_lineno(path) or {}).items():
        for ctx in contexts:
            # pytest-cov names a context "<node id>|setup|run|teardown".
            test = ctx.rsplit("|", 1)[0] if "|" in ctx else ctx
            if test:
                out.setdefault(test, {}).setdefault(path, []).append(lineno)
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump(out, fh)
"""


def _function_id(test_id: str) -> str:
    """A parametrized test's id without its parameters: the test function is what is judged."""
    return test_id.split("[", 1)[0]


def _fold(outcomes: Mapping[str, str]) -> dict[str, str]:
    """Outcomes of parametrized cases folded into their function: killed if any case failed."""
    out: dict[str, str] = {}
    for tid, outcome in outcomes.items():
        fid = _function_id(tid)
        prev = out.get(fid)
        if prev is None or _rank(outcome) > _rank(prev):
            out[fid] = outcome
    return out


def _rank(outcome: str) -> int:
    """A case that fails makes its function fail; one that passes makes it run."""
    return 2 if outcome in _KILLING else 1 if outcome == "passed" else 0


# ---------------------------------------------------------------------- the check
@dataclass(eq=False)  # hashed by identity: a key of the kills maps
class _Test:
    id: str
    new: bool
    # An unchanged test that ran a function the patch changes: it counts in the score only.
    covers_change: bool = False
    after_lines: dict[str, set[int]] = field(default_factory=dict)
    before_lines: dict[str, set[int]] | None = None  # None: no judged old version
    after_tried: set[int] = field(default_factory=set)
    after_killed: set[int] = field(default_factory=set)  # failed, hung or crashed
    after_caught: set[int] = field(default_factory=set)  # failed in one of its checks
    before_tried: set[int] = field(default_factory=set)
    before_caught: set[int] = field(default_factory=set)
    # Mutants this test reaches with the patch and was not run on: the verdict did not need them.
    after_put_off: set[int] = field(default_factory=set)
    judged: bool = True
    note: str = ""
    refused: str | None = None  # a violation message found before any mutant ran


@dataclass(frozen=True)
class _Pair:
    """One mutant as made in the tree before the patch and in the tree with it (same key);
    `before` is None where the code it changes is new."""

    before: Mutant | None
    after: Mutant

    def label(self) -> str:
        return self.after.label()


def check_tests(
    worktree: Path,
    policy: Policy,
    python: str,
    changed: Sequence[str],
    covered: Mapping[str, Mapping[str, Collection[int]]] | None = None,
    *,
    base: str = "HEAD",
    config: MutationConfig | None = None,
    files: Collection[str] | None = None,
    covering: Collection[str] | None = None,
    provider: str | None = None,
) -> MutationResult:
    """Judge the new or changed tests `changed` (test function node ids) of the patch written to
    `worktree`, against the tree as it was at `base`. `covered`: the lines each of them ran
    (test id -> path -> lines), if already measured on this tree; None measures them here.
    `files`: every path the patch writes or deletes (default: the changed tests' modules); their
    versions at `base` make the tree before it. With `source_patches` on (or 'auto' and the
    patch not from the builtin `provider`; None: a patch the harness did not ask for), a patch
    to source files is judged too, on the unchanged tests that ran a function it changes:
    `covering`, when the caller knows them, else found here by a run of the suite with coverage
    at `base`. `python`: the interpreter the tests run in. The worktree is only read."""
    t0 = time.monotonic()
    cfg = config or policy.guard.mutation
    worktree = Path(worktree).resolve()
    ids = list(dict.fromkeys(_function_id(t) for t in changed))
    paths = sorted(set(files or ()) | {t.split("::", 1)[0] for t in ids})
    source = [p for p in paths if _source_path(p, policy.guard.test_globs)]
    judge_source = cfg.judges_source(provider)
    if not cfg.enabled:
        return _skipped("off in the policy ([guard.mutation] enabled = false)", t0)
    if not ids and not (judge_source and source):
        why = "no new or changed test"
        if source:
            why += "; source patches are not judged ([guard.mutation] source_patches = " + (
                "false)" if cfg.source_patches is False else "'auto', the builtin provider)"
            )
        return _skipped(why, t0)
    if not ids and not _changes_a_function(worktree, base, source):
        # Nothing to judge: no sandbox, no pytest (an import removed, a constant changed).
        return _skipped("the patch changes no function that both versions of its files define", t0)
    tmp = Path(tempfile.mkdtemp(prefix="harness-mutation-"))
    try:
        box, problem = _sandbox(worktree, tmp, policy, python)
        if box is None:
            return _unjudged(cfg, problem, ids, t0)
        return _Run(
            box,
            worktree,
            cfg,
            policy.guard.test_globs,
            ids,
            covered,
            base,
            t0,
            files=paths,
            judge_source=judge_source and bool(source),
            covering=None if covering is None else sorted({_function_id(t) for t in covering}),
        ).go()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_patch_tests(
    worktree: Path,
    policy: Policy,
    contents: Mapping[str, bytes | None],
    *,
    base: str = "HEAD",
    guard: GuardConfig | None = None,
    covering: Collection[str] | None = None,
    provider: str | None = None,
) -> MutationResult:
    """The layer on a patch written to `worktree` (`contents`: the verdict's files): its new or
    changed tests, and where source patches are judged (`source_patches`, for `provider`'s
    patches) the tests that ran the source it changes (`covering`, if the caller knows them),
    run in the pytest gate's interpreter."""
    guard = guard or policy.guard
    texts = {
        p: d.decode("utf-8", "replace") if d is not None else None for p, d in contents.items()
    }
    ids = changed_tests(worktree, base, texts, guard.test_globs)
    pol = policy.model_copy(update={"guard": guard})
    return check_tests(
        worktree,
        pol,
        interpreter(policy),
        ids,
        base=base,
        config=guard.mutation,
        files=list(contents),
        covering=covering,
        provider=provider,
    )


def _at(repo: Path, base: str, path: str) -> str | None:
    """A file's text at `base`; None where it does not exist there."""
    shown = run(["git", "show", f"{base}:{path}"], repo, env={"GIT_OPTIONAL_LOCKS": "0"})
    return shown.stdout if shown.returncode == 0 else None


def _changes_a_function(worktree: Path, base: str, paths: Sequence[str]) -> bool:
    for path in paths:
        full = worktree / path
        before = _at(worktree, base, path)
        after = full.read_text(encoding="utf-8", errors="replace") if full.is_file() else None
        if before is not None and after is not None and changed_functions(before, after):
            return True
    return False


def _source_path(path: str, globs: Sequence[str]) -> bool:
    """A Python file of the project's code: not a test, not a conftest.py."""
    name = PurePosixPath(path).name
    return path.endswith(".py") and name != "conftest.py" and not match_any(path, globs)


def _sandbox(worktree: Path, tmp: Path, policy: Policy, python: str) -> tuple[_Sandbox | None, str]:
    root = tmp / (worktree.name or "tree")
    try:
        shutil.copytree(worktree, root, symlinks=True, ignore=_ignore)
    except (OSError, shutil.Error) as exc:
        return None, f"the worktree could not be copied: {one_line(str(exc), 200)}"
    interp = python if Path(python).is_absolute() or "/" not in python else str(worktree / python)
    gates = policy.gates.model_copy(update={"python": interp})
    pol = policy.model_copy(update={"gates": gates})
    try:
        # The copy's packages must be the ones imported, not an editable install's.
        pol = require_worktree_imports(root, pol, measured_packages(root, pol)).policy
    except (ImportLeak, GateError) as exc:
        return None, f"the copy's packages would not be imported: {exc}"
    return _Sandbox(root=root, ctx=context_for(root, pol, pol.gates.pytest)), ""


def _skipped(why: str, t0: float) -> MutationResult:
    seconds = time.monotonic() - t0
    return MutationResult(
        accepted=True,
        layer=LayerRun(layer=LAYER, ran=False, why=why, seconds=seconds),
        seconds=seconds,
    )


def _unjudged(cfg: MutationConfig, why: str, ids: list[str], t0: float) -> MutationResult:
    seconds = time.monotonic() - t0
    violations = (
        [Violation(rule="mutation.not_judged", layer=LAYER, message=f"{why} (fail_closed)")]
        if cfg.fail_closed
        else []
    )
    return MutationResult(
        accepted=not violations,
        violations=violations,
        layer=LayerRun(layer=LAYER, ran=False, why=one_line(why), seconds=seconds),
        tests=[TestKills(test=t, new=None, judged=False, note=one_line(why)) for t in ids],
        seconds=seconds,
    )


class _Run:
    """One check: measure, select mutants, run them within the budget, judge."""

    def __init__(
        self,
        box: _Sandbox,
        worktree: Path,
        cfg: MutationConfig,
        globs: Sequence[str],
        ids: list[str],
        covered: Mapping[str, Mapping[str, Collection[int]]] | None,
        base: str,
        t0: float,
        *,
        files: Sequence[str],
        judge_source: bool,
        covering: list[str] | None,
    ) -> None:
        self.box, self.worktree, self.cfg, self.base, self.t0 = box, worktree, cfg, base, t0
        self.deadline = t0 + cfg.budget_seconds
        self.globs = list(globs)
        self.covered = covered
        self.tests = {t: _Test(id=t, new=True) for t in ids}
        self.files = list(files)
        self.judge_source = judge_source
        self.covering = covering
        # The patch's files in the tree before it and with it (None: the file is absent).
        self.after_files: dict[str, str | None] = {}
        self.before_files: dict[str, str | None] = {}
        # Source path -> the functions the patch changes there (judged with their tests' score).
        self.changed: dict[str, set[str]] = {}
        self.timeout = cfg.min_timeout_seconds
        self.exhausted = False
        self.tried_set: set[int] = set()
        self.note = ""

    def go(self) -> MutationResult:
        problem = self._measure()
        if problem is not None:
            result = _unjudged(self.cfg, problem, list(self.tests), self.t0)
            return result.model_copy(update={"budget_exhausted": self.exhausted})
        if not self.tests:
            return _skipped(self.note or "no test to judge", self.t0)
        pairs = self._select()
        finished = True
        for index, pair in enumerate(pairs):
            if self._out_of_time():
                finished = False
                break
            self._try(index, pair)
        else:
            finished = self._settle(pairs)
        return self._verdict(pairs, finished and not self.exhausted)

    def _out_of_time(self) -> bool:
        if time.monotonic() + self.timeout > self.deadline:
            self.exhausted = True
        return self.exhausted

    # -------------------------------------------------------------- measuring
    def _measure(self) -> str | None:
        self._read_files()
        if self.judge_source:
            problem = self._find_covering()
            if problem is not None:
                return problem
        if not self.tests:
            return None
        ids = list(self.tests)
        budget = max(self.deadline - time.monotonic(), 1.0)
        want_cov = self.covered is None or any(t not in self.covered for t in ids)
        report = self.box.pytest(ids, budget, coverage=want_cov)
        outcomes, lines, proc = report.outcomes, report.lines, report.proc
        if proc.timed_out:
            self.exhausted = True
            return (
                f"the budget of {self.cfg.budget_seconds:g}s ran out while the unmutated tests ran"
            )
        if outcomes is None:
            return f"the changed tests did not run unmutated in the copy: {_why(proc)}"
        if want_cov and lines is None:
            return f"coverage contexts could not be read (is pytest-cov installed?): {proc.tail}"
        if proc.returncode not in (0, 1):
            return f"pytest exited {proc.returncode} on the unmutated tests: {proc.tail}"
        self.timeout = max(self.cfg.min_timeout_seconds, TIMEOUT_FACTOR * proc.seconds + 1.0)
        for tid, test in self.tests.items():
            if self.covered is not None and tid in self.covered:
                given = self.covered[tid]
                test.after_lines = {p: set(n) for p, n in given.items()}
            else:
                test.after_lines = (lines or {}).get(tid, {})
            outcome = outcomes.get(tid, "not collected")
            if outcome in ("skipped", "xfailed") and not test.covers_change:
                test.refused = (
                    f"test {tid} is {outcome} without any mutant: it runs nothing, so it kills "
                    "nothing"
                )
            elif outcome != "passed":
                test.judged = False
                test.note = f"{outcome} without any mutant (the pytest gate judges that)"
        olds = [
            t
            for t in self.tests.values()
            if not t.new and t.judged and t.refused is None and t.before_lines is None
        ]
        if olds:
            self._swap(self.before_files)
            budget = max(self.deadline - time.monotonic(), 1.0)
            old_report = self.box.pytest([t.id for t in olds], budget, coverage=True)
            before, before_lines, bproc = old_report.outcomes, old_report.lines, old_report.proc
            self._swap(self.after_files)
            for t in olds:
                if before is not None and before_lines is not None and before.get(t.id) == "passed":
                    t.before_lines = before_lines.get(t.id, {})
                else:
                    got = before.get(t.id, "not run") if before is not None else _why(bproc)
                    t.note = f"its old version did not pass here ({got}): no score to compare"
        return None

    def _read_files(self) -> None:
        """The patch's files before and with it; a changed test that existed is an old one."""
        for path in self.files:
            self.after_files[path] = self.box.read(path)
            before = _at(self.worktree, self.base, path)
            self.before_files[path] = before
            after = self.after_files[path]
            if before is not None and after is not None and _source_path(path, self.globs):
                names = changed_functions(before, after)
                if names:
                    self.changed[path] = names
            if before is None:
                continue
            try:
                old = test_functions(before)
            except SyntaxError:
                continue
            for tid, test in self.tests.items():
                file, _, name = tid.partition("::")
                if file == path and name in old:
                    test.new = False

    def _swap(self, files: Mapping[str, str | None]) -> None:
        for path, text in files.items():
            self.box.write(path, text)

    def _find_covering(self) -> str | None:
        """Add the unchanged tests that ran, before the patch, a function it changes."""
        if not self.changed:
            self.note = "the patch changes no function that both versions of its files define"
            return None
        spans = {
            p: function_lines(self.before_files[p] or "", names)
            for p, names in self.changed.items()
        }
        if self.covering is not None:
            found = [t for t in self.covering if t not in self.tests]
        else:
            self._swap(self.before_files)
            try:
                budget = max(self.deadline - time.monotonic(), 1.0)
                report = self.box.pytest([], budget, coverage=True)
            finally:
                self._swap(self.after_files)
            if report.proc.timed_out:
                self.exhausted = True
                return (
                    f"the budget of {self.cfg.budget_seconds:g}s ran out while the suite ran "
                    "with coverage before the patch (to find the tests of the changed code)"
                )
            if report.outcomes is None or report.lines is None:
                return (
                    "the suite did not run with coverage before the patch, so the tests of the "
                    f"changed code are not known: {_why(report.proc)}"
                )
            found = []
            for tid, by_path in sorted(report.lines.items()):
                hits = any(by_path.get(p, set()) & lines for p, lines in spans.items())
                if hits and report.outcomes.get(tid) == "passed" and tid not in self.tests:
                    found.append(tid)
                    # Measured on the tree before the patch: no second run needed.
                    self.tests[tid] = _Test(id=tid, new=False, covers_change=True)
                    self.tests[tid].before_lines = by_path
        for tid in found:
            self.tests.setdefault(tid, _Test(id=tid, new=False, covers_change=True))
        if not any(t.covers_change for t in self.tests.values()):
            self.note = "no test ran the changed function(s) before the patch: " + ", ".join(
                f"{p}:{n}" for p, ns in sorted(self.changed.items()) for n in sorted(ns)
            )
        return None

    # -------------------------------------------------------------- mutants
    def _is_source(self, path: str) -> bool:
        if not _source_path(path, self.globs) or path.startswith("../"):
            return False
        if Path(path).is_absolute():
            return False
        return (self.box.root / path).is_file()

    def _live(self) -> list[_Test]:
        return [t for t in self.tests.values() if t.judged and t.refused is None]

    def _select(self) -> list[_Pair]:
        """The mutants to run, each made in both trees where the code it changes is in both.
        Both versions are made on every function either version's tests ran, so a mutant the
        patch stops reaching is still made after it (and survives there)."""
        after_run: dict[str, set[int]] = {}
        before_run: dict[str, set[int]] = {}
        for test in self._live():
            for path, nums in test.after_lines.items():
                if self._is_source(path):
                    after_run.setdefault(path, set()).update(nums)
            for path, nums in (test.before_lines or {}).items():
                if _source_path(path, self.globs):
                    before_run.setdefault(path, set()).update(nums)
        by_file: dict[str, list[_Pair]] = {}
        for path in sorted(set(after_run) | set(before_run)):
            after = self.box.read(path) if self._is_source(path) else None
            if after is None:
                continue
            before = self.before_files.get(path, after)
            names = functions_run(after, after_run.get(path, set()))
            if before is not None:
                names |= functions_run(before, before_run.get(path, set()))
            after_ms = mutants_of(path, after, function_lines(after, names))
            if before == after:
                by_file[path] = [_Pair(m, m) for m in after_ms]
                continue
            old = (
                {m.key: m for m in mutants_of(path, before, function_lines(before, names))}
                if before is not None
                else {}
            )
            by_file[path] = [_Pair(old.get(m.key), m) for m in after_ms]
        # Each judged test gets its turn: a test is judged on mutants of lines it runs.
        queues: list[list[_Pair]] = []
        for test in self._live():
            mine = [p for ps in by_file.values() for p in ps if self._reaches(test, p)]
            queues.append(_spread(mine))
        chosen: list[_Pair] = []
        seen: set[str] = set()
        while len(chosen) < self.cfg.max_mutants and any(queues):
            for queue in queues:
                while queue and queue[0].after.key in seen:
                    queue.pop(0)
                if queue and len(chosen) < self.cfg.max_mutants:
                    pair = queue.pop(0)
                    seen.add(pair.after.key)
                    chosen.append(pair)
        return chosen

    def _reaches(self, test: _Test, pair: _Pair) -> bool:
        """Whether a mutant is one to judge `test` on: on a line it runs in either tree; for a
        test that only covers changed code, in a changed function and in both trees."""
        if test.covers_change:
            names = self.changed.get(pair.after.path, set())
            if pair.before is None or not _in_functions(pair.after, names):
                return False
        runs = pair.after.line in test.after_lines.get(pair.after.path, set())
        if pair.before is not None and test.before_lines is not None:
            runs = runs or pair.before.line in test.before_lines.get(pair.before.path, set())
        return runs

    def _try(self, index: int, pair: _Pair) -> None:
        """The tests as they were first, then the tests with the patch, but only where their
        run can change the verdict: a test that caught no mutant yet must be run on all it
        reaches (a refusal needs them all), and a mutant the old tests caught must be caught
        again. The rest are put off; `_settle` runs them only if the score needs them."""
        live = [t for t in self._live() if self._reaches(t, pair)]
        after = [t for t in live if _runs(t, pair.after, t.after_lines)]
        before = [t for t in live if _runs_before(t, pair)]
        if before and pair.before is not None:
            self._swap(self.before_files)
            try:
                self._with_mutant(pair.before, before, index, after=False)
            finally:
                self._swap(self.after_files)
            self.tried_set.add(index)
        if not after:
            return
        undecided = any(not t.after_caught and not t.covers_change for t in after)
        caught_before = any(index in t.before_caught for t in live)
        if undecided or caught_before:
            self._with_mutant(pair.after, after, index, after=True)
            self.tried_set.add(index)
        elif pair.before is not None and any(t.before_lines is not None for t in after):
            for t in after:
                t.after_put_off.add(index)

    def _settle(self, pairs: list[_Pair]) -> bool:
        """Run the put-off mutants with the patch while the score it has so far is below the
        score before it: the score compares counts, so a mutant caught only now makes up for
        one caught before and lost. False: the budget ran out first."""
        waiting = sorted({i for t in self._live() for i in t.after_put_off})
        for index in waiting:
            if self._score(pairs, True).after_short <= 0:
                break
            if self._out_of_time():
                return False
            tests = [t for t in self._live() if index in t.after_put_off]
            for t in tests:
                t.after_put_off.discard(index)
            self._with_mutant(pairs[index].after, tests, index, after=True)
            self.tried_set.add(index)
        return True

    def _with_mutant(self, mutant: Mutant, tests: list[_Test], index: int, *, after: bool) -> None:
        original = self.box.read(mutant.path)
        try:
            self.box.write(mutant.path, mutant.text)
            for t, how in self._kills(tests).items():
                if after:
                    t.after_tried.add(index)
                    if how != "survived":
                        t.after_killed.add(index)
                    if how == "caught":
                        t.after_caught.add(index)
                else:
                    t.before_tried.add(index)
                    if how == "caught":
                        t.before_caught.add(index)
        finally:
            self.box.write(mutant.path, original)

    def _kills(self, tests: list[_Test]) -> dict[_Test, str]:
        """What the mutant now written did to each of `tests`: caught (a check of the test
        failed), killed (it failed otherwise: an exception from the code, a hang, a crash) or
        survived."""
        if not tests:
            return {}
        report = self.box.pytest([t.id for t in tests], self.timeout)
        if report.outcomes is not None:
            return {t: self._how(t, report) for t in tests}
        if len(tests) == 1:
            return {tests[0]: "killed"}  # it hung or took the interpreter down
        # Several tests and no report: run each alone to see which one the mutant stopped.
        out: dict[_Test, str] = {}
        for t in tests:
            if time.monotonic() + self.timeout > self.deadline:
                self.exhausted = True
                break
            out |= self._kills([t])
        return out

    def _how(self, test: _Test, report: _Report) -> str:
        outcomes = report.outcomes or {}
        outcome = outcomes.get(test.id)
        if outcome is None:
            return "killed" if report.proc.returncode != 0 else "survived"
        if outcome not in _KILLING:
            return "survived"
        where = report.asserted.get(test.id)
        # An assert inside the project's own code is the code failing, not the test checking.
        return "caught" if where is not None and not self._is_source(where) else "killed"

    # -------------------------------------------------------------- verdict
    def _verdict(self, pairs: list[_Pair], complete: bool) -> MutationResult:
        violations: list[Violation] = []
        kills: list[TestKills] = []
        tried = len(self.tried_set)
        put_off = {i for t in self._live() for i in t.after_put_off}
        for test in self.tests.values():
            path = test.id.split("::", 1)[0]
            record = TestKills(
                test=test.id,
                new=test.new,
                covers_change=test.covers_change,
                judged=test.judged,
                tried=len(test.after_tried),
                killed=len(test.after_killed),
                caught=len(test.after_caught),
                note=test.note,
            )
            if test.before_lines is not None:
                record.before_tried = len(test.before_tried)
                record.before_caught = len(test.before_caught)
            if test.refused is not None:
                violations.append(_violation("kills_nothing", path, test.refused))
            elif test.judged and not test.covers_change:
                self._judge(test, record, pairs, complete, violations)
            kills.append(record)
        score = self._score(pairs, complete)
        unjudged = [k for k in kills if not k.judged and not k.covers_change]
        # One not_judged per patch: the tests left unjudged say more than the score's.
        violations += [
            v for v in score.violations if not (unjudged and v.rule == "mutation.not_judged")
        ]
        if unjudged and self.cfg.fail_closed:
            names = ", ".join(k.test for k in unjudged)
            cause = (
                f"the budget of {self.cfg.budget_seconds:g}s ran out"
                if self.exhausted
                else "their runs gave no usable result"
            )
            violations.append(
                Violation(
                    rule="mutation.not_judged",
                    layer=LAYER,
                    message=f"not judged: {names} ({cause}; fail_closed)",
                )
            )
        caught_any = {i for t in self.tests.values() for i in t.after_caught}
        caught_own = {i for t in self.tests.values() if not t.covers_change for i in t.after_caught}
        killed_any = {i for t in self.tests.values() for i in t.after_killed}
        seconds = time.monotonic() - self.t0
        files = sorted({p.after.path for p in pairs})
        functions = sorted({f"{p.after.path}:{p.after.function}" for p in pairs})
        changed = sum(1 for t in self.tests.values() if not t.covers_change)
        covering = len(self.tests) - changed
        why = (
            f"{tried}/{len(pairs)} mutant(s) of {len(functions)} function(s) in "
            f"{len(files)} file(s) against {changed} new or changed test(s)"
        )
        if covering:
            why += f" and {covering} test(s) of the changed source"
        if score.before is not None and score.after is not None:
            why += f"; score {score.before:.2f} -> {score.after:.2f} on {score.of} mutant(s)"
        if put_off:
            why += (
                f"; {len(put_off)} not run with the patch: the verdict was decided without "
                "them (the score after is then at least the one shown)"
            )
        if self.exhausted:
            why += f"; the budget of {self.cfg.budget_seconds:g}s ran out"
        if unjudged:
            why += f"; not judged: {', '.join(k.test for k in unjudged)}"
        return MutationResult(
            accepted=not violations,
            violations=violations,
            layer=LayerRun(layer=LAYER, ran=True, why=why, seconds=seconds),
            tests=kills,
            mutants=len(pairs),
            tried=tried,
            put_off=len(put_off),
            caught=len(caught_own),
            score_before=score.before,
            score_after=score.after,
            score_mutants=score.of,
            score_complete=score.complete,
            lost=score.lost,
            survived=[pairs[i].label() for i in sorted(self.tried_set - killed_any - put_off)],
            uncaught=[pairs[i].label() for i in sorted(killed_any - caught_any)],
            budget_exhausted=self.exhausted,
            seconds=seconds,
        )

    def _score(self, pairs: list[_Pair], complete: bool) -> _Score:
        """The score of the tests that cover the changed code, before and with the patch: of
        the mutants made in both trees that either version of them ran, the share one of their
        checks failed on. A mutant the tests no longer reach counts as one they no longer catch.
        The mutants are those the tests that existed before ran; a new test counts where it
        catches one of them (an assert moved into it), not for the code only it runs."""
        scored = [t for t in self._live() if t.before_lines is not None]
        if not scored:
            return _Score()
        common = {i for i, p in enumerate(pairs) if p.before is not None}
        ran: set[int] = set()
        before: set[int] = set()
        for t in scored:
            ran |= t.before_tried | t.after_tried | t.after_put_off
            before |= t.before_caught
        ran &= common
        before &= ran
        after = {i for t in self._live() for i in t.after_caught} & ran
        if not ran:
            out = _Score(complete=complete)
            if not complete and self.cfg.fail_closed:
                out.violations.append(self._score_unjudged(0, len(pairs)))
            return out
        out = _Score(
            before=len(before) / len(ran),
            after=len(after) / len(ran),
            of=len(ran),
            complete=complete,
            lost=[pairs[i].label() for i in sorted(before - after)],
            after_short=len(before) - len(after),
        )
        if len(after) < len(before):
            shown = "; ".join(out.lost[:5]) + (
                f"; and {len(out.lost) - 5} more" if len(out.lost) > 5 else ""
            )
            weaker = [t for t in scored if t.before_caught & (before - after)]
            changed_tests = [t for t in weaker if not t.covers_change]
            if changed_tests:
                path = changed_tests[0].id.split("::", 1)[0]
                who = "the changed tests"
                how = "the change weakens them"
            else:
                path = sorted(self.changed)[0] if self.changed else pairs[0].after.path
                who = "the tests of the changed code"
                how = "the patch makes its tests check less of the code they ran"
            partial = (
                ""
                if complete
                else f" (on the {len(ran)} mutant(s) tried before the budget ran out)"
            )
            out.violations.append(
                _violation(
                    "score_dropped",
                    path,
                    f"{who} ({', '.join(t.id for t in weaker[:5])}) catch {len(after)} of "
                    f"{len(ran)} mutant(s) with the patch ({out.after:.2f}), {len(before)} "
                    f"before it ({out.before:.2f}){partial}: {how}; caught before, surviving "
                    f"now: {shown}",
                )
            )
        elif not complete and self.cfg.fail_closed:
            out.violations.append(self._score_unjudged(len(ran), len(pairs)))
        return out

    def _score_unjudged(self, ran: int, selected: int) -> Violation:
        return Violation(
            rule="mutation.not_judged",
            layer=LAYER,
            message=f"the score of the tests that cover the changed code was compared on {ran} "
            f"of {selected} mutant(s): the budget of {self.cfg.budget_seconds:g}s ran out "
            "(fail_closed)",
        )

    def _judge(
        self,
        test: _Test,
        record: TestKills,
        pairs: list[_Pair],
        complete: bool,
        violations: list[Violation],
    ) -> None:
        """A new test must catch a mutant of the code it runs; a changed one must not catch
        fewer than its version before the patch (the score compares which ones), so a lint fix
        to a test that caught none before is not refused for catching none after it."""
        if test.after_caught:
            return
        path = test.id.split("::", 1)[0]
        mine = [i for i, p in enumerate(pairs) if self._reaches(test, p)]
        # Each version judged on every mutant it runs, or the whole selection run.
        all_tried = complete or all(
            (i in test.after_tried or not _runs(test, pairs[i].after, test.after_lines))
            and (i in test.before_tried or not _runs_before(test, pairs[i]))
            for i in mine
        )
        if test.before_lines is not None and not test.before_caught and all_tried:
            record.note = (
                f"caught none of the {len(test.after_tried)} mutant(s) it runs, and its version "
                f"before the patch none of {len(test.before_tried)}: it checks no less than before"
            )
            return
        ran_code = any(self._is_source(p) for p in test.after_lines)
        crashed = len(test.after_killed)
        only = (
            f" ({crashed} of them made the code raise, hang or crash, which calling it "
            "without checking anything also notices)"
            if crashed
            else ""
        )
        if test.before_caught:
            only += f"; its version before the patch caught {len(test.before_caught)}"
        if not ran_code:
            violations.append(
                _violation(
                    "kills_nothing",
                    path,
                    f"test {test.id} runs no function of the project (its subject is "
                    "replaced, or its calls never happen): no check of it can fail on a "
                    "mutant; call the real code and assert on what it returns",
                )
            )
        elif test.after_tried and all_tried:
            where = ", ".join(sorted({pairs[i].after.function for i in test.after_tried}))
            violations.append(
                _violation(
                    "kills_nothing",
                    path,
                    f"no check of test {test.id} failed on any of the "
                    f"{len(test.after_tried)} mutant(s) of the code it runs ({where})"
                    f"{only}: its asserts check nothing that code does; assert on the "
                    "results",
                )
            )
        else:
            record.judged = False
            record.note = (
                "no mutant could be made of the lines it runs"
                if not mine and complete
                else f"the budget ran out after {len(test.after_tried)} of its "
                f"{len(mine)} mutant(s), none caught yet"
            )


@dataclass
class _Score:
    before: float | None = None
    after: float | None = None
    of: int = 0
    complete: bool = True
    lost: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    after_short: int = 0  # mutants caught before the patch that the tests with it still owe


def _runs(test: _Test, mutant: Mutant, lines: Mapping[str, set[int]]) -> bool:
    return test.judged and test.refused is None and mutant.line in lines.get(mutant.path, set())


def _runs_before(test: _Test, pair: _Pair) -> bool:
    """Whether the test's version before the patch runs the mutant's line there."""
    if pair.before is None or test.before_lines is None:
        return False
    return _runs(test, pair.before, test.before_lines)


def _spread(pairs: list[_Pair]) -> list[_Pair]:
    """Round-robin over functions, so a cap still touches every function a test runs."""
    by_fn: dict[tuple[str, str], list[_Pair]] = {}
    for p in pairs:
        by_fn.setdefault((p.after.path, p.after.function), []).append(p)
    out: list[_Pair] = []
    queues = list(by_fn.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _violation(rule: str, path: str, message: str) -> Violation:
    return Violation(rule=f"mutation.{rule}", layer=LAYER, path=path, message=message)


def _why(proc: ProcResult) -> str:
    if proc.timed_out:
        return f"timed out after {proc.seconds:.0f}s"
    return f"exit {proc.returncode}: {proc.tail}"


__all__ = [
    "Mutant",
    "MutationResult",
    "TestKills",
    "changed_tests",
    "check_patch_tests",
    "check_tests",
    "mutants_of",
    "test_functions",
]
