"""Find gate suppressions in a file: what each tool honours, in the spelling it accepts.

ruff, mypy, bandit and pylint read their markers from comments, so those are matched on the
comments `tokenize` finds (a string that mentions `# noqa` suppresses nothing). coverage,
detect-secrets and gitleaks match their markers against the raw line, strings included, so
those are matched on the whole line. Each marker gets a normalised key (tool, scope and
codes): a removed marker only cancels an added one with the same key, so widening a
code-specific marker to a blanket or file-level one counts as new.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.guard.testast import parse

_I = re.I
# Matched at the start of a comment or of a '#'-segment inside one, as the tools do.
_COMMENT: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "# ruff: noqa",
        re.compile(
            r"#\s*(?:ruff|flake8)\s*:\s*noqa\b(?:\s*:\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?",
            _I,
        ),
    ),
    ("# ruff: disable", re.compile(r"#\s*ruff\s*:\s*disable\b(?P<codes>\s*\[[^\]]*\])?", _I)),
    (
        "# noqa",
        re.compile(r"#\s*noqa\b(?:\s*:\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", _I),
    ),
    # ruff's isort rules (I001) honour these action comments.
    ("# isort: skip", re.compile(r"#\s*isort\s*:\s*(?P<codes>skip_file|skip|off)\b", _I)),
    ("# type: ignore", re.compile(r"#\s*type\s*:\s*ignore\b(?P<codes>\s*\[[^\]]*\])?", _I)),
    ("# mypy:", re.compile(r"#\s*mypy\s*:(?P<codes>[^#]*)", _I)),
    ("# nosec", re.compile(r"#\s*nosec\b(?P<codes>[\s:]*[A-Z][0-9]+(?:[\s,]+[A-Z][0-9]+)*)?", _I)),
    (
        "# pylint: disable",
        re.compile(r"#\s*pylint\s*:\s*disable(?:-next)?\b(?P<codes>\s*=\s*[\w\s,-]*)?", _I),
    ),
)
# Matched anywhere on the line: these tools search the raw source text.
_LINE: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("# pragma: no cover", re.compile(r"#\s*pragma\s*:?\s*no\s*cover\b", _I)),
    # coverage's default partial-branch marker: the branch not taken is no longer reported.
    ("# pragma: no branch", re.compile(r"#\s*pragma\s*:?\s*no\s*branch\b", _I)),
    ("gitleaks:allow", re.compile(r"gitleaks\s*:\s*allow\b", _I)),
    (
        "pragma: allowlist secret",
        re.compile(
            r"pragma\s*:\s*(?:allow|white)list[\s-]+(?P<codes>(?:nextline[\s-]+)?)secret\b", _I
        ),
    ),
)
_CHEAP = re.compile(r"#|gitleaks|pragma|no_type_check", _I)
_NO_TYPE_CHECK = ("no_type_check", "no_type_check_decorator")


@dataclass(frozen=True)
class Suppression:
    line: int
    kind: str  # how the message names the marker
    key: str  # kind plus normalised scope and codes; equal keys are the same suppression
    justified: bool  # at least three words follow it on the line


def _codes(kind: str, raw: str | None) -> str:
    if not raw:
        return ""
    if kind == "# mypy:":
        return "".join(raw.lower().split())
    parts = sorted({p for p in re.split(r"[^A-Za-z0-9_-]+", raw.upper()) if p})
    return ",".join(parts)


def _justified(text: str, end: int) -> bool:
    return len(re.findall(r"[A-Za-z]{2,}", text[end:])) >= 3


def comments(text: str, python: bool) -> dict[int, list[str]]:
    """Line number -> the comments on it. Falls back to 'from the first #' if not Python."""
    out: dict[int, list[str]] = {}
    if python:
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    out.setdefault(tok.start[0], []).append(tok.string)
            return out
        except (tokenize.TokenError, SyntaxError, ValueError):
            out = {}
    for i, line in enumerate(text.splitlines(), 1):
        at = line.find("#")
        if at >= 0:
            out[i] = [line[at:]]
    return out


def _segments(comment: str) -> Iterable[tuple[str, int]]:
    """Each '#'-led segment of a comment, with its offset."""
    for m in re.finditer(r"#[^#]*", comment):
        yield m.group(0), m.start()


def in_lines(
    text: str,
    lines: Iterable[tuple[int, str]],
    python: bool,
    extra: Sequence[tuple[str, re.Pattern[str]]] = (),
) -> list[Suppression]:
    """The suppressions on the given (line number, line text) pairs of `text`.

    `extra`: (kind, pattern) markers searched for in each comment, such as the exclude
    patterns of a repository's coverage configuration."""
    wanted = [(n, t) for n, t in lines if _CHEAP.search(t)]
    if not wanted:
        return []
    notes = comments(text, python) if any("#" in t for _, t in wanted) else {}
    out: list[Suppression] = []
    for n, line in wanted:
        for comment in notes.get(n, ()):
            for kind, pat in extra:
                m = pat.search(comment)
                if m:
                    out.append(Suppression(n, kind, kind, _justified(comment, m.end())))
            for seg, off in _segments(comment):
                for kind, pat in _COMMENT:
                    m = pat.match(seg)
                    if m:
                        code = _codes(kind, m.groupdict().get("codes"))
                        key = f"{kind} {code}".strip()
                        out.append(Suppression(n, kind, key, _justified(comment, off + m.end())))
                        break
        for kind, pat in _LINE:
            for m in pat.finditer(line):
                code = _codes(kind, m.groupdict().get("codes"))
                key = f"{kind} {code}".strip()
                out.append(Suppression(n, kind, key, _justified(line, m.end())))
    return out


def no_type_check_lines(text: str | None) -> list[int] | None:
    """Lines of @no_type_check decorators (any spelling that ends in the name)."""
    if not text or "no_type_check" not in text:
        return []
    tree = parse(text)
    if tree is None:
        return None
    # `from typing import no_type_check as ntc` makes `@ntc` the same decorator.
    aliases = {
        a.asname: a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if a.asname
    }
    out: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                name = (
                    target.attr
                    if isinstance(target, ast.Attribute)
                    else aliases.get(target.id, target.id)
                    if isinstance(target, ast.Name)
                    else ""
                )
                if name in _NO_TYPE_CHECK:
                    out.append(dec.lineno)
    return out
