"""Prompt templates: every template renders with its documented variables, strictly."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from harness.errors import UsageError
from harness.prompts import prompt_hashes, prompts_dir, render

BLOCK = {
    "number": 2,
    "title": "Lint & types",
    "goals": ["ruff: 0 findings", "mypy errors ≤ 10"],
    "gate_commands": ["ruff check lukhas", "mypy lukhas --strict"],
}
ITEM = {"id": "T3", "title": "Remove unused imports", "files": ["lukhas/a.py"], "gate": "ruff"}

VARIABLES: dict[str, dict[str, Any]] = {
    "system": {
        "guardrails": ["≤20 lines/file", "UTC only"],
        "max_lines": 20,
        "lanes": ["lukhas/**"],
    },
    "plan": {"block": BLOCK, "findings": "ruff: 3 x F401", "repo_map": "lukhas/a.py (40 lines)"},
    "todo": {
        "block": BLOCK,
        "plan": {"summary": "Drop dead imports.", "steps": ["a.py F401"], "cannot_do": ["tests"]},
        "max_items": 7,
    },
    "execute": {
        "item": ITEM,
        "files": [{"path": "lukhas/a.py", "text": "1 | import os\n2 | x = a < b & c"}],
        "in_regions": [],
        "findings": ["lukhas/a.py:1 F401 `os` imported but unused"],
        "max_lines": 15,
        "can_read": True,
    },
    "rejected": {"item_id": "T3", "reasons": ["lukhas/a.py: 31 changed lines > 20"]},
    "invalid": {"tool": "submit_todos", "error": "items.0.id: String should match pattern"},
    "regression": {"item_id": "T3", "regressions": ["pytest: tests/test_a.py::test_x fails"]},
    "review_system": {},
    "review": {"item_id": "T3", "title": "drop os", "gate": "ruff", "diff": "-import os\n"},
    "map_system": {},
    "map_unplaced": {
        "title": "STEPS",
        "blocks": [
            {"number": 1, "title": "Lint", "final": False, "gates": ["ruff check a"], "targets": []}
        ],
        "unplaced": ["## Notes\nRun mypy a later."],
    },
}


def test_every_template_has_documented_variables() -> None:
    names = {p.name.removesuffix(".j2") for p in prompts_dir().glob("*.j2")}
    assert names == set(VARIABLES)


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_renders_completely(name: str) -> None:
    text = render(name, **VARIABLES[name])
    assert text.endswith("\n")
    assert "{{" not in text
    assert "{%" not in text
    assert "\n\n\n" not in text


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_variable_is_required(name: str) -> None:
    for missing in VARIABLES[name]:
        partial = {k: v for k, v in VARIABLES[name].items() if k != missing}
        with pytest.raises(
            UsageError, match=rf"prompt template {name}\.j2: '{missing}' is undefined"
        ):
            render(name, **partial)


def test_missing_key_inside_a_dict_raises() -> None:
    block = {k: v for k, v in BLOCK.items() if k != "title"}
    with pytest.raises(UsageError, match="has no attribute 'title'"):
        render("plan", block=block, findings="", repo_map="")


def test_system_prompt_states_the_rules() -> None:
    text = render("system", **VARIABLES["system"])
    assert "at most 20 changed lines" in text
    assert "lukhas/**" in text
    assert "- ≤20 lines/file\n- UTC only\n" in text
    for must in ("# type: ignore", "no network", "UTC", "exactly one of the provided tools"):
        assert must in text
    open_lanes = render("system", guardrails=[], max_lines=20, lanes=["**"])
    assert "lanes" not in open_lanes


def test_plan_prompt_carries_block_findings_and_map() -> None:
    text = render("plan", **VARIABLES["plan"])
    assert '<block number="2">' in text
    assert "- mypy errors ≤ 10\n" in text
    assert "    mypy lukhas --strict\n" in text
    assert "ruff: 3 x F401" in text
    assert "lukhas/a.py (40 lines)" in text
    assert "`submit_plan`" in text
    empty = render("plan", block={**BLOCK, "gate_commands": []}, findings="", repo_map="x")
    assert "(no findings for this block's gates)" in empty
    assert "(none given" in empty


def test_todo_prompt_carries_plan_and_limit() -> None:
    text = render("todo", **VARIABLES["todo"])
    assert "Summary: Drop dead imports." in text
    assert "- a.py F401\n" in text
    assert "- tests\n" in text
    assert "at most 7 TODO items" in text
    assert "`submit_todos`" in text


def test_execute_prompt_shows_files_verbatim() -> None:
    text = render("execute", **VARIABLES["execute"])
    # autoescape is off: code reaches the model unchanged
    assert '<file path="lukhas/a.py">\n1 | import os\n2 | x = a < b & c\n</file>' in text
    assert 'item_id "T3"' in text
    assert "At most 15 changed lines" in text
    assert "`read_files`" in text
    no_read = render("execute", **{**VARIABLES["execute"], "can_read": False})
    assert "read_files" not in no_read
    assert "too large to show" not in text


def test_execute_prompt_explains_files_shown_as_regions() -> None:
    text = render("execute", **{**VARIABLES["execute"], "in_regions": ["lukhas/a.py"]})
    assert "lukhas/a.py is too large to show\nwhole and is shown as regions" in text
    assert "`~~~~~` markers" in text and "`ranges` (path, start, end)" in text


def test_feedback_prompts_name_item_and_reasons() -> None:
    rejected = render("rejected", **VARIABLES["rejected"])
    assert "patch for T3 was not applied" in rejected
    assert "- lukhas/a.py: 31 changed lines > 20\n" in rejected
    invalid = render("invalid", **VARIABLES["invalid"])
    assert "`submit_todos` call failed validation:\nitems.0.id" in invalid
    regression = render("regression", **VARIABLES["regression"])
    assert "- pytest: tests/test_a.py::test_x fails\n" in regression


def test_unknown_template() -> None:
    with pytest.raises(UsageError, match=r"no prompt template 'critique\.j2'"):
        render("critique")


def test_prompt_hashes_are_file_sha256() -> None:
    hashes = prompt_hashes()
    assert set(hashes) == {f"{name}.j2" for name in VARIABLES}
    for file_name, digest in hashes.items():
        assert digest == hashlib.sha256((prompts_dir() / file_name).read_bytes()).hexdigest()
