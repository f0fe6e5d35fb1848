"""ScriptedProvider (responses from a file) and the provider registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import PolicyError, ProviderError, UsageError
from harness.policy import load_policy
from harness.providers.base import Message, ModelRequest, Provider, Usage
from harness.providers.registry import make_provider, resolve_model
from harness.providers.scripted import ScriptedProvider
from harness.schemas import Plan

PLAN = {"summary": "fix F401", "steps": ["remove unused import"], "cannot_do": []}


def request(phase: str) -> ModelRequest:
    return ModelRequest.model_validate(
        {
            "phase": phase,
            "system": "sys",
            "messages": [Message(role="user", content="go")],
            "tools": [],
        }
    )


def write_script(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_file_responses_are_served_in_order(tmp_path: Path) -> None:
    path = write_script(
        tmp_path,
        {
            "model": "scenario-1",
            "responses": [
                {"phase": "plan", "tool": "submit_plan", "input": PLAN, "text": "thinking"},
                {"tool": "submit_todos", "input": {"items": []}},
            ],
        },
    )
    p = ScriptedProvider(path)
    assert isinstance(p, Provider)
    first = p.complete(request("plan"))
    assert (first.tool, first.text, first.model) == ("submit_plan", "thinking", "scenario-1")
    assert Plan.model_validate(first.input).summary == "fix F401"
    second = p.complete(request("todo"))
    assert (second.tool, second.input) == ("submit_todos", {"items": []})
    assert p.remaining == 0
    assert [r.phase for r in p.requests] == ["plan", "todo"]


def test_phase_mismatch_names_index_and_phase() -> None:
    p = ScriptedProvider.from_responses(
        [{"phase": "plan", "tool": "submit_plan", "input": PLAN}, {"phase": "todo", "tool": "x"}]
    )
    p.complete(request("plan"))
    with pytest.raises(ProviderError) as info:
        p.complete(request("execute"))
    assert str(info.value) == (
        "scripted response #1 expects phase 'todo', but the request is for phase 'execute'"
    )


def test_running_out_of_responses() -> None:
    p = ScriptedProvider.from_responses([{"tool": "submit_plan", "input": PLAN}])
    p.complete(request("plan"))
    with pytest.raises(ProviderError, match=r"no response left for call #1 \(phase todo\)"):
        p.complete(request("todo"))


def test_returned_input_is_a_copy() -> None:
    p = ScriptedProvider.from_responses([{"tool": "submit_plan", "input": PLAN}])
    resp = p.complete(request("plan"))
    assert resp.input is not None
    resp.input["steps"].append("mutated by the caller")
    assert p.responses[0].input == PLAN


def test_usage_is_summed() -> None:
    usage = {"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5}
    p = ScriptedProvider.from_responses([{"tool": "a", "usage": usage}, {"tool": "b"}])
    p.complete(request("plan"))
    p.complete(request("todo"))
    assert p.totals == Usage(input_tokens=10, output_tokens=2, cost_usd=0.5)
    assert p.calls == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"responses": [{"phase": "critique"}]}, "responses.0.phase: Input should be"),
        ({"responses": [{"tool": "x", "extra": 1}]}, "responses.0.extra: Extra inputs"),
        ({"model": "m"}, "responses: Field required"),
        ([1, 2], "<root>: Input should be a valid dictionary"),
    ],
)
def test_bad_script_file_is_a_one_line_error(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(UsageError) as info:
        ScriptedProvider(write_script(tmp_path, data))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read script"):
        ScriptedProvider(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match="is not valid JSON"):
        ScriptedProvider(broken)


# --- registry ---------------------------------------------------------------------------------


def test_registry_builds_scripted(tmp_path: Path) -> None:
    path = write_script(tmp_path, {"responses": []})
    p = make_provider("scripted", model=None, policy=load_policy(), script=path)
    assert isinstance(p, ScriptedProvider)
    with pytest.raises(UsageError, match="needs --script"):
        make_provider("scripted", model=None, policy=load_policy())


def test_registry_unknown_name() -> None:
    with pytest.raises(
        UsageError, match="unknown provider 'gpt': choose one of anthropic, builtin"
    ):
        make_provider("gpt", model=None, policy=load_policy())


def test_registry_defaults_to_builtin_without_key() -> None:
    p = make_provider(None, model=None, policy=load_policy())
    assert p.name == "builtin"


def test_registry_anthropic_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(UsageError, match="needs ANTHROPIC_API_KEY"):
        make_provider("anthropic", model=None, policy=load_policy())


def test_registry_defaults_to_anthropic_with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("HARNESS_MODEL", raising=False)
    policy = load_policy().model_copy(deep=True)
    policy.loop.max_calls = 5
    policy.loop.max_cost_usd = 1.5
    p = make_provider(None, model=None, policy=policy)
    assert (p.name, p.model) == ("anthropic", "claude-sonnet-5")
    from harness.providers.anthropic import AnthropicProvider

    assert isinstance(p, AnthropicProvider)
    assert p.meter is None  # the run's budget is handed in by the loop (harness/budget.py)
    assert str(p._client.base_url).startswith("http://127.0.0.1:9")


def test_registry_model_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_MODEL", "claude-haiku-4-5")
    assert resolve_model(None) == "claude-haiku-4-5"
    assert resolve_model("claude-opus-4-1") == "claude-opus-4-1"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
    p = make_provider("anthropic", model=None, policy=load_policy(), base_url="http://127.0.0.1:9")
    assert p.model == "claude-haiku-4-5"


def test_registry_anthropic_unpriced_model_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
    with pytest.raises(PolicyError, match="no price for model claude-x"):
        make_provider("anthropic", model="claude-x", policy=load_policy())
