"""What a test module asserts, skips and swallows, read from its AST with imports resolved.

Names are resolved through the module's own imports, so `from pytest import mark`,
`import pytest as pt` and `from unittest import skip` are seen as what they are. Each test's
checks are counted where they run: an assert in a helper the test calls counts for the test,
an assert under `if False:` or in a nested function nobody calls does not.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

SKIP_NAMES = frozenset(
    {
        "pytest.skip",
        "pytest.xfail",
        "pytest.importorskip",
        "pytest.mark.skip",
        "pytest.mark.skipif",
        "pytest.mark.xfail",
        "_pytest.outcomes.skip",
        "_pytest.outcomes.xfail",
        "unittest.skip",
        "unittest.skipIf",
        "unittest.skipUnless",
        "unittest.expectedFailure",
        "unittest.SkipTest",
        "unittest.case.skip",
        "unittest.case.skipIf",
        "unittest.case.skipUnless",
        "unittest.case.expectedFailure",
        "unittest.case.SkipTest",
    }
)
# Ending the interpreter from a test or a conftest makes pytest stop with the status given.
EXIT_NAMES = frozenset(
    {"pytest.exit", "_pytest.outcomes.exit", "os._exit", "os.abort", "sys.exit", "os.kill"}
)
FIXTURE_NAMES = frozenset({"pytest.fixture", "pytest.yield_fixture", "_pytest.fixtures.fixture"})
# pytest's outcome machinery, raised directly instead of through pytest.skip().
_OUTCOME_ATTRS = frozenset({"Skipped", "XFailed", "OutcomeException", "Exit"})
_SWALLOWED = frozenset({"AssertionError", "Exception", "BaseException"})
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
# Checks that hold for almost any result: they do not replace a check of the value.
_WEAK_CALLS = frozenset({"isinstance", "hasattr", "callable", "issubclass", "type", "bool"})
_WEAK_METHODS = frozenset(
    {
        "assert_called",
        "assert_called_once",
        "assert_called_with",
        "assert_called_once_with",
        "assert_any_call",
        "assert_has_calls",
        "assert_not_called",
        "assert_awaited",
        "assert_awaited_once",
        "assert_awaited_with",
        "assert_awaited_once_with",
        "assert_any_await",
        "assert_has_awaits",
        "assert_not_awaited",
        "assertIsNotNone",
        "assertIsInstance",
        "assertNotIsInstance",
    }
)
_TEST_LIBS = frozenset({"pytest", "_pytest", "unittest", "mock", "hypothesis", "pytest_mock"})


@dataclass
class TestInfo:
    """One test function's checks."""

    asserts: int = 0  # checks that run, helpers in this module resolved
    value: int = 0  # of those, checks of a value (not `is not None`, isinstance, mock calls)
    effects: int = 0  # body statements other than pass, `...` and a docstring
    imports: int = 0  # names imported in the body: an import test checks these
    external: list[tuple[str, int, str]] = field(default_factory=list)  # (module, level, name)


@dataclass
class TestFacts:
    asserts: dict[str, int] = field(default_factory=dict)  # test -> asserts in it
    early_returns: dict[str, int] = field(default_factory=dict)  # test -> returns before asserts
    trivial: list[int] = field(default_factory=list)  # lines of always-true asserts
    swallowers: list[int] = field(default_factory=list)  # lines that catch failed asserts
    skips: list[tuple[int, str]] = field(default_factory=list)  # (line, qualified name)
    tests: dict[str, TestInfo] = field(default_factory=dict)
    # module-level functions (helpers other modules may call) -> (asserts, value checks)
    functions: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (rule, line, what): tricks that stop a test from running or checking, one per finding
    flags: list[tuple[str, int, str]] = field(default_factory=list)
    # (line, dotted target) patched by an autouse fixture: project code replaced for every test
    autouse_patches: list[tuple[int, str]] = field(default_factory=list)


