"""Source code that hides from a gate without a suppression comment.

Each finding is a spelling that makes a gate stop seeing something: bandit and mypy resolve
calls by their static name, import-linter reads import statements, coverage skips what its
markers name, pytest loads what entry points register. They are treated like suppressions:
a change may keep the ones the file already had (counted per kind, so a moved line is not
new), never add one.
"""

from __future__ import annotations

import ast
import configparser
import re
import tomllib
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from harness.guard.testast import folded, qual

_IMPORTERS = frozenset(
    {
        "importlib.import_module",
        "importlib.__import__",
        "__import__",
        "importlib.util.spec_from_file_location",
        "importlib.util.module_from_spec",
        "importlib.machinery.SourceFileLoader",
        "runpy.run_module",
        "runpy.run_path",
        "pkgutil.resolve_name",
    }
)
_CASTS = frozenset({"typing.cast", "typing_extensions.cast", "cast"})
_ANYS = frozenset({"typing.Any", "typing_extensions.Any", "Any"})
# Environment variables and attributes that exist only while pytest runs a test.
_PYTEST_MARKS = ("PYTEST_", "_called_from_test")
_PYTEST_MODULES = frozenset({"pytest", "_pytest"})
_PROCESS = ("sys.modules", "sys.argv", "sys.executable", "sys.orig_argv", "os.environ")
PLUGIN_GROUPS = frozenset(
    {"pytest11", "flake8.extension", "flake8.report", "bandit.plugins", "bandit.formatters"}
)


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int
    key: str  # what was found, normalised: equal keys in old and new text are the same one
    message: str


def _call_findings(node: ast.Call, names: dict[str, str], source: bool) -> Iterable[Finding]:
    q = qual(node.func, names) or ""
    line = node.lineno
    args = node.args
    if q == "getattr" and len(args) >= 2:
        owner = args[0]
        root = owner
        while isinstance(root, ast.Attribute):
            root = root.value
        module = isinstance(root, ast.Name) and root.id in names
        reached = isinstance(owner, ast.Subscript | ast.Call)  # sys.modules[...], import_module()
        name = folded(args[1])
        pieced = not isinstance(args[1], ast.Constant)  # "r" + "un": a name spelled to hide
        if (module or reached) and (name is None or pieced or len(args) == 2):
            shown = ast.unparse(owner)[:40]
            attr = name if name is not None else "<computed>"
            yield Finding(
                "hiding.computed_attr",
                line,
                f"getattr {shown} {attr}",
                f"getattr({shown}, {ast.unparse(args[1])[:40]}) reaches a module attribute "
                "by a name the gates cannot read (bandit, mypy and import-linter see "
                f"only static names); write {shown}.{attr if name else 'name'} directly",
            )
    if q in _IMPORTERS or q.endswith(".import_module"):
        yield Finding(
            "hiding.computed_import",
            line,
            f"import {q}",
            f"{q}(...) imports a module that import-linter and mypy cannot see; "
            "use an import statement",
        )
    if q in _CASTS and args:
        kind = args[0]
        spelled = folded(kind) if isinstance(kind, ast.Constant) else qual(kind, names)
        if spelled in _ANYS:
            yield Finding(
                "hiding.cast_any",
                line,
                "cast Any",
                "cast(Any, ...) turns mypy off for the value; give it its real type, or "
                "fix the type error",
            )
    inner = node.func
    if (
        isinstance(inner, ast.Call)
        and (qual(inner.func, names) or "") in ("operator.attrgetter", "operator.methodcaller")
        and args
        and isinstance(args[0], ast.Name | ast.Attribute)
        and (qual(args[0], names) or "").split(".", 1)[0] in set(names.values())
    ):
        yield Finding(
            "hiding.computed_attr",
            line,
            "attrgetter",
            f"{ast.unparse(node)[:60]} reaches a module attribute by a name the gates cannot "
            "read; use the attribute directly",
        )
    lookup = q in ("sys.modules.get", "importlib.util.find_spec")
    if source and lookup and args and folded(args[0]) in _PYTEST_MODULES:
        yield _pytest_running(line, f"{q}('pytest')")


def _pytest_running(line: int, what: str) -> Finding:
    return Finding(
        "hiding.pytest_running",
        line,
        f"pytest {what}",
        f"{what} checks whether pytest is running: code that behaves differently under "
        "test makes the tests check something else; make the code correct for every caller",
    )


