"""What a test module asserts, skips and swallows, read from its AST with imports resolved.

Names are resolved through the module's own imports, so `from pytest import mark`,
`import pytest as pt` and `from unittest import skip` are seen as what they are.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

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
_SWALLOWED = frozenset({"AssertionError", "Exception", "BaseException"})
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass
class TestFacts:
    asserts: dict[str, int] = field(default_factory=dict)  # test -> asserts in it
    early_returns: dict[str, int] = field(default_factory=dict)  # test -> returns before asserts
    trivial: list[int] = field(default_factory=list)  # lines of always-true asserts
    swallowers: list[int] = field(default_factory=list)  # lines that catch failed asserts
    skips: list[tuple[int, str]] = field(default_factory=list)  # (line, qualified name)


def _aliases(tree: ast.AST) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in ast.walk(tree):
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


def _qual(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _qual(node.value, aliases)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is_assert(node: ast.AST) -> bool:
    return isinstance(node, ast.Assert) or (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr.startswith("assert") or node.func.attr in ("raises", "warns"))
    )


def _const_true(node: ast.expr) -> bool:
    """An expression that is true whatever the code under test does."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
        return bool(node.keys if isinstance(node, ast.Dict) else node.elts)
    if isinstance(node, ast.BoolOp):
        test = any if isinstance(node.op, ast.Or) else all
        return test(_const_true(v) for v in node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return isinstance(node.operand, ast.Constant) and not node.operand.value
    if isinstance(node, ast.Compare):
        return all(isinstance(x, ast.Constant) for x in (node.left, *node.comparators))
    return False


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


def facts(text: str) -> TestFacts | None:
    """The facts of a test module; None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    aliases = _aliases(tree)
    out = TestFacts()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                name = prefix + node.name
                lines = [getattr(n, "lineno", 0) for n in ast.walk(node) if _is_assert(n)]
                out.asserts[name] = len(lines)
                last = max(lines, default=0)
                out.early_returns[name] = sum(
                    1 for n in _walk_own(node) if isinstance(n, ast.Return) and n.lineno < last
                )
            elif isinstance(node, ast.ClassDef) and _is_test_class(node):
                visit(node.body, f"{prefix}{node.name}::")

    visit(tree.body, "")
    for node in ast.walk(tree):
        if _trivial(node):
            out.trivial.append(getattr(node, "lineno", 0))
        if _swallows(node):
            out.swallowers.append(getattr(node, "lineno", 0))
        if isinstance(node, ast.Name | ast.Attribute):
            q = _qual(node, aliases)
            if q in SKIP_NAMES:
                out.skips.append((node.lineno, q))
            elif isinstance(node, ast.Attribute) and node.attr == "skipTest":
                out.skips.append((node.lineno, "skipTest"))
    return out