@lru_cache(maxsize=64)
def parse(text: str) -> ast.Module | None:
    """The module's AST, parsed once per text however many rules ask; None if it does not parse."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@lru_cache(maxsize=64)
def walked(text: str) -> tuple[ast.Module, list[ast.AST], dict[str, str]] | None:
    """The module's AST, all its nodes and its import aliases: one walk for every rule."""
    tree = parse(text)
    if tree is None:
        return None
    nodes = list(ast.walk(tree))
    return tree, nodes, aliases(tree, nodes)


def aliases(tree: ast.AST, nodes: list[ast.AST] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in ast.walk(tree) if nodes is None else nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".", 1)[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def qual(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = qual(node.value, names)
        return None if base is None else f"{base}.{node.attr}"
    return None


def folded(node: ast.AST | None) -> str | None:
    """A string the expression always evaluates to: constants and their concatenations."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = folded(node.left), folded(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [folded(v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
    return None


def _is_assert(node: ast.AST) -> bool:
    return isinstance(node, ast.Assert) or (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr.startswith("assert") or node.func.attr in ("raises", "warns"))
    )


def _const(node: ast.expr) -> bool | None:
    """The truth value an expression always has, or None when it depends on the code."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) if not any(isinstance(e, ast.Starred) for e in node.elts) else None
    if isinstance(node, ast.Dict):
        return bool(node.keys) or None
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.Or) and _complementary(node.values):
            return True
        values = [_const(v) for v in node.values]
        if isinstance(node.op, ast.Or):
            return True if True in values else (False if all(v is False for v in values) else None)
        return False if False in values else (True if all(values) else None)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _const(node.operand)
        return None if inner is None else not inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        # (a == b) | True: an or-ed true side makes the whole true, whatever a and b are.
        if _const(node.left) is True or _const(node.right) is True:
            return True
        return None
    if isinstance(node, ast.IfExp):
        test = _const(node.test)
        if test is not None:
            return _const(node.body if test else node.orelse)
        body, orelse = _const(node.body), _const(node.orelse)
        return body if body is not None and body == orelse else None
    if isinstance(node, ast.Compare):
        if all(isinstance(x, ast.Constant) for x in (node.left, *node.comparators)):
            return True
        if len(node.ops) == 1 and _is_len(node.left):
            bound = node.comparators[0]
            if isinstance(bound, ast.Constant) and isinstance(bound.value, int):
                op = node.ops[0]
                # a length is never negative
                if isinstance(op, ast.GtE) and bound.value <= 0:
                    return True
                if isinstance(op, ast.Gt) and bound.value < 0:
                    return True
                if isinstance(op, ast.Lt) and bound.value <= 0:
                    return False
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and len(node.args) == 2
    ):
        kind = node.args[1]
        if isinstance(kind, ast.Name) and kind.id == "object":
            return True
    return None


_OPPOSITES = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


def _complementary(values: list[ast.expr]) -> bool:
    """`a == b or a != b`, `x or not x`: one of the operands is always true."""
    seen: set[str] = set()
    for v in values:
        if isinstance(v, ast.Compare) and len(v.ops) == 1:
            sides = f"{ast.dump(v.left)} {ast.dump(v.comparators[0])}"
            key, opposite = type(v.ops[0]), _OPPOSITES.get(type(v.ops[0]))
            if opposite is not None and f"{opposite.__name__} {sides}" in seen:
                return True
            seen.add(f"{key.__name__} {sides}")
        elif isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.Not):
            if f"truth {ast.dump(v.operand)}" in seen:
                return True
            seen.add(f"not {ast.dump(v.operand)}")
        elif f"not {ast.dump(v)}" in seen:
            return True
        else:
            seen.add(f"truth {ast.dump(v)}")
    return False


def _is_len(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
    )


def _const_true(node: ast.expr) -> bool:
    """An expression that is true whatever the code under test does."""
    return _const(node) is True


def _trivial(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert):
        return _const_true(node.test)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("assertTrue", "assert_")
        and node.args
    ):
        return _const_true(node.args[0])
    return False


