from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.context import (
    CONTEXT_LINES,
    block_gates,
    file_view,
    named_lines,
    numbered,
    read_repo_file,
    repo_map,
    wanted_range,
)
from harness.guard import check_patch
from harness.policy import GuardConfig
from harness.steps import parse_steps

from .conftest import git


def test_read_repo_file_says_why_not(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"a.py": "x = 1\n", "big.py": "#" * 5000 + "\n", "bin.dat": ""})
    (repo / "bin.dat").write_bytes(b"\xff\xfe\x00")
    assert read_repo_file(repo, "a.py", 1000) == ("x = 1\n", "")
    assert read_repo_file(repo, "big.py", 1000)[1].startswith("5001 bytes is over")
    assert read_repo_file(repo, "../outside.py", 1000) == (None, "outside the repository")
    assert read_repo_file(repo, ".git/config", 100_000) == (None, "outside the repository")
    assert read_repo_file(repo, "nope.py", 1000) == (None, "no such file")
    assert "UTF-8" in read_repo_file(repo, "bin.dat", 1000)[1]


@pytest.mark.parametrize(
    "path",
    [
        "a\x00b.py",
        "n" * 300 + ".py",
        "pkg/" + "n" * 300 + "/m.py",
        "a.py/x.py",
        "é.py",
        "\ud800.py",
    ],
)
def test_read_repo_file_never_raises_on_model_paths(
    make_repo: Callable[..., Path], path: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    text, why = read_repo_file(repo, path, 1000)
    assert text is None and why and "\n" not in why


def test_repo_map_lists_tracked_code_with_sizes(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/m.py": "a\nb\n", "README.md": "hi\n", "pyproject.toml": "[x]\n"})
    (repo / "untracked.py").write_text("u\n")
    assert repo_map(repo) == "pkg/m.py (2 lines)\npyproject.toml (1 lines)"


def test_repo_map_skips_symlinks_and_keeps_unicode_names(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"a.py": "x\n", "d/__init__.py": "", "pkg/é.py": "a\nb\n", "日本.py": "z\n"})
    (repo / "dirlink.py").symlink_to("d")
    (repo / "broken.py").symlink_to("missing.py")
    (repo / "filelink.py").symlink_to("a.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    assert repo_map(repo).splitlines() == [
        "a.py (1 lines)",
        "d/__init__.py (0 lines)",
        "pkg/é.py (2 lines)",
        "日本.py (1 lines)",
    ]


def test_block_gates_from_commands_then_title() -> None:
    script = parse_steps(
        "# S\n\n## BLOCK 1 — Ruff to 0\n\n- fix\n\n"
        "## BLOCK 2 — Coverage Expansion\n\n**Gate:**\n```bash\n"
        "pytest --cov=pkg --cov-fail-under=60 -q\nmake check\n```\n",
        "s.md",
    )
    first, second = script.blocks
    assert block_gates(first) == ["ruff"]
    assert block_gates(second) == ["command:make check", "pytest"]


# 1000 functions with identical bodies (50 kB, 5001 lines): a hunk whose lines are only
# body lines can land only where its header's line number says.
BIG = "import os\n" + "".join(
    f"\n\ndef f{i}(x):\n    total = x + 1\n    return total\n" for i in range(1000)
)


def total_line(i: int) -> int:
    return 1 + 5 * i + 4  # "    total = x + 1" of f<i>


def shown_rows(view: str) -> dict[int, str]:
    rows = [r.split(" | ", 1) for r in view.splitlines(True) if " | " in r[:8]]
    return {int(n): line for n, line in rows}


def test_a_small_file_is_shown_whole() -> None:
    view = file_view("pkg/big.py", BIG, len(BIG))
    assert view.whole and view.text == numbered(BIG) and view.lines == 5001


def test_a_large_file_is_shown_as_numbered_regions_around_the_findings() -> None:
    far = [total_line(3), total_line(500), total_line(990)]
    view = file_view("pkg/big.py", BIG, 20_000, [(n, n) for n in far])
    assert view.regions == tuple((max(1, n - CONTEXT_LINES), n + CONTEXT_LINES) for n in far)
    assert len(view.text.encode()) <= 20_000
    whole = numbered(BIG).splitlines(True)
    rows = shown_rows(view.text)
    assert sorted(rows) == [i for a, b in view.regions for i in range(a, b + 1)]
    assert all(f"{n:5d} | {line}" == whole[n - 1] for n, line in rows.items())
    header = view.text.splitlines()[0]
    assert header.startswith("(pkg/big.py has 5001 lines, 50 kB, too large to show whole: ")
    assert "showing lines 1-40, 2485-2525, 4935-4975 around its findings" in header
    assert '"ranges": [{"path": "pkg/big.py", "start": N, "end": M}]' in header
    markers = [r for r in view.text.splitlines() if r.startswith("~~~~~")]
    assert markers == [
        "~~~~~ lines 41-2484 not shown ~~~~~",
        "~~~~~ lines 2526-4934 not shown ~~~~~",
        "~~~~~ lines 4976-5001 not shown ~~~~~",
    ]
    assert view.basis == "around its findings"


def test_a_patch_written_against_the_shown_numbers_lands(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/big.py": BIG})
    n = total_line(900)
    rows = shown_rows(file_view("pkg/big.py", BIG, 20_000, [(n, n)]).text)
    # Only body lines: a thousand places match them, the header's number picks one.
    diff = (
        f"--- a/pkg/big.py\n+++ b/pkg/big.py\n@@ -{n},2 +{n},2 @@\n"
        f"-{rows[n]}+    total = x + 2\n {rows[n + 1]}"
    )
    verdict = check_patch(diff, repo, GuardConfig())
    assert verdict.accepted, verdict.violations
    after = (verdict.contents["pkg/big.py"] or b"").decode().splitlines()
    assert after[n - 2 : n + 1] == ["def f900(x):", "    total = x + 2", "    return total"]
    assert after.count("    total = x + 2") == 1


def test_regions_are_capped_and_what_did_not_fit_is_named() -> None:
    every = [(total_line(i), total_line(i)) for i in range(0, 1000, 10)]
    view = file_view("pkg/big.py", BIG, 5_000, every)
    assert len(view.text.encode()) <= 5_000
    # Whole regions in file order while they fit; no stub of a region without its finding.
    assert view.regions == ((1, 25), (35, 75), (85, 125), (135, 175), (185, 225), (235, 275))
    assert (
        "lines 305, 355, 405, 455, 505, 555, 605, 655, 705, 755 and 84 more of the findings "
        "did not fit in 5000 bytes"
    ) in view.text.splitlines()[0]


def test_asked_ranges_come_first_and_no_finding_shows_the_top() -> None:
    focus = [(total_line(10), total_line(10))]
    view = file_view("pkg/big.py", BIG, 3_000, focus, [(4000, 4010)])
    assert view.regions == ((35, 75), (4000, 4010))
    assert view.basis == "around its findings and where asked"
    # A range asked for comes before the findings' regions, and is cut to fit.
    wide = file_view("pkg/big.py", BIG, 3_000, focus, [(4000, 4010), (100, 900)])
    assert wide.regions[0][0] == 100 and (35, 75) not in wide.regions
    assert len(wide.text.encode()) <= 3_000
    top = file_view("pkg/big.py", BIG, 3_000)
    assert top.regions[0][0] == 1 and top.basis.startswith("from its top")
    assert len(top.text.encode()) <= 3_000


def test_named_lines_and_wanted_ranges() -> None:
    assert named_lines("fix E501 on line 120 and lines 300-310 (pkg/big.py:4000)") == [
        (120, 120),
        (300, 310),
        (4000, 4000),
    ]
    assert named_lines("lines 0-3, line 9-2") == []
    assert wanted_range(BIG, 20_000, 4990, 6000) == (4990, 5001)
    assert wanted_range(BIG, 20_000, 6000, 6001) == (
        "lines 6000-6001 are past the end of the file (5001 lines)"
    )
    assert wanted_range("x = 1\n", 20_000, 1, 1) == "the whole file is shown already"


def test_read_repo_file_reads_large_files_whole(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/big.py": BIG})
    assert read_repo_file(repo, "pkg/big.py") == (BIG, "")
