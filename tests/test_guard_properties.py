"""Property tests against real git: counts equal `git diff --numstat`; repairs never misplace."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.guard import check_patch
from harness.guard.textdiff import count_changes, split_lines
from harness.policy import GuardConfig

from .conftest import git

CFG = GuardConfig(max_changed_lines_per_file=10_000, secrets=False, protect_tests=False)
# A small alphabet makes repeated lines (and so ambiguous places) common.
LINES = st.sampled_from(["a", "b", "c", "def f():", "    return 1", "", "x = 1", "  y"])
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def edit_pair(draw: st.DrawFn) -> tuple[str, str]:
    old = draw(st.lists(LINES, min_size=0, max_size=25))
    new = list(old)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["ins", "del", "rep"]))
        i = draw(st.integers(0, len(new)))
        if op == "ins":
            new.insert(i, draw(LINES))
        elif new and i < len(new):
            if op == "del":
                del new[i]
            else:
                new[i] = draw(LINES)
    old_eol = draw(st.booleans()) or not old
    new_eol = draw(st.booleans()) or not new
    old_t = "\n".join(old) + ("\n" if old and old_eol else "")
    new_t = "\n".join(new) + ("\n" if new and new_eol else "")
    return old_t, new_t


@contextmanager
def scratch_repo() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="guard-prop-") as tmp:
        root = Path(tmp)
        git(root, "init", "-q", "-b", "main")
        yield root


def real_diff(root: Path, old: str, new: str) -> tuple[str, tuple[int, int]]:
    """git's diff and numstat for f.txt: old (committed) -> new; the file is left at old."""
    f = root / "f.txt"
    f.write_bytes(old.encode())
    git(root, "add", "f.txt")
    f.write_bytes(new.encode())
    diff = git(root, "diff", "f.txt")
    numstat = git(root, "diff", "--numstat", "f.txt")
    f.write_bytes(old.encode())
    counts = tuple(int(x) for x in numstat.split()[:2]) if numstat else (0, 0)
    return diff, (counts[0], counts[1])


@SETTINGS
@given(edit_pair())
def test_counts_equal_git_numstat(pair: tuple[str, str]) -> None:
    old, new = pair
    with scratch_repo() as root:
        diff, (added, removed) = real_diff(root, old, new)
        assert count_changes(split_lines(old), split_lines(new)) == (added, removed)
        if not diff:
            return
        v = check_patch(diff, root, CFG)
        assert v.accepted, v.violations
        assert v.contents["f.txt"] == new.encode()
        assert [(f.added, f.removed) for f in v.files] == [(added, removed)]


# Code-like text: unique lines, plus lines with many copies (blank lines, brackets). git sets a
# many-copies line aside as changed when it sits in a long run of lines that have no copy in
# the other file, so it reports more than the minimum; we must report what git reports.
COMMON = st.sampled_from(["", "", "", "}", "return x"])


@st.composite
def block_rewrite(draw: st.DrawFn) -> tuple[str, str]:
    def body(prefix: str, size: int, unique_in_10: int) -> list[str]:
        kinds = draw(st.lists(st.integers(0, 9), min_size=size, max_size=size))
        return [
            f"{prefix}{i} = {i}" if k < unique_in_10 else draw(COMMON) for i, k in enumerate(kinds)
        ]

    # Many common lines around, mostly unique lines in the rewritten block: git's case.
    head = body("head", draw(st.integers(0, 40)), draw(st.integers(0, 9)))
    tail = body("tail", draw(st.integers(0, 40)), draw(st.integers(0, 9)))
    share = draw(st.integers(5, 10))
    old = head + body("old", draw(st.integers(1, 30)), share) + tail
    new = head + body("new", draw(st.integers(1, 30)), share) + tail
    return "\n".join(old) + "\n", "\n".join(new) + "\n"


@SETTINGS
@given(block_rewrite())
def test_counts_equal_git_numstat_where_git_is_not_minimal(pair: tuple[str, str]) -> None:
    old, new = pair
    with scratch_repo() as root:
        diff, counts = real_diff(root, old, new)
        assert count_changes(split_lines(old), split_lines(new)) == counts
        if not diff:
            return
        v = check_patch(diff, root, CFG)
        assert [(f.added, f.removed) for f in v.files] == [counts]


def test_git_sets_a_blank_line_aside_between_unmatched_lines() -> None:
    # The minimum is 8 added, 8 removed (keep the blank line); git reports 9 and 9.
    keep = [f"keep{i}" for i in range(12)] + [""] * 8
    old = "\n".join([*keep, *(f"old{i}" for i in range(4)), "", *(f"old{i}" for i in range(4, 8))])
    new = "\n".join([*keep, *(f"new{i}" for i in range(4)), "", *(f"new{i}" for i in range(4, 8))])
    with scratch_repo() as root:
        _, counts = real_diff(root, old + "\n", new + "\n")
    assert counts == (9, 9)
    assert count_changes(split_lines(old + "\n"), split_lines(new + "\n")) == (9, 9)


HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.M)


def git_apply(root: Path, diff: str) -> bytes | None:
    """What `git apply` (no fuzz, whitespace exact) makes of the diff, or None if it refuses."""
    proc = subprocess.run(["git", "apply", "-"], cwd=root, input=diff.encode(), capture_output=True)
    if proc.returncode:
        return None
    data = (root / "f.txt").read_bytes()
    git(root, "checkout", "--", "f.txt")
    return data


@SETTINGS
@given(edit_pair(), st.data())
def test_scrambled_counts_repair_to_the_original(
    pair: tuple[str, str], data: st.DataObject
) -> None:
    old, new = pair
    with scratch_repo() as root:
        diff, _ = real_diff(root, old, new)
        if not diff:
            return

        def scramble(m: re.Match[str]) -> str:
            a, c = m.group(1), m.group(3)
            b, d = data.draw(st.integers(0, 40)), data.draw(st.integers(0, 40))
            return f"@@ -{a},{b} +{c},{d} @@"

        broken = HEADER.sub(scramble, diff)
        v = check_patch(broken, root, CFG)
        assert v.accepted, v.violations
        assert v.contents["f.txt"] == new.encode()


@SETTINGS
@given(edit_pair(), st.data())
def test_scrambled_line_numbers_repair_or_reject_never_misplace(
    pair: tuple[str, str], data: st.DataObject
) -> None:
    old, new = pair
    with scratch_repo() as root:
        git(root, "commit", "-q", "--allow-empty", "-m", "base")
        diff, _ = real_diff(root, old, new)
        if not diff:
            return
        git(root, "commit", "-q", "-m", "old")

        def scramble(m: re.Match[str]) -> str:
            shift = data.draw(st.integers(-30, 30))
            a = max(1, int(m.group(1)) + shift)
            c = max(1, int(m.group(3)) + shift)
            b = m.group(2) if m.group(2) is not None else "1"
            d = m.group(4) if m.group(4) is not None else "1"
            return f"@@ -{a},{b} +{c},{d} @@"

        broken = HEADER.sub(scramble, diff)
        v = check_patch(broken, root, CFG)
        if not v.accepted:
            assert {x.rule for x in v.violations} <= {"locate", "parse"}
            return
        got = v.contents.get("f.txt")
        if got == new.encode():
            return
        # Only allowed when the scrambled header points exactly at another copy of the
        # hunk's lines: then the diff, as written, means that place, and git agrees.
        assert got == git_apply(root, broken), (broken, got)


# The hiding rule reads a file as pieces split before top-level definitions, each parsed once
# per content; what it finds must be what one walk of the whole module finds, in that order.
PIECES = st.sampled_from(
    [
        "import os\n",
        "import importlib as il\nfrom typing import Any, cast\n",
        "import os as sys\n",  # an alias that changes what later names mean
        "from importlib import import_module as im\n",
        "def f(x):\n    if x == 'abc':\n        return (1, 2)\n"
        "    return getattr(os, 'pa' + 'th')\n",
        "@dec\ndef g():\n    return {'k1': 1, 'k2': 2}\n",
        "@dec(\n    1)\nclass C:\n    def m(self):\n        return il.import_module('x')\n",
        'S = """\ndef not_a_function(\n@not_a_decorator\nclass\n"""\n',
        "x = cast(Any, sys.modules['y'])\n",
        "if TYPE_CHECKING:\n    pass\nelse:\n    y = im('z')\n",
        "async def h(v):\n    match v:\n        case 'zz':\n            return 3\n",
        "def outer():\n    def inner():\n        return {'a1': 1}\n    return {'b2': 2}\n",
        "z = [\n1,\n]\n# def commented\n\n",
        "w = 1 if os.environ.get('PYTEST_X') == 'pytest' else 2\n",
        "def broken(:\n",
        "\n",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(PIECES, max_size=12))
def test_hiding_read_in_pieces_finds_what_the_whole_module_holds(parts: list[str]) -> None:
    from harness.guard import hiding

    text = "".join(parts)
    for source in (True, False):
        assert hiding._file_findings(text, source) == hiding._file_findings(text, source, False)
    assert hiding._file_literals(text) == hiding._file_literals(text, False)


def test_hiding_read_in_pieces_on_real_modules_and_edits() -> None:
    from harness.guard import hiding, rules

    text = Path(rules.__file__).read_text(encoding="utf-8")
    lines = text.split("\n")
    mid = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].startswith("def "))
    edited = "\n".join([*lines[:mid], "def added():", "    return {'aa': 1}", *lines[mid:]])
    for t in (text, edited):
        assert hiding._file_findings(t, True) == hiding._file_findings(t, True, False)
        assert hiding._file_literals(t) == hiding._file_literals(t, False)
    assert hiding._pieces(edited) is not None and len(hiding._pieces(edited) or []) > 20