def _walk_own(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function body, not of functions or classes defined inside it."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _NESTED):
            stack.extend(ast.iter_child_nodes(node))


def _names(node: ast.expr | None) -> set[str]:
    if node is None:
        return set()
    elts = node.elts if isinstance(node, ast.Tuple) else [node]
    out: set[str] = set()
    for e in elts:
        if isinstance(e, ast.Name):
            out.add(e.id)
        elif isinstance(e, ast.Attribute):
            out.add(e.attr)
    return out


def _swallows(node: ast.AST) -> bool:
    if isinstance(node, ast.Try | ast.TryStar):
        body_asserts = any(_is_assert(n) for s in node.body for n in ast.walk(s))
        for h in node.handlers:
            caught = _names(h.type)
            if "AssertionError" in caught:
                return True
            if body_asserts and (h.type is None or caught & _SWALLOWED):
                return True
    if isinstance(node, ast.With | ast.AsyncWith):
        for item in node.items:
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name | ast.Attribute)
                and (call.func.id if isinstance(call.func, ast.Name) else call.func.attr)
                == "suppress"
                and any(_names(a) & _SWALLOWED for a in call.args)
            ):
                return True
    return False


def _is_test_class(node: ast.ClassDef) -> bool:
    if node.name.startswith("Test"):
        return True
    return any(
        (b.id if isinstance(b, ast.Name) else b.attr).endswith("TestCase")
        for b in node.bases
        if isinstance(b, ast.Name | ast.Attribute)
    )


def _header(stmt: ast.stmt) -> list[ast.AST]:
    """The expressions a statement evaluates itself, not those of the statements it holds."""
    if isinstance(stmt, ast.If | ast.While):
        return [stmt.test]
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return [stmt.target, stmt.iter]
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return [i.context_expr for i in stmt.items]
    if isinstance(stmt, ast.Match):
        return [stmt.subject, *(c.guard for c in stmt.cases if c.guard)]
    if isinstance(stmt, ast.Try | ast.TryStar):
        return [h.type for h in stmt.handlers if h.type]
    if isinstance(stmt, _NESTED):
        return []
    return [stmt]


def _walk_expr(node: ast.AST) -> Iterator[ast.AST]:
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        if not isinstance(cur, ast.Lambda):
            stack.extend(ast.iter_child_nodes(cur))


def _empty_iter(node: ast.expr) -> bool:
    if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
        return _const(node) is False
    if isinstance(node, ast.Constant):
        return node.value in ("", b"")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = node.args
        return len(args) == 1 and isinstance(args[0], ast.Constant) and args[0].value == 0
    return False


def _type_checking(node: ast.expr, names: dict[str, str]) -> bool:
    q = qual(node, names)
    return q is not None and q.rsplit(".", 1)[-1] == "TYPE_CHECKING"


def _single_assignments(fn: ast.AST) -> dict[str, ast.expr]:
    """Names a function binds exactly once, by a plain `name = value`, and their values."""
    counts: dict[str, int] = {}
    values: dict[str, ast.expr] = {}
    for node in _walk_own(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            counts[node.id] = counts.get(node.id, 0) + 1
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            values[node.targets[0].id] = node.value
    if isinstance(fn, _FUNCS):
        for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs):
            counts[a.arg] = counts.get(a.arg, 0) + 2
    return {k: v for k, v in values.items() if counts.get(k) == 1}


def _key(node: object, env: dict[str, ast.expr], depth: int) -> str:
    """The expression with single-assignment names replaced by their values, as text."""
    if isinstance(node, ast.Name) and depth > 0 and node.id in env:
        return _key(env[node.id], env, depth - 1)
    if isinstance(node, ast.AST):
        fields = ",".join(
            _key(getattr(node, f, None), env, depth) for f in node._fields if f != "ctx"
        )
        return f"{type(node).__name__}({fields})"
    if isinstance(node, list):
        return "[" + ",".join(_key(x, env, depth) for x in node) + "]"
    return repr(node)


def _same(a: ast.expr, b: ast.expr, env: dict[str, ast.expr]) -> bool:
    """Whether two expressions are one value, seen through names assigned once."""
    return _key(a, env, 4) == _key(b, env, 4)


