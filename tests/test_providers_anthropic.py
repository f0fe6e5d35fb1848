"""AnthropicProvider through the real SDK against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.budget import Budget, Limits, Spend
from harness.errors import BudgetExceeded, PolicyError, ProviderError
from harness.policy import Price, load_policy
from harness.providers.anthropic import AnthropicProvider, cost_usd, parse_retry_after
from harness.providers.base import Message, ModelRequest, ToolSpec, Usage
from harness.schemas import PHASE_TOOLS
from tests.fakeapi import FakeAPI, error_body, fake_api, message_body, tool_use

KEY = "test-key-0000-not-real"
PRICES = load_policy().prices
# The SDK warns that the default model has an end-of-life date; that is for users, not tests.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
PLAN = {"summary": "fix ruff findings", "steps": ["F401 in a.py"], "cannot_do": []}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # A proxy from the environment would send 127.0.0.1 traffic elsewhere.
    if request.node.get_closest_marker("live"):
        return
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with fake_api() as server:
        yield server


def provider(base_url: str, sleeps: list[float] | None = None, **kw: Any) -> AnthropicProvider:
    opts: dict[str, Any] = {
        "api_key": KEY,
        "base_url": base_url,
        "prices": PRICES,
        "retry_wait_min": 0.001,
        "retry_wait_max": 0.01,
        "timeout": 5.0,
    }
    opts.update(kw)
    record = sleeps if sleeps is not None else []
    return AnthropicProvider("claude-sonnet-4-5", sleep=record.append, **opts)


def plan_request(tool_choice: str | None = None) -> ModelRequest:
    tools = [
        ToolSpec(
            name=name, description=model.__doc__ or name, input_schema=model.model_json_schema()
        )
        for name, model in PHASE_TOOLS["execute"] + PHASE_TOOLS["plan"]
    ]
    return ModelRequest(
        phase="plan",
        system="You clean up Python repositories.",
        messages=[Message(role="user", content="Block 1: make ruff clean.")],
        tools=tools,
        tool_choice=tool_choice,
    )


def ok_reply(api: FakeAPI, **kw: Any) -> None:
    api.push(200, message_body([tool_use("submit_plan", PLAN)], **kw))


def test_tool_use_response_is_parsed(api: FakeAPI) -> None:
    api.push(
        200,
        message_body(
            [{"type": "text", "text": "Here is the plan."}, tool_use("submit_plan", PLAN)],
            model="claude-sonnet-4-5-20250929",
        ),
    )
    p = provider(api.base_url)
    resp = p.complete(plan_request())
    assert resp.tool == "submit_plan"
    assert resp.input == PLAN
    assert resp.text == "Here is the plan."
    assert resp.model == "claude-sonnet-4-5-20250929"
    assert resp.stop_reason == "tool_use"
    [seen] = api.requests
    assert seen.path == "/v1/messages"
    # SDK versions differ in how the key travels (x-api-key or a bearer token); it must arrive.
    assert KEY in (seen.headers.get("x-api-key"), seen.headers.get("authorization", "")[7:])
    body = seen.body
    assert body["model"] == "claude-sonnet-4-5"
    assert body["max_tokens"] == 4096
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"] == [{"role": "user", "content": "Block 1: make ruff clean."}]
    assert [t["name"] for t in body["tools"]] == ["propose_patch", "read_files", "submit_plan"]
    assert body["tools"][2]["input_schema"]["required"] == ["summary"]


def test_forced_tool_choice(api: FakeAPI) -> None:
    ok_reply(api)
    provider(api.base_url).complete(plan_request(tool_choice="submit_plan"))
    assert api.requests[0].body["tool_choice"] == {"type": "tool", "name": "submit_plan"}


def test_forced_tool_must_be_offered(api: FakeAPI) -> None:
    with pytest.raises(ProviderError, match="'submit_todos' is not among"):
        provider(api.base_url).complete(plan_request(tool_choice="submit_todos"))
    assert api.requests == []


def test_only_first_tool_use_block_is_taken(api: FakeAPI) -> None:
    second = tool_use("read_files", {"paths": ["a.py"]}, block_id="toolu_02")
    api.push(200, message_body([tool_use("submit_plan", PLAN), second]))
    resp = provider(api.base_url).complete(plan_request())
    assert resp.tool == "submit_plan"


def test_prompt_caching_markers_on_stable_prefix(api: FakeAPI) -> None:
    ok_reply(api)
    provider(api.base_url).complete(plan_request())
    body = api.requests[0].body
    assert body["system"] == [
        {
            "type": "text",
            "text": "You clean up Python repositories.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in t for t in body["tools"][:-1])
    assert all(isinstance(m["content"], str) for m in body["messages"])


def test_529_then_success_is_retried(api: FakeAPI) -> None:
    api.push(529, error_body("overloaded_error", "Overloaded"))
    ok_reply(api)
    sleeps: list[float] = []
    p = provider(api.base_url, sleeps)
    resp = p.complete(plan_request())
    assert resp.tool == "submit_plan"
    assert len(api.requests) == 2
    assert (p.attempts, p.calls) == (2, 1)
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.01


def test_429_retry_after_seconds_is_honoured(api: FakeAPI) -> None:
    api.push(429, error_body("rate_limit_error", "slow down"), {"retry-after": "7"})
    ok_reply(api)
    sleeps: list[float] = []
    provider(api.base_url, sleeps).complete(plan_request())
    assert sleeps == [7.0]
    assert len(api.requests) == 2


def test_retry_after_is_capped(api: FakeAPI) -> None:
    api.push(429, error_body("rate_limit_error", "slow down"), {"retry-after": "86400"})
    ok_reply(api)
    sleeps: list[float] = []
    provider(api.base_url, sleeps, retry_after_max=30.0).complete(plan_request())
    assert sleeps == [30.0]


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "3"}, now) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}, now) == 1.5
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 12:00:42 GMT"}, now) == 42.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 11:00:00 GMT"}, now) == 0.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    assert parse_retry_after({"retry-after": "soon"}, now) is None
    assert parse_retry_after({}, now) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
    ],
)
def test_client_errors_are_not_retried(api: FakeAPI, status: int, kind: str) -> None:
    api.push(status, error_body(kind, "messages: field required"))
    ok_reply(api)
    sleeps: list[float] = []
    p = provider(api.base_url, sleeps)
    with pytest.raises(ProviderError) as info:
        p.complete(plan_request())
    assert len(api.requests) == 1
    assert sleeps == []
    message = str(info.value)
    assert message == f"anthropic: HTTP {status} {kind}: messages: field required"
    assert KEY not in message
    assert p.calls == 0


def test_5xx_retries_are_bounded(api: FakeAPI) -> None:
    for _ in range(5):
        api.push(500, error_body("api_error", "Internal server error"))
    p = provider(api.base_url, max_retries=2)
    with pytest.raises(ProviderError) as info:
        p.complete(plan_request())
    assert len(api.requests) == 3
    assert str(info.value) == (
        "anthropic: HTTP 500 api_error: Internal server error (gave up after 3 attempts)"
    )
    assert p.calls == 0


def test_non_json_error_body_gives_a_short_line(api: FakeAPI) -> None:
    page = "<html>\n<body>" + "Bad gateway " * 100 + "</body>\n</html>"
    api.push(502, page)
    api.push(404, page)
    p = provider(api.base_url, max_retries=1)
    with pytest.raises(ProviderError) as info:
        p.complete(plan_request())
    message = str(info.value)
    assert message.startswith("anthropic: HTTP 404 error: Error code: 404")
    assert "\n" not in message
    assert len(message) < 400
    assert len(api.requests) == 2


def test_timeout_is_retried(api: FakeAPI) -> None:
    api.push(200, message_body([tool_use("submit_plan", PLAN)]), delay=1.0)
    ok_reply(api)
    p = provider(api.base_url, timeout=0.3)
    resp = p.complete(plan_request())
    assert resp.tool == "submit_plan"
    assert p.attempts == 2


def test_connection_error_is_retried_then_fails() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more: every attempt is refused.
    sleeps: list[float] = []
    p = provider(f"http://127.0.0.1:{port}", sleeps, max_retries=2)
    with pytest.raises(ProviderError, match=r"connection error.*gave up after 3 attempts"):
        p.complete(plan_request())
    assert p.attempts == 3
    assert len(sleeps) == 2


def test_usage_and_cost_accounting_with_cache_tokens(api: FakeAPI) -> None:
    ok_reply(api, input_tokens=1000, output_tokens=500, cache_creation=2000, cache_read=3000)
    ok_reply(api, input_tokens=10, output_tokens=10, cache_creation=0, cache_read=5000)
    p = provider(api.base_url)
    first = p.complete(plan_request())
    # sonnet: $3 in, $15 out, $3.75 cache write, $0.30 cache read per million tokens
    assert first.usage.input_tokens == 1000
    assert first.usage.cache_creation_input_tokens == 2000
    assert first.usage.cache_read_input_tokens == 3000
    assert first.usage.cost_usd == pytest.approx((3000 + 7500 + 7500 + 900) / 1e6)
    second = p.complete(plan_request())
    assert second.usage.cost_usd == pytest.approx((30 + 150 + 1500) / 1e6)
    assert p.calls == 2
    assert p.totals.input_tokens == 1010
    assert p.totals.output_tokens == 510
    assert p.totals.cache_creation_input_tokens == 2000
    assert p.totals.cache_read_input_tokens == 8000
    assert p.totals.cost_usd == pytest.approx(first.usage.cost_usd + second.usage.cost_usd)


def test_missing_cache_prices_use_published_multipliers() -> None:
    usage = Usage(cache_creation_input_tokens=1_000_000, cache_read_input_tokens=1_000_000)
    assert cost_usd(usage, Price(input=2.0, output=10.0)) == pytest.approx(2.5 + 0.2)


def test_reply_without_tool_call_is_still_billed(api: FakeAPI) -> None:
    api.push(200, message_body([{"type": "text", "text": "I refuse."}], stop_reason="end_turn"))
    p = provider(api.base_url)
    resp = p.complete(plan_request())
    assert (resp.tool, resp.input, resp.text) == (None, None, "I refuse.")
    assert p.calls == 1
    assert p.totals.cost_usd > 0


def test_call_budget_checked_before_calling(api: FakeAPI) -> None:
    ok_reply(api)
    ok_reply(api)
    p = provider(api.base_url)
    p.meter = Budget(Limits(calls=1), Limits())  # the run's budget: the provider has none
    p.complete(plan_request())
    with pytest.raises(BudgetExceeded, match="1 model calls made of 1"):
        p.complete(plan_request())
    assert len(api.requests) == 1


def test_cost_budget_checked_before_calling(api: FakeAPI) -> None:
    ok_reply(api, input_tokens=100_000, output_tokens=10_000)  # $0.45
    ok_reply(api)
    p = provider(api.base_url)
    p.meter = Budget(Limits(cost_usd=0.40), Limits())
    p.complete(plan_request())
    with pytest.raises(BudgetExceeded, match=r"\$0\.4500 spent of \$0\.40"):
        p.complete(plan_request())
    assert len(api.requests) == 1


def test_budget_error_is_a_provider_error_and_not_retried(api: FakeAPI) -> None:
    sleeps: list[float] = []
    p = provider(api.base_url, sleeps)
    p.meter = Budget(Limits(calls=1), Limits(), spent=Spend(calls=1))
    with pytest.raises(ProviderError):
        p.complete(plan_request())
    assert sleeps == []
    assert api.requests == []


def test_model_without_price_fails_closed(api: FakeAPI) -> None:
    with pytest.raises(PolicyError, match=r"no price for model claude-nova-9 in policy \[prices\]"):
        AnthropicProvider("claude-nova-9", api_key=KEY, base_url=api.base_url, prices=PRICES)
    assert api.requests == []


def test_key_is_not_shown(api: FakeAPI) -> None:
    p = provider(api.base_url)
    assert KEY not in repr(p)
    assert KEY not in str(vars(p).get("api_key", ""))


@pytest.mark.live
def test_live_api_returns_a_tool_call() -> None:
    """Opt-in (`--live` with ANTHROPIC_API_KEY): the real API, the cheapest priced model."""
    import os

    p = AnthropicProvider(os.environ.get("HARNESS_MODEL", "claude-haiku-4-5"), prices=PRICES)
    p.meter = Budget(Limits(calls=1), Limits())
    resp = p.complete(plan_request(tool_choice="submit_plan"))
    assert resp.tool == "submit_plan"
    assert resp.usage.input_tokens > 0
    assert p.totals.cost_usd > 0
