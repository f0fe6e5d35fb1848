"""The model's optional mapping of unplaced STEPS text: validated, shown, recorded, replayed,
and never replacing what the parser placed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UsageError
from harness.loop import Loop, RunOptions
from harness.policy import parse_policy
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from harness.schemas import UnplacedMap
from harness.steps import parse_steps
from harness.steps.mapping import MappingUnavailable, ask, judge
from tests.conftest import other_gates_off
from tests.fakeapi import fake_api, message_body, tool_use

SCRIPT = """# STEPS — mapping

## BLOCK 1 — Lint

Run: `ruff check pkg`

## BLOCK 2 — Checks

- Keep the package importable.

## Notes

After block 2 the check to run is test -f pkg/__init__.py, and ruff check other too.

Coverage should end near 80 percent for block 2.
"""

ANSWER: dict[str, Any] = {
    "gates": [
        {"unplaced": 1, "block": 2, "command": "test -f pkg/__init__.py", "why": "a check"},
        {"unplaced": 1, "block": 1, "command": "ruff check other"},
        {"unplaced": 1, "block": 2, "command": "mypy pkg"},
        {"unplaced": 1, "block": 9, "command": "test -f pkg/__init__.py"},
        {"unplaced": 2, "block": 2, "command": "test -f pkg/__init__.py"},
    ],
    "targets": [
        {"unplaced": 1, "block": 2, "metric": "coverage", "op": ">=", "value": 80},
        {"unplaced": 1, "block": 1, "metric": "ruff", "op": "<=", "value": 2},
        {"unplaced": 1, "block": 2, "metric": "mypy", "op": "<=", "value": 95},
    ],
}


def test_what_the_model_maps_is_added_and_never_replaces_what_was_placed() -> None:
    parsed = parse_steps(SCRIPT, "m.md")
    script = judge(parsed, UnplacedMap.model_validate(ANSWER))
    verdicts = [(m.kind, m.block, m.accepted, m.verdict) for m in script.mapped]
    assert verdicts == [
        ("gate", 2, True, "added"),
        (
            "gate",
            1,
            False,
            "the block has `ruff check pkg` (line 5): a mapping never replaces what is placed",
        ),
        ("gate", 2, False, "the command is not written in the item"),
        ("gate", 9, False, "there is no block 9"),
        ("gate", 2, False, "there is no unplaced item 2"),
        ("target", 2, True, "added"),
        (
            "target",
            1,
            False,
            "the block has the target ruff <= 0: a mapping never replaces what is placed",
        ),
        ("target", 2, False, "the item states no 95"),
    ]
    # What the parser placed is as it was; the additions say where they came from.
    assert script.block(1) == parsed.block(1)
    assert script.unplaced == parsed.unplaced
    added = script.block(2)
    assert [(g.command, g.gate, g.origin, g.line) for g in added.gates] == [
        ("test -f pkg/__init__.py", None, "model", None)
    ]
    assert added.gate_commands == ["test -f pkg/__init__.py"]
    assert [(t.metric, t.op, t.value, t.origin) for t in added.targets] == [
        ("coverage", ">=", 80, "model")
    ]


def test_an_invalid_answer_goes_back_with_the_error_and_every_call_is_recorded() -> None:
    script = parse_steps(SCRIPT, "m.md")
    provider = ScriptedProvider.from_responses(
        [
            {"phase": "steps", "tool": "map_unplaced", "input": {"gates": [{"block": 2}]}},
            {"phase": "steps", "tool": "map_unplaced", "input": {"gates": ANSWER["gates"][:1]}},
        ]
    )
    events: list[tuple[str, dict[str, Any]]] = []
    answer = ask(script, provider, lambda kind, **data: events.append((kind, data)))
    assert [g.command for g in answer.gates] == ["test -f pkg/__init__.py"]
    assert [k for k, _ in events] == [
        "model_request",
        "model_response",
        "invalid_output",
        "model_request",
        "model_response",
    ]
    assert events[2][1]["error"].startswith("gates.0.unplaced: Field required")
    first = provider.requests[0]
    assert (first.phase, first.tool_choice) == ("steps", "map_unplaced")
    assert "<<<ITEM 1\n## Notes" in first.messages[0].content
    assert "gate command: ruff check pkg" in first.messages[0].content
    assert "Field required" in provider.requests[1].messages[-1].content
    # Three invalid answers: no mapping, a typed error.
    bad = {"phase": "steps", "tool": "submit_plan", "input": {}}
    with pytest.raises(MappingUnavailable, match="no valid answer in 3 tries"):
        ask(script, ScriptedProvider.from_responses([bad] * 3), lambda *_a, **_k: None)


def test_harness_steps_shows_what_the_model_mapped(tmp_path: Path) -> None:
    path = tmp_path / "m.md"
    path.write_text(SCRIPT, encoding="utf-8")
    responses = tmp_path / "answers.json"
    answer = {"phase": "steps", "tool": "map_unplaced", "input": ANSWER}
    responses.write_text(json.dumps({"responses": [answer]}), encoding="utf-8")
    runner = CliRunner()
    args = ["steps", str(path), "--map-unplaced", "--provider", "scripted"]
    res = runner.invoke(app, [*args, "--script", str(responses)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Mapped by the model (2 of 8)" in res.output
    assert "test -f pkg/__init__.py  (mapped by the model)" in res.output
    assert "added BLOCK 2: target coverage >= 80 from '## Notes': added" in res.output
    assert "refused BLOCK 9: gate `test -f pkg/__init__.py`" in res.output
    res = runner.invoke(app, [*args, "--script", str(responses), "--json"])
    data = json.loads(res.output)
    assert [m["accepted"] for m in data["mapped"]].count(True) == 2
    assert data["blocks"][1]["gates"][0]["origin"] == "model"
    res = runner.invoke(app, ["steps", str(path), "--map-unplaced", "--provider", "builtin"])
    # cli.main maps a UsageError to exit 2.
    assert isinstance(res.exception, UsageError)
    assert "the builtin provider has none" in str(res.exception)


POLICY = (
    other_gates_off("ruff")
    + """