def _one_value(a: ast.expr, b: ast.expr, env: dict[str, ast.expr]) -> str:
    """What a check of two sides that `_same` found to be one value compares, in words (no
    line numbers: the words also tell an old finding from a new one)."""
    left, right = ast.unparse(a)[:60], ast.unparse(b)[:60]
    if ast.dump(a) == ast.dump(b):
        return f"{left} with itself, which is always true"
    one, other = _alias(a, env), _alias(b, env)
    if ast.dump(one) == ast.dump(other):
        # `expected = result` then `result == expected`: another name for the same object.
        name = right if ast.dump(other) != ast.dump(b) else left
        return (
            f"{left} with {right}, and {name} is only another name for "
            f"{ast.unparse(one)[:60]}, so it is always true"
        )
    value = _resolved(a, env)
    shown = ast.unparse(value)[:60]
    if any(isinstance(n, ast.Call) for n in ast.walk(value)):
        # `f1 = curry(foo, 1)`, `f2 = curry(foo, 1)`: two objects, built alike.
        return (
            f"{left} with {right}, two results of the same expression {shown}, so it checks "
            "only that evaluating it twice gives equal values, not what the value should be"
        )
    return f"{left} with {right}, which both hold {shown} here, so it is always true"


def _alias(node: ast.expr, env: dict[str, ast.expr]) -> ast.expr:
    """A name followed through names assigned another name (`b = a`), to the first one."""
    for _ in range(4):
        value = env.get(node.id) if isinstance(node, ast.Name) else None
        if not isinstance(value, ast.Name):
            break
        node = value
    return node


def _resolved(node: ast.expr, env: dict[str, ast.expr]) -> ast.expr:
    """A name followed through single assignments to the value it holds."""
    for _ in range(4):
        if not (isinstance(node, ast.Name) and node.id in env):
            break
        node = env[node.id]
    return node


_SAME_OPS = (ast.Eq, ast.Is, ast.LtE, ast.GtE)


def _compared(node: ast.AST) -> tuple[ast.expr, ast.expr] | None:
    """The two sides of an equality check: `assert a == b`, `self.assertEqual(a, b)`, ..."""
    if isinstance(node, ast.Assert):
        test = node.test
        if (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], _SAME_OPS)
        ):
            return test.left, test.comparators[0]
        return None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("assert")
        and ("equal" in node.func.attr.lower() or node.func.attr == "assertIs")
        and "Not" not in node.func.attr
        and "not" not in node.func.attr
        and len(node.args) >= 2
    ):
        return node.args[0], node.args[1]
    return None


def _weak(node: ast.AST) -> bool:
    """A check that passes for almost any result: it does not check the value."""
    if isinstance(node, ast.Assert):
        test = node.test
        if _const(test) is not None:
            return True
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            right = test.comparators[0]
            none = isinstance(right, ast.Constant) and right.value is None
            if none and isinstance(test.ops[0], ast.IsNot | ast.NotEq):
                return True
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Name):
            return test.func.id in _WEAK_CALLS
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in _WEAK_METHODS or _trivial(node)
    return False


@dataclass
class _Scan:
    """What one function does, before helpers are resolved."""

    asserts: int = 0
    value: int = 0
    effects: int = 0
    imports: int = 0
    dead: list[int] = field(default_factory=list)
    local_calls: set[str] = field(default_factory=set)
    method_calls: set[str] = field(default_factory=set)
    external: list[tuple[str, int, str]] = field(default_factory=list)
    nested: dict[str, ast.AST] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)
    flags: list[tuple[str, int, str]] = field(default_factory=list)