def _type_checking(node: ast.AST, names: dict[str, str]) -> bool:
    q = qual(node, names) if isinstance(node, ast.Name | ast.Attribute) else None
    return q is not None and q.rsplit(".", 1)[-1] == "TYPE_CHECKING"


def _tc_finding(node: ast.If | ast.IfExp | ast.While, names: dict[str, str]) -> Finding | None:
    test = node.test
    if not any(_type_checking(n, names) for n in ast.walk(test)):
        return None
    plain = _type_checking(test, names)
    if plain and not (isinstance(node, ast.If | ast.IfExp) and node.orelse):
        return None
    what = "an else branch of 'if TYPE_CHECKING'" if plain else f"'{ast.unparse(test)[:40]}'"
    return Finding(
        "hiding.not_type_checking",
        node.lineno,
        "type checking",
        f"code under {what} runs but mypy never reads it; write it so mypy checks it "
        "(TYPE_CHECKING is only for imports needed by annotations)",
    )


def _node_findings(node: ast.AST, names: dict[str, str], source: bool) -> list[Finding]:
    out: list[Finding] = []
    if isinstance(node, ast.Call):
        out.extend(_call_findings(node, names, source))
    elif isinstance(node, ast.If | ast.IfExp | ast.While):
        found = _tc_finding(node, names)
        if found is not None:
            out.append(found)
    elif isinstance(node, ast.Subscript):
        base = node.value
        if qual(base, names) == "sys.modules" and source:
            out.append(
                Finding(
                    "hiding.computed_attr",
                    node.lineno,
                    "sys.modules",
                    f"{ast.unparse(node)[:60]} reaches a module without an import "
                    "statement, so the gates cannot follow it; import the module",
                )
            )
        owner: ast.expr | None = None
        if isinstance(base, ast.Attribute) and base.attr == "__dict__":
            owner = base.value
        elif (
            isinstance(base, ast.Call)
            and isinstance(base.func, ast.Name)
            and base.func.id == "vars"
            and base.args
        ):
            owner = base.args[0]
        if owner is not None:
            root = owner
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in names:
                out.append(
                    Finding(
                        "hiding.computed_attr",
                        node.lineno,
                        f"dict {ast.unparse(owner)[:40]}",
                        f"{ast.unparse(node)[:60]} reaches a module attribute through its "
                        "namespace dict, which the gates cannot read; use the attribute",
                    )
                )
    if not source:
        return out
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        # "pytest" compared with what the process knows about itself; a comparison with
        # a gate or tool name ("pytest" in gates) is ordinary code.
        if any(folded(s) in _PYTEST_MODULES for s in sides) and any(
            (qual(n, names) or "").startswith(_PROCESS)
            for s in sides
            for n in ast.walk(s)
            if isinstance(n, ast.Attribute | ast.Name)
        ):
            out.append(_pytest_running(node.lineno, f"'{ast.unparse(node)[:50]}'"))
    elif isinstance(node, ast.Constant | ast.BinOp | ast.JoinedStr):
        value = folded(node)
        if value and value.startswith(_PYTEST_MARKS) and not isinstance(node, ast.JoinedStr):
            out.append(_pytest_running(node.lineno, repr(value[:40])))
    elif isinstance(node, ast.Attribute) and node.attr == "_called_from_test":
        out.append(_pytest_running(node.lineno, "_called_from_test"))
    elif isinstance(node, ast.Import | ast.ImportFrom):
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        if any((m or "").split(".", 1)[0] in _PYTEST_MODULES for m in mods):
            out.append(_pytest_running(node.lineno, "import pytest"))
    return out


def findings(text: str | None, source: bool) -> list[Finding] | None:
    """Every hiding spelling in a Python file; None if it does not parse."""
    if not text:
        return []
    found = _file_findings(text, source)
    return None if found is None else list(found)


@lru_cache(maxsize=16)
def _file_findings(text: str, source: bool, split: bool = True) -> tuple[Finding, ...] | None:
    pieces = _pieces(text, split)
    if pieces is None:
        return None
    names = _names(pieces)
    key = tuple(sorted(names.items()))
    ordered: list[tuple[int, int, int, Finding]] = []
    for ci, (offset, piece) in enumerate(pieces):
        for depth, idx, f in _piece_findings(piece, key, source):
            line = f.line + offset
            ordered.append((depth, ci, idx, Finding(f.rule, line, f.key, f.message)))
    ordered.sort(key=lambda x: x[:3])  # the order of one walk of the whole module
    seen: set[tuple[str, int, str]] = set()
    unique = []
    for *_, f in ordered:
        if (f.rule, f.line, f.key) not in seen:
            seen.add((f.rule, f.line, f.key))
            unique.append(f)
    return tuple(unique)


