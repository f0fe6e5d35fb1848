"""Budgets that hold: per run and per block, limits on cost, tokens, model calls and wall time,
and on the calls one todo item may take.

Every model call is checked before it is made (`before_call`) and charged after (`charge`):
failed, retried and unparseable calls count like the others. The Anthropic provider is handed
the budget (`meter`), so each HTTP attempt, retries included, is checked and charged; any other
provider is checked and charged by the loop, call by call. A call's cost and tokens are known
only once it is made, so a call is refused when the spend plus the dearest call so far would
pass a limit: the budget holds instead of being overrun by the call that crosses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field

from harness.errors import BudgetExceeded, ProviderError
from harness.policy import LoopConfig
from harness.providers.base import ModelRequest, ModelResponse, Provider, Usage

KINDS = ("cost_usd", "tokens", "calls", "seconds")


class Limits(BaseModel):
    """One scope's limits; None is no limit."""

    cost_usd: float | None = Field(None, description="USD")
    tokens: int | None = Field(None, description="input, output and cache tokens")
    calls: int | None = Field(None, description="model calls, failed and retried ones included")
    seconds: float | None = Field(None, description="wall time")


class Spend(BaseModel):
    """What a scope has used so far."""

    cost_usd: float = 0.0
    tokens: int = 0
    calls: int = 0
    seconds: float = 0.0

    def charge(self, usage: Usage | None) -> None:
        self.calls += 1
        if usage is not None:
            self.cost_usd += usage.cost_usd
            self.tokens += tokens(usage)


class Meter(Protocol):
    """What a provider that makes several attempts per call (retries) is handed."""

    def before_call(self) -> None: ...

    def charge(self, usage: Usage | None) -> None: ...


def tokens(usage: Usage) -> int:
    return (
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens
    )


def limits(loop: LoopConfig) -> tuple[Limits, Limits, int | None]:
    """The run's limits, a block's, and the calls one item may take, from the policy."""
    run = Limits(
        cost_usd=loop.max_cost_usd,
        tokens=loop.max_tokens,
        calls=loop.max_calls,
        seconds=loop.max_seconds,
    )
    block = Limits(
        cost_usd=loop.block_max_cost_usd,
        tokens=loop.block_max_tokens,
        calls=loop.block_max_calls,
        seconds=loop.block_max_seconds,
    )
    return run, block, loop.max_item_calls


