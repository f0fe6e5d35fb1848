"""Claude through the official SDK: structured output by tool use, tenacity retries, cost.

The SDK's own retries are off so that one place decides what is retried (429, 529, 5xx,
timeouts, connection errors), how long to wait (`retry-after` first, else exponential backoff
with full jitter), and that budget errors never are. The budget itself is the run's
(harness/budget.py), handed in as `meter`: every HTTP attempt, a retry too, is checked against
it before it is made and charged to it after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import anthropic
from anthropic.types import (
    Message as ApiMessage,
)
from anthropic.types import (
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
)
from anthropic.types.assistant_message_param import AssistantMessageParam
from anthropic.types.user_message_param import UserMessageParam
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from harness.errors import PolicyError, ProviderError
from harness.policy import Price
from harness.providers.base import ModelRequest, ModelResponse, Usage

if TYPE_CHECKING:
    from harness.budget import Meter

# 408 is the server saying the request timed out: a timeout, so retried like one.
_RETRY_STATUS = frozenset({408, 429})
_MAX_DETAIL = 300
# Anthropic's published multipliers for 5-minute cache writes and cache reads, used only when
# the policy gives the base prices and leaves the cache prices out.
_CACHE_WRITE_FACTOR = 1.25
_CACHE_READ_FACTOR = 0.10


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    # APITimeoutError is a subclass of APIConnectionError.
    return isinstance(exc, anthropic.APIConnectionError)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        kind = exc.type or "error"
        # A proxy in between can answer with a whole HTML page; keep the message one short line.
        detail = " ".join((exc.api_message or str(exc)).split())[:_MAX_DETAIL]
        return f"HTTP {exc.status_code} {kind}: {detail}"
    if isinstance(exc, anthropic.APITimeoutError):
        return "request timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        return f"connection error: {cause or exc.message}".splitlines()[0]
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def cost_usd(usage: Usage, price: Price) -> float:
    cache_write = (
        price.cache_write if price.cache_write is not None else price.input * _CACHE_WRITE_FACTOR
    )
    cache_read = (
        price.cache_read if price.cache_read is not None else price.input * _CACHE_READ_FACTOR
    )
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * cache_write
        + usage.cache_read_input_tokens * cache_read
    )
    return total / 1_000_000


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        prices: Mapping[str, Price],
        max_retries: int = 6,
        timeout: float = 120.0,
        max_tokens: int = 4096,
        retry_wait_min: float = 1.0,
        retry_wait_max: float = 60.0,
        retry_after_max: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        price = prices.get(model)
        if price is None:
            # A missing price is the policy's fault (exit 2), not the provider's.
            raise PolicyError(f"no price for model {model} in policy [prices]", model=model)
        self.model = model
        self.price = price
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.retry_wait_min = retry_wait_min
        self.retry_wait_max = retry_wait_max
        self.retry_after_max = retry_after_max
        self._sleep = sleep
        self.totals = Usage()
        self.calls = 0  # billed calls: every response the API returned
        self.attempts = 0  # HTTP attempts, including ones that failed and were retried
        # The run's budget (harness/budget.py), set by the loop: every attempt, a retry too,
        # is checked before it is made and counted after.
        self.meter: Meter | None = None
        # The key goes straight into the client and is never kept or shown by this object.
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    def __repr__(self) -> str:
        return f"AnthropicProvider(model={self.model!r}, calls={self.calls})"

    def complete(self, request: ModelRequest) -> ModelResponse:
        params = self.build_params(request)
        before = self.attempts
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            message = retrying(self._create, params)
        except anthropic.AnthropicError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            if _retryable(exc):
                raise ProviderError(
                    f"anthropic: {_one_line(exc)} (gave up after {attempts} attempts)"
                ) from exc
            raise ProviderError(f"anthropic: {_one_line(exc)}") from exc
        response = self._account(message)
        # Recorded with the answer: a resume charges the budget for the failed ones again.
        response.attempts = self.attempts - before
        return response

    def _wait(self, state: RetryCallState) -> float:
        if self.meter is not None:
            self.meter.before_call()  # no wait for a retry the budget will not let be made
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, anthropic.APIStatusError):
            after = parse_retry_after(exc.response.headers)
            if after is not None:
                return min(after, self.retry_after_max)
        backoff = wait_random_exponential(multiplier=self.retry_wait_min, max=self.retry_wait_max)
        return float(backoff(state))

    def _create(self, params: dict[str, Any]) -> ApiMessage:
        if self.meter is not None:
            self.meter.before_call()  # BudgetExceeded is not retried: the call is not made
        self.attempts += 1
        try:
            message: ApiMessage = self._client.messages.create(**params)
        except anthropic.AnthropicError:
            if self.meter is not None:
                self.meter.charge(None)  # a failed attempt spends a call, if not tokens
            raise
        return message

    def build_params(self, request: ModelRequest) -> dict[str, Any]:
        """The messages.create arguments: the stable prefix (tools, then system) is cached."""
        tools: list[ToolParam] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
        if tools:
            tools[-1]["cache_control"] = {"type": "ephemeral"}
        messages: list[MessageParam] = []
        for m in request.messages:
            if m.role == "user":
                messages.append(UserMessageParam(role="user", content=m.content))
            else:
                messages.append(AssistantMessageParam(role="assistant", content=m.content))
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": messages,
        }
        if request.system:
            system: list[TextBlockParam] = [
                {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
            ]
            params["system"] = system
        if tools:
            params["tools"] = tools
            choice: ToolChoiceParam
            if request.tool_choice is None:
                choice = {"type": "any"}
            elif request.tool_choice in {t.name for t in request.tools}:
                choice = {"type": "tool", "name": request.tool_choice}
            else:
                raise ProviderError(
                    f"tool_choice '{request.tool_choice}' is not among the request's tools"
                )
            params["tool_choice"] = choice
        elif request.tool_choice is not None:
            raise ProviderError(f"tool_choice '{request.tool_choice}' given but no tools offered")
        return params

    def _account(self, message: ApiMessage) -> ModelResponse:
        u = message.usage
        usage = Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
            cache_read_input_tokens=u.cache_read_input_tokens or 0,
        )
        usage.cost_usd = cost_usd(usage, self.price)
        # Counted before the content is looked at: a billed reply that later fails validation
        # still spends budget.
        self.calls += 1
        self.totals = self.totals + usage
        if self.meter is not None:
            self.meter.charge(usage)
        tool: str | None = None
        tool_input: dict[str, Any] | None = None
        texts: list[str] = []
        for block in message.content:
            if block.type == "tool_use" and tool is None:
                tool = block.name
                raw = block.input
                tool_input = dict(raw) if isinstance(raw, dict) else {"_raw": raw}
            elif block.type == "text":
                texts.append(block.text)
        return ModelResponse(
            tool=tool,
            input=tool_input,
            text="\n".join(texts),
            usage=usage,
            model=message.model,
            stop_reason=message.stop_reason,
        )