def new_findings(old: list[Finding], new: list[Finding], added: set[int]) -> list[Finding]:
    """The findings `new` has beyond `old`, per key, preferring ones on added lines."""
    have = Counter(f.key for f in old)
    extra: list[Finding] = []
    by_key: dict[str, list[Finding]] = {}
    for f in new:
        by_key.setdefault(f.key, []).append(f)
    for key, found in by_key.items():
        surplus = len(found) - have[key]
        if surplus > 0:
            found.sort(key=lambda f: (f.line not in added, f.line))
            extra.extend(found[:surplus])
    return sorted(extra, key=lambda f: f.line)


# --- special-casing the tests' inputs -------------------------------------------------------

_COMPARES = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is)


def _literal(node: ast.expr) -> list[str] | None:
    """Search terms for a literal worth special-casing: 's:' + a string of 2+ characters (found
    quoted), 'n:' + a number other than -1, 0, 1 (found as a whole word); a tuple's elements."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = node.operand
        if isinstance(inner, ast.Constant) and isinstance(inner.value, int | float):
            if isinstance(inner.value, bool):
                return None
            return _literal(ast.Constant(-inner.value))
        return None
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str):
            ok = len(value.strip()) >= 2 and not set(value) & {"\n", '"', "'"}
            return [f"s:{value}"] if ok else None
        if type(value) is int:
            return [f"n:{value}"] if abs(value) >= 2 else None
        if type(value) is float:
            return [f"n:{value!r}"]
        return None
    if isinstance(node, ast.Tuple | ast.List):
        terms: list[str] = []
        for elt in node.elts:
            sub = _literal(elt)
            if sub is None:
                return None
            terms.extend(sub)
        return terms or None
    return None


def _plain(node: ast.expr | None) -> bool:
    """A value written out as a literal (a constant, or a tuple or list of them)."""
    if isinstance(node, ast.Tuple | ast.List):
        return all(_plain(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _plain(node.operand)
    return isinstance(node, ast.Constant)


def _answers(body: list[ast.stmt]) -> bool:
    """The branch returns a value written out: the shape of a hard-coded answer."""
    return any(isinstance(s, ast.Return) and _plain(s.value) for s in body)


def _compared(test: ast.expr) -> Iterable[tuple[int, str, list[str]]]:
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare) or not all(
            isinstance(op, _COMPARES) for op in node.ops
        ):
            continue
        membership = any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
        for side in (node.left, *node.comparators):
            members = (
                side.elts
                if membership and isinstance(side, ast.Set | ast.Tuple | ast.List)
                else [side]
            )
            for m in members:
                if folded(m) in _PYTEST_MODULES:
                    continue  # hiding.pytest_running says what is wrong with it
                terms = _literal(m)
                if terms:
                    yield node.lineno, ast.unparse(m), terms


def _answer_tables(fn: ast.AST) -> Iterable[tuple[int, str, list[str]]]:
    """Keys of a dict literal in a function whose values are all literals: a table of answers
    by input, special-casing spelled as data (module-level tables are configuration, and a
    dict that is compared with something is a value, not a table)."""
    compared = {
        id(side)
        for n in ast.walk(fn)
        if isinstance(n, ast.Compare)
        for side in (n.left, *n.comparators)
    }
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Dict)
            and id(node) not in compared
            and node.values
            and all(_plain(v) for v in node.values)
        ):
            for k in node.keys:
                terms = _literal(k) if k is not None else None
                if k is not None and terms:
                    yield k.lineno, ast.unparse(k), terms


def compared_literals(text: str | None) -> list[tuple[int, str, list[str]]] | None:
    """(line, literal as written, search terms) for each literal that a branch returning a
    written-out value is chosen by: `if x == "1.2.10": return (1, 2, 10)`, a `match` case, a
    conditional expression, or a table in a function whose values are all literals."""
    if not text:
        return []
    found = _file_literals(text)
    return None if found is None else list(found)


@lru_cache(maxsize=16)
def _file_literals(text: str, split: bool = True) -> tuple[tuple[int, str, list[str]], ...] | None:
    pieces = _pieces(text, split)
    if pieces is None:
        return None
    ordered: list[tuple[int, int, int, tuple[int, str, list[str]]]] = []
    for ci, (offset, piece) in enumerate(pieces):
        for depth, idx, (line, shown, terms) in _piece_literals(piece):
            ordered.append((depth, ci, idx, (line + offset, shown, terms)))
    ordered.sort(key=lambda x: x[:3])
    unique: dict[tuple[int, str], tuple[int, str, list[str]]] = {}
    for *_, found in ordered:  # a nested function's table is found from each enclosing function
        unique.setdefault((found[0], found[1]), found)
    return tuple(unique.values())


def _node_literals(node: ast.AST) -> list[tuple[int, str, list[str]]]:
    out: list[tuple[int, str, list[str]]] = []
    if (isinstance(node, ast.If) and _answers(node.body)) or (
        isinstance(node, ast.IfExp) and _plain(node.body)
    ):
        out.extend(_compared(node.test))
    elif isinstance(node, ast.Match):
        for case in node.cases:
            if not _answers(case.body):
                continue
            for m in ast.walk(case.pattern):
                terms = _literal(m.value) if isinstance(m, ast.MatchValue) else None
                if isinstance(m, ast.MatchValue) and terms:
                    out.append((m.value.lineno, ast.unparse(m.value), terms))
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        out.extend(_answer_tables(node))
    return out


# --- one parse per piece of a file ----------------------------------------------------------
# A patch changes a few lines of a file that may be thousands long, and the guard reads the
# file before and after every patch. So a file is read as pieces, split before each top-level
# `def`, `class` or decorator, and each piece is parsed and searched once per content: the
# pieces a patch leaves alone are not parsed again. The results are those of one walk of the
# whole module: a node's place in that walk is (its depth, its piece, its place in the piece's
# own walk), since a breadth-first walk keeps each depth's nodes in the order of the pieces.
# A split that is not a statement boundary (a `def` line inside a string) leaves a piece that
# does not parse; it is then joined with the next, and past a few such joins the file is read
# whole.

_SPLIT = re.compile(r"^(?:@|(?:async[ \t]+)?def[ \t]|class[ \t])", re.MULTILINE)
_JOINS = 8
_MAX_PIECES = 512  # well under _parsed's cache, which holds the pieces of two versions


@dataclass(frozen=True)
class _Piece:
    nodes: list[tuple[int, int, ast.AST]]  # (depth, place in the walk, node)
    imports: list[tuple[int, int, str, str]]  # (depth, place, alias, qualified name)


def _walk(tree: ast.AST) -> list[tuple[int, int, ast.AST]]:
    """ast.walk's order, with each node's depth."""
    out: list[tuple[int, int, ast.AST]] = []
    todo: deque[tuple[int, ast.AST]] = deque([(0, tree)])
    while todo:
        depth, node = todo.popleft()
        out.append((depth, len(out), node))
        todo.extend((depth + 1, child) for child in ast.iter_child_nodes(node))
    return out


@lru_cache(maxsize=1024)
def _parsed(text: str) -> _Piece | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = _walk(tree)
    imports: list[tuple[int, int, str, str]] = []
    for depth, idx, node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".", 1)[0]
                name = (a.asname, a.name) if a.asname else (top, top)
                imports.append((depth, idx, *name))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                imports.append((depth, idx, a.asname or a.name, f"{node.module}.{a.name}"))
    return _Piece(nodes, imports)


def _splits(text: str) -> list[int]:
    """Offsets of the lines a piece starts at; a decorator's piece holds its definition."""
    out = [0]
    decorated = False
    for m in _SPLIT.finditer(text):
        if m.group().startswith("@"):
            if not decorated and m.start():
                out.append(m.start())
            decorated = True
        elif decorated:
            decorated = False
        elif m.start():
            out.append(m.start())
    return out