class Budget:
    def __init__(
        self,
        run: Limits,
        block: Limits,
        item_calls: int | None = None,
        *,
        spent: Spend | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"run": run, "block": block}
        self.item_calls = item_calls
        self._now = monotonic
        self.run = spent.model_copy() if spent is not None else Spend()
        self._run_before = self.run.seconds  # earlier sessions of a resumed run
        self._run_t0 = monotonic()
        self.block = Spend()
        self._block_t0 = self._run_t0
        self.item: int | None = None  # calls of the current todo item; None between items
        self.dearest = Usage()  # the largest cost and token count of one call so far
        self.where = "before any block"
        self._carried: list[Usage | None] = []  # charged to the next block when it starts

    # --------------------------------------------------------------- scopes
    def start_block(self, number: int) -> None:
        self.block = Spend()
        self._block_t0 = self._now()
        self.item = None
        self.where = f"block {number}"
        for usage in self._carried:
            self.block.charge(usage)
        self._carried = []
        self.check_time()

    def start_item(self, block: int, item: str) -> None:
        self.item = 0
        self.where = f"block {block}, item {item}"
        self.check_time()

    def end_item(self) -> None:
        self.item = None

    def at(self, where: str) -> None:
        self.where = where

    # --------------------------------------------------------------- checks
    def _tick(self) -> None:
        now = self._now()
        self.run.seconds = self._run_before + now - self._run_t0
        self.block.seconds = now - self._block_t0

    def check_time(self) -> None:
        self._tick()
        for scope, spent in (("run", self.run), ("block", self.block)):
            limit = self.limits[scope].seconds
            if limit is not None and spent.seconds >= limit:
                self._exceeded("seconds", scope, spent.seconds, limit)

    def before_call(self) -> None:
        """Raise BudgetExceeded if the next call would pass a limit; it is then not made."""
        self.check_time()
        for scope, spent in (("run", self.run), ("block", self.block)):
            lim = self.limits[scope]
            if lim.calls is not None and spent.calls + 1 > lim.calls:
                self._exceeded("calls", scope, spent.calls, lim.calls)
            if lim.cost_usd is not None and (
                spent.cost_usd >= lim.cost_usd
                or spent.cost_usd + self.dearest.cost_usd > lim.cost_usd
            ):
                self._exceeded("cost_usd", scope, spent.cost_usd, lim.cost_usd)
            if lim.tokens is not None and spent.tokens + tokens(self.dearest) > lim.tokens:
                self._exceeded("tokens", scope, spent.tokens, lim.tokens)
        if self.item_calls is not None and self.item is not None and self.item >= self.item_calls:
            self._exceeded("item_calls", "item", self.item, self.item_calls)

    def charge(self, usage: Usage | None, *, item: bool = True) -> None:
        """Count one call made: answered, failed, or to be retried (`item`: by the current
        item, if any)."""
        self.run.charge(usage)
        self.block.charge(usage)
        if item and self.item is not None:
            self.item += 1
        self._dearest(usage)
        self._tick()

    def _dearest(self, usage: Usage | None) -> None:
        if usage is not None:
            self.dearest = Usage(
                cost_usd=max(self.dearest.cost_usd, usage.cost_usd),
                input_tokens=max(tokens(self.dearest), tokens(usage)),
            )

    def carry(self, calls: list[Usage | None], *, into_next_block: bool = False) -> None:
        """Count calls an earlier session made that this one will not make or be handed back
        (a resume's): to the run, and to the current block or, before it starts, the next."""
        for usage in calls:
            if into_next_block:
                self.run.charge(usage)
                self._dearest(usage)
                self._carried.append(usage)
            else:
                self.charge(usage, item=False)

    def _exceeded(self, kind: str, scope: str, spent: float, limit: float) -> None:
        said = {
            "cost_usd": f"${spent:.4f} spent of ${limit:.2f}",
            "tokens": f"{int(spent)} tokens used of {int(limit)}",
            "calls": f"{int(spent)} model calls made of {int(limit)}",
            "seconds": f"{spent:.0f}s elapsed of {limit:.0f}s",
            "item_calls": f"{int(spent)} model calls for this item of {int(limit)}",
        }[kind]
        dear = kind in ("cost_usd", "tokens")
        why = " (with the dearest call so far)" if dear else ""
        raise BudgetExceeded(
            f"{scope} budget {kind} ran out at {self.where}: {said}{why}",
            budget=kind,
            scope=scope,
            where=self.where,
            spent=spent,
            limit=limit,
        )

    # --------------------------------------------------------------- showing
    def shown(self) -> str:
        """The run's spend, for the live progress."""
        self._tick()
        spent = self.run
        return (
            f"${spent.cost_usd:.4f}, {spent.calls} call{'s' if spent.calls != 1 else ''}, "
            f"{_k(spent.tokens)} tokens, {spent.seconds:.0f}s"
        )


def _k(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


class Metered:
    """A provider whose calls the budget checks and charges, for callers that reach it without
    the loop's `ask` (the optional mapping of a script's unplaced text)."""

    def __init__(self, provider: Provider, budget: Budget) -> None:
        self.provider = provider
        self.name = provider.name
        self.model = provider.model
        self.budget = budget

    def complete(self, request: ModelRequest) -> ModelResponse:
        self.budget.before_call()
        try:
            response = self.provider.complete(request)
        except BudgetExceeded:
            raise
        except ProviderError:
            self.budget.charge(None)
            raise
        self.budget.charge(response.usage)
        return response


def metered(provider: Provider, budget: Budget) -> Provider:
    """`provider` with its calls checked and charged by `budget`: one that retries inside a
    call is handed the budget (`meter`), to check each attempt; any other is wrapped."""
    if hasattr(provider, "meter"):
        provider.meter = budget
        return provider
    return Metered(provider, budget)
