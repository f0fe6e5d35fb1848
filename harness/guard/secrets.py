"""The secrets layer: key formats and high-entropy strings in any text a patch adds.

It runs after the static layer accepts (harness/guard/check.py): it reads every added line of
every file, so a patch the cheap rules refuse never pays for it.

The detectors are detect-secrets' own plugins (run in-process, with its false-positive
heuristics), plus the few key formats its 1.5 release does not know, written as
detect-secrets regex plugins (harness/secret_formats.py; the secrets gate scans the same formats).
Every added line of every file is scanned, whatever its type: code, comments, dotenv,
YAML/TOML/JSON, docs. String literals that join into one value are scanned joined as well: in
Python, as the AST builds them (implicit concatenation, `+` of literals, `"".join` of a literal
list); in other files, literals joined on one line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from detect_secrets.plugins.base import RegexBasedDetector

from harness.guard.globs import match_any
from harness.guard.models import Violation
from harness.policy import GuardConfig
from harness.secret_formats import EXTRA

if TYPE_CHECKING:
    from harness.guard.rules import FileChange

_SKIP_SECRET_TYPES = frozenset({"Public IP (ipv4)"})  # an address is not a credential
_HEX_TYPE = "Hex High Entropy String"


# The key formats detect-secrets misses, one class each (the gate scans the same formats).
_EXTRA: tuple[type[Any], ...] = EXTRA


@lru_cache(maxsize=1)
def _secret_plugins() -> tuple[Any, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    mapping: dict[str, Any] = dict(get_mapping_from_secret_type_to_class())
    found = [cls() for name, cls in mapping.items() if name not in _SKIP_SECRET_TYPES]
    found.extend(cls() for cls in _EXTRA)
    # Key formats first, so that a refusal names the provider rather than "high entropy".
    return tuple(sorted(found, key=lambda p: not isinstance(p, RegexBasedDetector)))


def _secret_ok(secret: str, line: str, plugin: Any) -> bool:
    """detect-secrets' own false-positive heuristics."""
    from detect_secrets.filters import heuristic as h

    return bool(
        h.is_sequential_string(secret)
        or h.is_potential_uuid(secret)
        or h.is_likely_id_string(secret, line, plugin)
        or h.is_templated_secret(secret)
        or h.is_prefixed_with_dollar_sign(secret)
        or h.is_not_alphanumeric_string(secret)
    )


def findings(path: str, line: str) -> Iterator[tuple[str, str]]:
    """(secret type, value) of each secret on the line that survives the heuristics."""
    from detect_secrets.filters import heuristic as h

    indirect: bool | None = None
    for plugin in _secret_plugins():
        for found in plugin.analyze_line(filename=path, line=line, line_number=0):
            value = found.secret_value or ""
            if value and _secret_ok(value, line, plugin):
                continue
            # A provider's key format is a key wherever it stands; the indirect-reference
            # filter (`x = get("...")`) is for the keyword and entropy guesses. It is asked
            # after a finding rather than before every line: its regex costs as much as all
            # the detectors together.
            if not isinstance(plugin, RegexBasedDetector):
                if indirect is None:
                    indirect = bool(h.is_indirect_reference(line))
                if indirect:
                    continue
            yield str(found.type), value


def find_secret(path: str, line: str) -> str | None:
    return next((kind for kind, _ in findings(path, line)), None)


# --- literals that join into one value -------------------------------------------------------

_MIN_JOINED = 16  # shorter than any key format above; spares the scan of short strings
_LITERAL = r"""(?:"[^"\\\n]*"|'[^'\\\n]*')"""
_LITERAL_RUN = re.compile(rf"{_LITERAL}(?:\s*\+?\s*{_LITERAL})+")
_LITERAL_PART = re.compile(_LITERAL)