def _pieces(text: str, split: bool = True) -> list[tuple[int, str]] | None:
    """(lines before it, text) of each piece of a module; None if the module does not parse.
    Without `split`, the module is one piece (what the split must give the same results as)."""
    # Other line ends count lines otherwise; this future changes how a module parses.
    whole = not split or "\r" in text or "barry_as_FLUFL" in text
    starts = [0] if whole else _splits(text)
    if len(starts) > _MAX_PIECES:
        starts = [0]  # more pieces than the caches hold: each would be parsed again
    bounds = [*starts, len(text)]
    out: list[tuple[int, str]] = []
    joins, i, line = 0, 0, 0
    while i < len(starts):
        j = i + 1
        piece = text[bounds[i] : bounds[j]]
        while _parsed(piece) is None and j < len(starts) and joins < _JOINS:
            joins += 1
            j += 1
            piece = text[bounds[i] : bounds[j]]
        if _parsed(piece) is None:
            return None if _parsed(text) is None else [(0, text)]
        out.append((line, piece))
        line += piece.count("\n")
        i = j
    return out


def _names(pieces: list[tuple[int, str]]) -> dict[str, str]:
    """The module's import aliases (testast.aliases), later imports in the walk winning."""
    entries = []
    for ci, (_, piece) in enumerate(pieces):
        parsed = _parsed(piece)  # _pieces kept only pieces that parse
        for depth, idx, alias, name in parsed.imports if parsed is not None else ():
            entries.append((depth, ci, idx, alias, name))
    entries.sort(key=lambda e: e[:3])
    return {alias: name for *_, alias, name in entries}