class _Module:
    """One parse of a test module, and the per-function scans the facts are built from."""

    def __init__(self, tree: ast.Module, nodes: list[ast.AST], names: dict[str, str]) -> None:
        self.tree = tree
        self.nodes = nodes
        self.names = names
        # from-imported names that may be helpers in another module: name -> (module, level)
        self.imported: dict[str, tuple[str, int, str]] = {}
        for node in self.nodes:
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    self.imported[a.asname or a.name] = (node.module or "", node.level, a.name)
        self.functions: dict[str, ast.AST] = {}
        self.methods: dict[str, dict[str, ast.AST]] = {}
        for stmt in tree.body:
            if isinstance(stmt, _FUNCS):
                self.functions[stmt.name] = stmt
            elif isinstance(stmt, ast.ClassDef):
                self.methods[stmt.name] = {s.name: s for s in stmt.body if isinstance(s, _FUNCS)}
        self._scans: dict[int, _Scan] = {}
        self._totals: dict[int, tuple[int, int]] = {}

    def scan(self, fn: ast.AST) -> _Scan:
        key = id(fn)
        if key not in self._scans:
            self._scans[key] = self._scan(fn)
        return self._scans[key]

    def _scan(self, fn: ast.AST) -> _Scan:
        out = _Scan()
        env = _single_assignments(fn)
        body = getattr(fn, "body", [])
        for stmt in body:
            if isinstance(stmt, ast.Pass):
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring or `...`
            out.effects += 1
        self._visit(body, False, out, env)
        return out

    def _visit(
        self, body: list[ast.stmt], dead: bool, out: _Scan, env: dict[str, ast.expr]
    ) -> None:
        for stmt in body:
            if isinstance(stmt, _FUNCS):
                out.nested[stmt.name] = stmt
                continue
            if isinstance(stmt, ast.ClassDef | ast.Lambda):
                continue
            if isinstance(stmt, ast.Assert):
                self._check(stmt, dead, out, env)
            if isinstance(stmt, ast.Import | ast.ImportFrom) and not dead:
                out.imports += len(stmt.names)
            for expr in _header(stmt):
                self._expressions(expr, dead, out, env)
            if isinstance(stmt, ast.If):
                test = _const(stmt.test)
                if _type_checking(stmt.test, self.names):
                    test = False  # at run time TYPE_CHECKING is False
                self._visit(stmt.body, dead or test is False, out, env)
                self._visit(stmt.orelse, dead or test is True, out, env)
            elif isinstance(stmt, ast.While):
                self._visit(stmt.body, dead or _const(stmt.test) is False, out, env)
                self._visit(stmt.orelse, dead, out, env)
            elif isinstance(stmt, ast.For | ast.AsyncFor):
                self._visit(stmt.body, dead or _empty_iter(stmt.iter), out, env)
                self._visit(stmt.orelse, dead, out, env)
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                if self._raises_assertion(stmt):
                    out.flags.append(("tests.raises_assertion", stmt.lineno, "raises"))
                self._visit(stmt.body, dead, out, env)
            elif isinstance(stmt, ast.Try | ast.TryStar):
                for part in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse):
                    self._visit(part, dead, out, env)
                self._visit(stmt.finalbody, dead, out, env)
                for node in (n for s in stmt.finalbody for n in _walk_own_stmt(s)):
                    if isinstance(node, ast.Return | ast.Break | ast.Continue):
                        what = type(node).__name__.lower()
                        out.flags.append(("tests.finally_return", node.lineno, what))
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    self._visit(case.body, dead, out, env)

    def _expressions(self, expr: ast.AST, dead: bool, out: _Scan, env: dict[str, ast.expr]) -> None:
        for node in _walk_expr(expr):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                out.loaded.add(node.id)
            if not isinstance(node, ast.Call):
                continue
            if _is_assert(node) or (
                isinstance(node.func, ast.Name) and node.func.id in ("raises", "warns")
            ):
                self._check(node, dead, out, env)
                continue
            func = node.func
            if isinstance(func, ast.Name):
                if func.id in self.imported:
                    module, level, name = self.imported[func.id]
                    out.external.append((module, level, name))
                else:
                    out.local_calls.add(func.id)
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in ("self", "cls")
            ):
                out.method_calls.add(func.attr)

    def _check(self, node: ast.AST, dead: bool, out: _Scan, env: dict[str, ast.expr]) -> None:
        line = getattr(node, "lineno", 0)
        if dead:
            out.dead.append(line)
            return
        out.asserts += 1
        if not _weak(node):
            out.value += 1
        sides = _compared(node)
        if sides is not None and _same(sides[0], sides[1], env):
            out.flags.append(("tests.self_compare", line, _one_value(sides[0], sides[1], env)))

    def _raises_assertion(self, stmt: ast.With | ast.AsyncWith) -> bool:
        for item in stmt.items:
            call = item.context_expr
            if not isinstance(call, ast.Call) or not call.args:
                continue
            name = qual(call.func, self.names) or ""
            if name.rsplit(".", 1)[-1] not in ("raises", "assertRaises"):
                continue
            if _names(call.args[0]) & _SWALLOWED:
                return any(
                    isinstance(n, ast.Assert) or _is_assert(n)
                    for s in stmt.body
                    for n in _walk_own_stmt(s)
                )
        return False

    def totals(self, fn: ast.AST, cls: str | None, seen: frozenset[int] = frozenset()) -> _Totals:
        """A function's checks with the helpers it calls in this module counted in."""
        scan = self.scan(fn)
        total = _Totals(scan.asserts, scan.value, list(scan.external), list(scan.dead))
        if id(fn) in seen or len(seen) > 8:
            return total
        seen = seen | {id(fn)}
        helpers: list[tuple[ast.AST, str | None]] = []
        for name, inner in scan.nested.items():
            if name in scan.loaded:
                helpers.append((inner, cls))
            else:
                total.dead.extend(_assert_lines(inner))
        helpers.extend((self.functions[n], None) for n in scan.local_calls if n in self.functions)
        if cls is not None:
            own = self.methods.get(cls, {})
            helpers.extend((own[n], cls) for n in scan.method_calls if n in own)
        for helper, where in helpers:
            sub = self.totals(helper, where, seen)
            total.asserts += sub.asserts
            total.value += sub.value
            total.external.extend(sub.external)
        return total