def _joined_on_lines(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Adjacent literals on one line ("a" "b", 'a' + 'b'), joined: any language."""
    for line_no, text in lines:
        if text.count('"') + text.count("'") < 4:
            continue
        for run in _LITERAL_RUN.finditer(text):
            value = "".join(p[1:-1] for p in _LITERAL_PART.findall(run.group()))
            if len(value) >= _MIN_JOINED:
                yield line_no, f'{text[: run.start()]}"{value}"'


def _folded(node: ast.AST) -> str | None:
    """The value of a string built only from literals, or None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _folded(node.left), _folded(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_folded(v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.List | ast.Tuple)
    ):
        sep = _folded(node.func.value)
        items = [_folded(e) for e in node.args[0].elts]
        if sep is None or any(i is None for i in items):
            return None
        return sep.join(i or "" for i in items)
    return None


def _plain_literal(node: ast.expr, value: str) -> bool:
    # One literal on one line ("..." and nothing else) was scanned with its line already.
    return (
        isinstance(node, ast.Constant)
        and node.end_lineno == node.lineno
        and node.end_col_offset is not None
        and node.end_col_offset - node.col_offset == len(value.encode("utf-8")) + 2
    )


def _joined_in_python(
    text: str, new_lines: list[str], added: set[int]
) -> Iterator[tuple[int, str]] | None:
    """Joined string values the AST builds, on an added line; None when the file does not parse.

    The AST already merges implicit concatenation ("sk-ant-" "api03...") into one constant,
    also across lines; `+` chains and `"".join([...])` of literals are folded here. Only the
    outermost expression is scanned, shown to the detectors as one quoted literal after the
    code that precedes it on its first line (so keyword detectors see `key = "..."`).
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    out: list[tuple[int, str]] = []
    seen: set[int] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.expr) and id(node) not in seen:
            value = _folded(node)
            if value is not None:
                end = node.end_lineno or node.lineno
                if (
                    len(value) >= _MIN_JOINED
                    and "\n" not in value
                    and not _plain_literal(node, value)
                    and added.intersection(range(node.lineno, end + 1))
                ):
                    first = new_lines[node.lineno - 1].encode("utf-8")
                    prefix = first[: node.col_offset].decode("utf-8", "replace")
                    out.append((node.lineno, f'{prefix}"{value}"'))
                for sub in ast.walk(node):
                    seen.add(id(sub))
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return iter(out)


# --- hex digests in tests ---------------------------------------------------------------------

# Hex lengths of md5, sha1, sha224, sha256, sha384, sha512 (and the sha3/blake2 equivalents).
_DIGEST_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})
_HASHING = re.compile(
    r"hashlib|hmac\.|hexdigest|\.digest\(|\b(?:md5|sha1|sha224|sha256|sha384|sha512|sha3_\d+"
    r"|blake2[bs]|shake_(?:128|256)|xxh\d+|crc32)\b",
    re.IGNORECASE,
)
_DIGEST_WINDOW = 5  # lines either side that may hold the hashing call


def _is_digest_in_test(value: str, line_no: int, new_lines: list[str]) -> bool:
    """A test comparing with a known digest: a hex string of a digest's length, a hash near."""
    if len(value) not in _DIGEST_LENGTHS or not all(c in "0123456789abcdefABCDEF" for c in value):
        return False
    lo = max(0, line_no - 1 - _DIGEST_WINDOW)
    return any(_HASHING.search(ln) for ln in new_lines[lo : line_no + _DIGEST_WINDOW])


# --- the rule ---------------------------------------------------------------------------------


# An added line that may hold part of a joined string: two literals, a line that starts with a
# literal or a '+', one that ends in '+', or a join. Parsing the file costs more than scanning
# its added lines, so it is parsed only when one of them is there.
_JOIN_HINT = re.compile(
    rf"""{_LITERAL}\s*\+?\s*{_LITERAL}|^\s*(?:[rRbBuUfF]{{0,2}}["']|\+)|\+\s*\(?\s*$|\.join\("""
)


def _candidates(fc: FileChange) -> Iterator[tuple[int, str]]:
    """Every added line, then the joined literals that touch an added line."""
    yield from fc.added_lines
    joined: Iterator[tuple[int, str]] | None = None
    hinted = any(_JOIN_HINT.search(text) for _, text in fc.added_lines)
    if not hinted:
        return
    if fc.path.endswith((".py", ".pyi")) and fc.new_text:
        added = {n for n, _ in fc.added_lines}
        lines = [ln.rstrip("\r\n") for ln in fc.new_lines]
        joined = _joined_in_python(fc.new_text, lines, added)
    yield from joined if joined is not None else _joined_on_lines(fc.added_lines)


def rule_secrets(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    if not cfg.secrets:
        return []
    out: list[Violation] = []
    for fc in changes:
        is_test = match_any(fc.path, cfg.test_globs)
        new_lines: list[str] | None = None
        flagged: set[int] = set()
        for line_no, text in _candidates(fc):
            if line_no in flagged:
                continue
            for kind, value in findings(fc.path, text):
                if kind == _HEX_TYPE and is_test:
                    if new_lines is None:
                        new_lines = [ln.rstrip("\r\n") for ln in fc.new_lines]
                    if _is_digest_in_test(value, line_no, new_lines):
                        continue
                flagged.add(line_no)
                out.append(
                    Violation(
                        rule="secrets",
                        layer="secrets",
                        path=fc.path,
                        line=line_no,
                        message=f"{fc.path}:{line_no}: added line looks like a secret ({kind}); "
                        "never commit credentials — read them from the environment",
                    )
                )
                break
    return out
