"""`harness run` option handling (the loop itself is tested in test_loop.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands.run import parse_blocks, records_dir
from harness.errors import UsageError


def test_records_never_go_into_the_target_checkout(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    monkeypatch.chdir(repo)
    assert records_dir(None, repo) == repo / ".git" / "harness" / "runs"
    monkeypatch.chdir(tmp_path)
    assert records_dir(None, repo) == tmp_path / "runs"
    assert records_dir(Path("elsewhere"), repo) == Path("elsewhere")


def test_blocks_option() -> None:
    assert parse_blocks("1, 3") == [1, 3]
    assert parse_blocks(None) is None
    with pytest.raises(UsageError, match="numbers separated by commas"):
        parse_blocks("one")
