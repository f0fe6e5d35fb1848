from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import PolicyError
from harness.policy import load_policy, parse_policy, resolve_policy
from harness.steps import apply_to_policy, block_lanes, parse_steps


def test_default_policy_carries_t4_guardrails() -> None:
    policy = load_policy()
    assert policy.guard.max_changed_lines_per_file == 20
    assert policy.guard.protect_tests and policy.guard.protect_gate_config
    assert policy.guard.suppressions.budget == 0


def test_default_policy_names_no_project() -> None:
    policy = load_policy()
    for name in ("ruff", "mypy", "pytest", "bandit", "imports", "secrets"):
        cfg = getattr(policy.gates, name)
        assert cfg.paths == [] and cfg.config is None, name
    assert policy.gates.pytest.cov == [] and policy.gates.pytest.fail_under is None
    assert policy.blocks == {}  # no lanes keyed by another script's block numbers


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


def test_harness_toml_at_the_root_is_picked_up(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"pkg/__init__.py": "", "harness.toml": 'name = "mine"\n'})
    resolved = resolve_policy(repo)
    assert resolved.policy.name == "mine"
    assert resolved.path == repo / "harness.toml"
    assert resolved.policy.gates.bandit.paths == ["pkg"]  # detected beneath it


def test_shipped_default_plus_detection(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"src/lib/__init__.py": ""})
    resolved = resolve_policy(repo)
    assert resolved.path is None and resolved.policy.name == "t4-default"
    assert resolved.filled["gates"]["pythonpath"] == ["src"]
    assert resolved.policy.gates.mypy.paths == ["src/lib"]


def test_detection_can_be_turned_off(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"src/lib/__init__.py": "", "harness.toml": "detect = false\n"})
    resolved = resolve_policy(repo)
    assert resolved.detected is None
    assert resolved.policy.gates.mypy.paths == [] and resolved.policy.gates.pythonpath == []


def test_relative_python_is_the_checkouts(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"harness.toml": '[gates]\npython = ".venv/bin/python"\n'})
    policy = resolve_policy(repo).policy
    assert policy.gates.python == str((repo / ".venv/bin/python").absolute())


def test_lanes_follow_what_a_block_does() -> None:
    policy = parse_policy('[gates.ruff]\npaths = ["src/pkg"]\n')
    script = parse_steps(
        "## BLOCK 1 — Coverage to >=60%\n\nRun: `pytest --cov=pkg --cov-fail-under=60`\n\n"
        "## BLOCK 2 — Ruff to 0\n\nRun: `ruff check src/pkg`\n\n"
        "## BLOCK 3 — Whatever\n\n- tidy up\n",
        "s.md",
    )
    applied = apply_to_policy(script, policy)
    one = block_lanes(script.block(1), ["pytest"], applied)[0]
    assert "tests/**" in one and "src/pkg/**" not in one
    assert block_lanes(script.block(2), ["ruff"], applied)[0] == ["src/pkg/**"]
    assert block_lanes(script.block(3), [], applied)[0] == ["**"]
    guard = applied.guard_for_block(2, default_lanes=["src/pkg/**"])
    assert guard.lanes == ["src/pkg/**"]
    pinned = parse_policy('[blocks.2]\nlanes = ["docs/**"]\n')
    assert pinned.guard_for_block(2, default_lanes=["src/pkg/**"]).lanes == ["docs/**"]
    narrowed = parse_policy('[guard]\nlanes = ["lib/**"]\n')
    assert narrowed.guard_for_block(2, default_lanes=["src/pkg/**"]).lanes == ["lib/**"]