@dataclass
class _Totals:
    asserts: int
    value: int
    external: list[tuple[str, int, str]]
    dead: list[int]


def _walk_own_stmt(stmt: ast.AST) -> Iterator[ast.AST]:
    yield stmt
    if not isinstance(stmt, _NESTED):
        yield from _walk_own(stmt)


def _assert_lines(fn: ast.AST) -> list[int]:
    return [getattr(n, "lineno", 0) for n in _walk_own(fn) if _is_assert(n)]


def _is_stdlib(module: str) -> bool:
    return module.split(".", 1)[0] in sys.stdlib_module_names


def _patched_name(call: ast.Call, names: dict[str, str]) -> tuple[str, str] | None:
    """(dotted target or '', attribute name) that a monkeypatch/mock call replaces."""
    func = call.func
    attr = (
        func.attr
        if isinstance(func, ast.Attribute)
        else func.id
        if isinstance(func, ast.Name)
        else ""
    )
    q = qual(func, names) or attr
    args = call.args
    if attr in ("setattr", "delattr") and args:
        dotted = folded(args[0])
        if dotted is None and isinstance(args[0], ast.JoinedStr):
            tail = folded(args[0].values[-1]) if args[0].values else None
            dotted = tail
        if dotted is not None and "." in dotted:
            return dotted, dotted.rsplit(".", 1)[-1]
        if len(args) >= 2:
            name = folded(args[1])
            if name is not None:
                return qual(args[0], names) or "", name
        return None
    if attr == "setitem" and len(args) >= 2:
        target = args[0]
        if (
            isinstance(target, ast.Call)
            and isinstance(target.func, ast.Name)
            and target.func.id in ("globals", "vars")
        ):
            name = folded(args[1])
            return ("", name) if name else None
        return None
    if q.endswith("patch.object") and len(args) >= 2:
        name = folded(args[1])
        return (qual(args[0], names) or "", name) if name else None
    if q.endswith(("mock.patch", "mocker.patch")) or q == "patch" or q.endswith(".patch"):
        if not args:
            return None
        dotted = folded(args[0])
        if dotted is None and isinstance(args[0], ast.JoinedStr) and args[0].values:
            dotted = folded(args[0].values[-1])
        if dotted:
            return dotted, dotted.rsplit(".", 1)[-1]
    return None


