from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.context import block_gates, read_repo_file, repo_map
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