@lru_cache(maxsize=1024)
def _piece_findings(
    piece: str, names: tuple[tuple[str, str], ...], source: bool
) -> tuple[tuple[int, int, Finding], ...]:
    parsed = _parsed(piece)
    if parsed is None:
        return ()
    lookup = dict(names)
    return tuple(
        (depth, idx, f)
        for depth, idx, node in parsed.nodes
        for f in _node_findings(node, lookup, source)
    )


@lru_cache(maxsize=1024)
def _piece_literals(piece: str) -> tuple[tuple[int, int, tuple[int, str, list[str]]], ...]:
    parsed = _parsed(piece)
    if parsed is None:
        return ()
    return tuple(
        (depth, idx, found) for depth, idx, node in parsed.nodes for found in _node_literals(node)
    )


# --- stubs and plugins ----------------------------------------------------------------------


def stub_problem(path: str) -> str | None:
    parts = PurePosixPath(path).parts
    package = next((p for p in parts[:-1] if p.endswith("-stubs")), None)
    if package:
        return (
            f"{path}: a {package}/ package replaces the real module's types for mypy; "
            "add type annotations to the module instead"
        )
    if path.endswith(".pyi"):
        return (
            f"{path}: a new stub file tells mypy the types instead of letting it read code; "
            "add type annotations to the module instead"
        )
    return None


def _toml_groups(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    project = data.get("project", {})
    tool = data.get("tool", {})
    out: dict[str, Any] = {}
    tables = [
        project.get("entry-points") if isinstance(project, dict) else None,
        (tool.get("poetry") or {}).get("plugins") if isinstance(tool, dict) else None,
        (tool.get("flit") or {}).get("entrypoints") if isinstance(tool, dict) else None,
    ]
    for table in tables:
        if isinstance(table, dict):
            for group, value in table.items():
                if group in PLUGIN_GROUPS:
                    out.setdefault(group, []).append(value)
    return out


def _ini_groups(text: str | None) -> dict[str, str] | None:
    if text is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section("options.entry_points"):
        return {}
    section = parser["options.entry_points"]
    return {g: section[g] for g in section if g in PLUGIN_GROUPS}


def plugin_problem(path: str, old: str | None, new: str | None) -> str | None:
    """A pytest (or linter) plugin registered or changed through package entry points."""
    name = PurePosixPath(path).name
    before: dict[str, Any] | dict[str, str] | None
    after: dict[str, Any] | dict[str, str] | None
    if name == "pyproject.toml":
        before, after = _toml_groups(old), _toml_groups(new)
    elif name == "setup.cfg":
        before, after = _ini_groups(old), _ini_groups(new)
    elif name == "setup.py":
        old_n = sum((old or "").count(g) for g in PLUGIN_GROUPS)
        new_n = sum((new or "").count(g) for g in PLUGIN_GROUPS)
        before, after = {"": old_n}, {"": new_n}
    else:
        return None
    if before is None or after is None or before == after:
        return None
    groups = sorted((set(before) | set(after)) - {""}) or sorted(PLUGIN_GROUPS)
    return (
        f"{path}: changes the {', '.join(groups)} entry points; a plugin registered there "
        "runs inside the gate (pytest loads every pytest11 plugin) and can change its verdict"
    )