def _subjects(mod: _Module) -> set[str]:
    """Names of project functions the module calls: what its tests test."""
    bound: dict[str, str] = {}
    for node in mod.nodes:
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if _is_stdlib(node.module) or node.module.split(".", 1)[0] in _TEST_LIBS:
                continue
            for a in node.names:
                bound[a.asname or a.name] = a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _is_stdlib(a.name) or a.name.split(".", 1)[0] in _TEST_LIBS:
                    continue
                bound[a.asname or a.name.split(".", 1)[0]] = a.name
    out: set[str] = set()
    for node in mod.nodes:
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in bound:
            out.add(bound[func.id])
        elif isinstance(func, ast.Attribute):
            root = func.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                out.add(func.attr)
    return out


def _autouse(fn: ast.AST, names: dict[str, str]) -> bool:
    for dec in getattr(fn, "decorator_list", []):
        if isinstance(dec, ast.Call) and (qual(dec.func, names) or "") in FIXTURE_NAMES:
            for kw in dec.keywords:
                if kw.arg == "autouse" and _const(kw.value) is True:
                    return True
    return False


def _module_flags(mod: _Module, out: TestFacts) -> None:
    names = mod.names
    tree = mod.tree
    subjects = _subjects(mod)
    empty_names = {
        t.id
        for s in tree.body
        if isinstance(s, ast.Assign) and _const(s.value) is False
        for t in s.targets
        if isinstance(t, ast.Name)
    }
    autouse_calls: set[int] = set()
    for fn in mod.nodes:
        if isinstance(fn, _FUNCS) and _autouse(fn, names):
            autouse_calls.update(id(n) for n in ast.walk(fn) if isinstance(n, ast.Call))
    flag = out.flags.append
    for node in mod.nodes:
        if isinstance(node, ast.Call):
            q = qual(node.func, names) or ""
            func = node.func
            if isinstance(func, ast.Name) and func.id == "getattr" and node.args:
                target = qual(node.args[0], names) or ""
                if target.split(".", 1)[0] in ("pytest", "_pytest"):
                    flag(("tests.dynamic_skip", node.lineno, f"getattr({target}, ...)"))
            if isinstance(func, ast.Attribute) and func.attr in ("applymarker", "add_marker"):
                flag(("tests.dynamic_skip", node.lineno, func.attr))
            if q in EXIT_NAMES:
                flag(("tests.exit", node.lineno, q))
            setattr_call = isinstance(func, ast.Name) and func.id == "setattr"
            if setattr_call and len(node.args) >= 2 and folded(node.args[1]) == "__test__":
                flag(("tests.dunder_test", node.lineno, "setattr __test__"))
            if q == "pytest.mark.parametrize":
                values = node.args[1] if len(node.args) > 1 else None
                for kw in node.keywords:
                    if kw.arg == "argvalues":
                        values = kw.value
                if values is not None and (
                    _empty_iter(values)
                    or (isinstance(values, ast.Name) and values.id in empty_names)
                ):
                    flag(("tests.empty_parametrize", node.lineno, "parametrize"))
            patched = _patched_name(node, names)
            if patched is not None:
                target, name = patched
                if name in subjects:
                    flag(("tests.patched_subject", node.lineno, name))
                elif id(node) in autouse_calls and target:
                    out.autouse_patches.append((node.lineno, f"{target}.{name}"))
        elif isinstance(node, ast.Name | ast.Attribute):
            q = qual(node, names) or ""
            if q.startswith(("_pytest.outcomes.", "_pytest.skipping.")) or (
                isinstance(node, ast.Attribute)
                and node.attr in _OUTCOME_ATTRS
                and q.split(".", 1)[0] in ("pytest", "_pytest")
            ):
                flag(("tests.dynamic_skip", node.lineno, q))
            if (
                isinstance(node, ast.Name | ast.Attribute)
                and (node.id if isinstance(node, ast.Name) else node.attr) == "__test__"
                and isinstance(node.ctx, ast.Store)
            ):
                flag(("tests.dunder_test", node.lineno, "__test__"))
        elif isinstance(node, _FUNCS) and node.name.startswith("test"):
            for dec in node.decorator_list:
                called = dec.func if isinstance(dec, ast.Call) else dec
                if (qual(called, names) or "") in FIXTURE_NAMES:
                    flag(("tests.fixture_on_test", dec.lineno, node.name))
    for stmt in tree.body:
        exc = stmt.exc if isinstance(stmt, ast.Raise) else None
        raised = exc.func if isinstance(exc, ast.Call) else exc
        if raised is not None and (qual(raised, names) or "") in (
            "SystemExit",
            "builtins.SystemExit",
        ):
            flag(("tests.exit", stmt.lineno, "raise SystemExit"))
    for body in [tree.body] + [
        s.body for s in tree.body if isinstance(s, ast.ClassDef) and _is_test_class(s)
    ]:
        _rebinds(body, out)


