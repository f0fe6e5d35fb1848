from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import PolicyError
from harness.policy import load_policy, parse_policy


def test_default_policy_carries_t4_guardrails() -> None:
    policy = load_policy()
    assert policy.guard.max_changed_lines_per_file == 20
    assert policy.gates.ruff.paths == ["lukhas"]
    assert policy.gates.pytest.fail_under == 60


def test_unknown_key_is_named() -> None:
    with pytest.raises(PolicyError, match=r"unknown key 'guard.max_lines'"):
        parse_policy("[guard]\nmax_lines = 3\n")


def test_bad_value_is_reported() -> None:
    with pytest.raises(PolicyError, match="max_changed_lines_per_file"):
        parse_policy("[guard]\nmax_changed_lines_per_file = 0\n")


def test_not_toml() -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_policy("[guard\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.toml")


def test_block_override_applies_only_to_that_block() -> None:
    policy = parse_policy(
        '[guard]\nlanes=["**"]\n[blocks.2]\nlanes=["src/**"]\nmax_changed_lines_per_file=5\n'
    )
    assert policy.guard_for_block(2).lanes == ["src/**"]
    assert policy.guard_for_block(2).max_changed_lines_per_file == 5
    assert policy.guard_for_block(1).lanes == ["**"]
    assert policy.guard_for_block(None).max_changed_lines_per_file == 20


def test_block_overrides_only_tighten_the_guard() -> None:
    policy = parse_policy(
        "[guard]\nmax_changed_lines_per_file = 20\nforbidden = ['.git/**']\n"
        "[blocks.1]\nmax_changed_lines_per_file = 200\nforbidden = ['docs/**']\n"
        "[blocks.2]\nmax_changed_lines_per_file = 8\nforbidden = []\n"
    )
    loose, tight = policy.guard_for_block(1), policy.guard_for_block(2)
    assert loose.max_changed_lines_per_file == 20
    assert loose.forbidden == [".git/**", "docs/**"]
    assert tight.max_changed_lines_per_file == 8
    assert tight.forbidden == [".git/**"]
    assert policy.guard.max_changed_lines_per_file == 20  # the global config is not changed