[gates.ruff]
paths = ["pkg"]
[loop]
max_iterations = 1
verify_patches = false
"""
)


def _run(repo: Path, provider: ScriptedProvider, runs: Path, asked: bool) -> Path:
    opts = RunOptions(
        steps=parse_steps(SCRIPT, "m.md"),
        steps_text=SCRIPT,
        repo=repo,
        policy=parse_policy(POLICY),
        policy_text=POLICY,
        policy_path=None,
        provider=provider,
        runs_dir=runs,
        map_unplaced=asked,
    )
    return Path(Loop(opts).run().run_dir)


def test_a_run_maps_records_and_replays_the_mapping(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/calc.py": "X = 1\n"})
    answer = {"phase": "steps", "tool": "map_unplaced", "input": ANSWER}
    run_dir = _run(repo, ScriptedProvider.from_responses([answer]), tmp_path / "runs", False)
    events = read_events(run_dir)
    mapped = next(e for e in events if e["kind"] == "steps_mapped")["mapped"]
    assert [m["accepted"] for m in mapped] == [True, False, False, False, False, True, False, False]
    summary = json.loads((run_dir / "summary.json").read_text())
    block2 = summary["blocks"][1]
    # The mapped command judges block 2, and is accounted for at its end.
    assert block2["gates"] == ["command:test -f pkg/__init__.py"]
    assert [(c["command"], c["how"], c["status"]) for c in block2["commands"]] == [
        ("test -f pkg/__init__.py", "gate", "passed")
    ]
    assert block2["targets"][0]["result"] == "coverage >= 80: not judged (no coverage measurement)"
    # Replayed from the record: the same mapping, without the model.
    again = _run(repo, ScriptedProvider(run_dir), tmp_path / "replay", False)
    replayed = next(e for e in read_events(again) if e["kind"] == "steps_mapped")["mapped"]
    assert replayed == mapped


@pytest.mark.slow
def test_the_anthropic_provider_maps_through_the_real_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.md"
    path.write_text(SCRIPT, encoding="utf-8")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    with fake_api() as api:
        api.push(200, message_body([tool_use("map_unplaced", {"gates": ANSWER["gates"][:1]})]))
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdefghij",
            "ANTHROPIC_BASE_URL": api.base_url,
        }
        cmd = [sys.executable, "-m", "harness", "steps", str(path), "--map-unplaced", "--json"]
        proc = subprocess.run(
            [*cmd, "--provider", "anthropic"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        sent = [r.body for r in api.requests]
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert [(m["command"], m["accepted"]) for m in data["mapped"]] == [
        ("test -f pkg/__init__.py", True)
    ]
    assert len(sent) == 1 and sent[0]["tool_choice"] == {"type": "tool", "name": "map_unplaced"}
    assert "You read STEPS scripts" in json.dumps(sent[0]["system"])