def _bound_names(target: ast.expr) -> list[ast.Name]:
    """The names an assignment target binds (`a`, `a, b`, `*a`), not `a.b` or `a[0]`."""
    if isinstance(target, ast.Name):
        return [target]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in _bound_names(e)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _rebinds(body: list[ast.stmt], out: TestFacts) -> None:
    """A test name bound twice or deleted: only the last binding is collected, or none."""
    tests = {s.name for s in body if isinstance(s, _FUNCS) and s.name.startswith("test")}
    if not tests:
        return
    seen: set[str] = set()
    for stmt in body:
        bound: list[str] = []
        if isinstance(stmt, (*_FUNCS, ast.ClassDef)):
            bound = [stmt.name]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Delete):
            targets = stmt.targets if isinstance(stmt, ast.Assign | ast.Delete) else [stmt.target]
            bound = [n.id for t in targets for n in _bound_names(t)]
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            bound = [a.asname or a.name.split(".", 1)[0] for a in stmt.names]
        for name in bound:
            if name in tests and (name in seen or isinstance(stmt, ast.Delete)):
                out.flags.append(("tests.rebound_test", stmt.lineno, name))
            seen.add(name)


@lru_cache(maxsize=64)
def facts(text: str) -> TestFacts | None:
    """The facts of a test module; None when it does not parse."""
    parsed = walked(text)
    if parsed is None:
        return None
    tree = parsed[0]
    mod = _Module(*parsed)
    out = TestFacts()

    def visit(body: list[ast.stmt], prefix: str, cls: str | None) -> None:
        for node in body:
            if isinstance(node, _FUNCS) and node.name.startswith("test"):
                name = prefix + node.name
                total = mod.totals(node, cls)
                scan = mod.scan(node)
                out.asserts[name] = total.asserts
                out.tests[name] = TestInfo(
                    total.asserts, total.value, scan.effects, scan.imports, total.external
                )
                lines = _assert_lines(node)
                last = max(lines, default=0)
                out.early_returns[name] = sum(
                    1 for n in _walk_own(node) if isinstance(n, ast.Return) and n.lineno < last
                )
                out.flags.extend(("tests.dead_assert", n, name) for n in total.dead)
            elif isinstance(node, ast.ClassDef) and _is_test_class(node):
                visit(node.body, f"{prefix}{node.name}::", node.name)

    visit(tree.body, "", None)
    for stmt in tree.body:
        if isinstance(stmt, _FUNCS):
            total = mod.totals(stmt, None)
            out.functions[stmt.name] = (total.asserts, total.value)
    for fn in [*mod.functions.values(), *(m for ms in mod.methods.values() for m in ms.values())]:
        out.flags.extend(mod.scan(fn).flags)
    _module_flags(mod, out)
    for node in mod.nodes:
        if _trivial(node):
            out.trivial.append(getattr(node, "lineno", 0))
        if _swallows(node):
            out.swallowers.append(getattr(node, "lineno", 0))
        if isinstance(node, ast.Name | ast.Attribute):
            q = qual(node, mod.names)
            if q in SKIP_NAMES:
                out.skips.append((node.lineno, q))
            elif isinstance(node, ast.Attribute) and node.attr == "skipTest":
                out.skips.append((node.lineno, "skipTest"))
    return out
