"""Budgets hold: a call that would pass a limit is not made, failed, retried and invalid calls
count, and the run stops cleanly, resumable, saying which budget ran out and where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.budget import Budget, Limits, Spend
from harness.errors import BudgetExceeded
from harness.loop import Loop
from harness.providers.base import Usage
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from tests.fakeapi import FakeAPI, fake_api, message_body, tool_use
from tests.test_loop import FILES, POLICY, REMOVE_OS, options, patch, plan, todos
from tests.test_providers_anthropic import PLAN, plan_request, provider

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}


def used(cost: float = 0.0, tokens: int = 0) -> Usage:
    return Usage(input_tokens=tokens, cost_usd=cost)


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ the budget


def test_the_call_past_the_limit_is_not_made() -> None:
    budget = Budget(Limits(calls=2), Limits())
    for _ in range(2):
        budget.before_call()
        budget.charge(None)  # failed calls count like answered ones
    with pytest.raises(BudgetExceeded) as caught:
        budget.before_call()
    assert (caught.value.budget, caught.value.scope, caught.value.spent) == ("calls", "run", 2)
    assert str(caught.value) == (
        "run budget calls ran out at before any block: 2 model calls made of 2"
    )


def test_cost_and_tokens_stop_before_the_call_that_would_pass_them() -> None:
    # $0.30 spent of $1.00 in calls of up to $0.40: the next may cost $0.40, and 0.70 fits.
    budget = Budget(Limits(cost_usd=1.0, tokens=2500), Limits())
    for cost in (0.1, 0.4):
        budget.before_call()
        budget.charge(used(cost=cost, tokens=1000))
    with pytest.raises(BudgetExceeded, match="tokens") as caught:
        budget.before_call()  # 2000 used, the dearest call took 1000: 3000 > 2500
    assert caught.value.budget == "tokens"
    budget = Budget(Limits(cost_usd=0.8), Limits())
    for cost in (0.1, 0.4):
        budget.before_call()
        budget.charge(used(cost=cost))
    with pytest.raises(BudgetExceeded, match=r"\$0\.5000 spent of \$0\.80 \(with the dearest"):
        budget.before_call()


def test_a_block_budget_starts_again_with_each_block_and_the_run_budget_does_not() -> None:
    budget = Budget(Limits(calls=5), Limits(calls=2))
    budget.start_block(1)
    for _ in range(2):
        budget.before_call()
        budget.charge(None)
    with pytest.raises(BudgetExceeded) as caught:
        budget.before_call()
    assert (caught.value.scope, caught.value.where) == ("block", "block 1")
    budget.start_block(2)
    for _ in range(2):
        budget.before_call()
        budget.charge(None)
    budget.start_block(3)
    budget.before_call()
    budget.charge(None)
    with pytest.raises(BudgetExceeded) as caught:
        budget.before_call()
    assert (caught.value.scope, caught.value.spent) == ("run", 5)


def test_an_item_budget_counts_the_calls_of_one_item_only() -> None:
    budget = Budget(Limits(), Limits(), item_calls=2)
    budget.start_block(1)
    for _ in range(3):  # plan and todo calls belong to no item
        budget.before_call()
        budget.charge(None)
    budget.start_item(1, "T1")
    for _ in range(2):
        budget.before_call()
        budget.charge(None)
    with pytest.raises(BudgetExceeded, match="at block 1, item T1: 2 model calls for this item"):
        budget.before_call()
    budget.start_item(1, "T2")
    budget.before_call()


def test_wall_time_counts_earlier_sessions_and_stops_at_a_step() -> None:
    ticks = Ticks()
    budget = Budget(
        Limits(seconds=100), Limits(seconds=30), spent=Spend(seconds=60), monotonic=ticks
    )
    budget.start_block(1)
    ticks.now = 29
    budget.before_call()
    ticks.now = 30
    with pytest.raises(BudgetExceeded) as caught:
        budget.start_item(1, "T1")
    assert (caught.value.budget, caught.value.scope) == ("seconds", "block")
    budget.start_block(2)
    ticks.now = 40
    with pytest.raises(BudgetExceeded) as caught:
        budget.before_call()
    assert (caught.value.scope, caught.value.spent) == ("run", 100)


# ------------------------------------------------------------------------------ at a retry


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with fake_api() as server:
        yield server


def test_the_limit_reached_exactly_at_an_http_retry(api: FakeAPI) -> None:
    api.push(200, message_body([tool_use("submit_plan", PLAN)]))
    api.push(529, OVERLOADED, headers={"retry-after": "0"})
    api.push(200, message_body([tool_use("submit_plan", PLAN)]))  # never asked for
    sleeps: list[float] = []
    p = provider(api.base_url, sleeps)
    budget = Budget(Limits(calls=2), Limits())
    p.meter = budget
    p.complete(plan_request())
    with pytest.raises(BudgetExceeded) as caught:
        p.complete(plan_request())  # its first attempt fails; the retry would be call 3
    assert (caught.value.budget, caught.value.spent, caught.value.limit) == ("calls", 2, 2)
    assert len(api.requests) == 2
    assert sleeps == []  # no wait for a retry that is not made
    assert budget.run.calls == 2 and p.attempts == 2


def _cli(
    args: list[str], api: FakeAPI, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    environ = {k: v for k, v in environ.items() if k != "HARNESS_MODEL"} | (env or {})
    environ |= {"ANTHROPIC_API_KEY": "sk-ant-test-0000", "ANTHROPIC_BASE_URL": api.base_url}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
        check=False,
    )


STEPS_ONE = """# STEPS test

## BLOCK 1 — Ruff to 0

- Fix the ruff findings in `pkg/`.

**Gate:**
```bash
ruff check pkg
```
"""
ITEM = {"id": "T1", "title": "drop os", "files": ["pkg/calc.py"], "gate": "ruff"}


def test_a_run_stops_at_the_retry_its_budget_forbids_and_resumes_without_asking_again(
    make_repo: Callable[..., Path], tmp_path: Path, api: FakeAPI
) -> None:
    repo = make_repo(FILES)
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS_ONE)
    policy = tmp_path / "policy.toml"
    prices = '\n[prices."claude-sonnet-5"]\ninput = 2.0\noutput = 10.0\n'
    policy.write_text(POLICY.replace("[loop]\n", "[loop]\nmax_calls = 2\n") + prices)
    runs = tmp_path / "runs"
    api.push(200, message_body([tool_use("submit_plan", {"summary": "drop os"})]))
    api.push(529, OVERLOADED, headers={"retry-after": "0"})
    run = ["run", str(steps), "--repo", str(repo), "--policy", str(policy), "--runs-dir", str(runs)]
    stopped = _cli([*run, "--model", "claude-sonnet-5"], api)
    assert stopped.returncode == 5, stopped.stderr[-3000:]
    (record,) = runs.iterdir()
    assert stopped.stderr.strip().splitlines()[-1] == (
        "harness: error: run budget calls ran out at block 1, phase todo: 2 model calls made of "
        f"2; record in {record}, work so far on branch harness/{record.name}; go on with a "
        f"larger budget: harness resume {record} --max-calls N"
    )
    assert len(api.requests) == 2  # the plan, and the todo request the server refused
    events = read_events(record)
    (budget,) = [e for e in events if e["kind"] == "budget_exhausted"]
    assert (budget["budget"], budget["where"]) == ("calls", "block 1, phase todo")
    manifest = json.loads((record / "manifest.json").read_text())
    assert (manifest["exit_code"], bool(manifest["finished"])) == (5, True)

    api.push(200, message_body([tool_use("submit_todos", {"items": [ITEM]})]))
    api.push(200, message_body([tool_use("propose_patch", {"item_id": "T1", "diff": REMOVE_OS})]))
    api.push(200, message_body([tool_use("submit_review", {"games_gate": False, "how": ""})]))
    resumed = _cli(["resume", str(record), "--max-calls", "10", "--json"], api)
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # sys is still imported: goal unmet
    bodies = [r.body for r in api.requests[2:]]
    # The plan's answer came from the record: the resumed run asked for the todos first.
    assert [b["tool_choice"].get("name") for b in bodies] == [
        "submit_todos",
        None,
        "submit_review",
    ]
    summary = json.loads(resumed.stdout)
    assert len(summary["blocks"][0]["commits"]) == 1
    # Both sessions' calls: 1 plan, 1 failed todo attempt, 3 in the resumed session.
    assert summary["cost_usd"] == pytest.approx(5 * 0 + 4 * (100 * 2.0 + 20 * 10.0) / 1e6)
    assert _spent_calls(record) == 5  # the failed attempt the budget stop recorded counts


def _loop_until_stopped(
    make_repo: Callable[..., Path], responses: list[dict[str, Any]], loop_keys: str
) -> tuple[BudgetExceeded, Path, list[str]]:
    repo = make_repo(FILES)
    said: list[str] = []
    opts = options(
        repo,
        ScriptedProvider.from_responses(responses),
        policy=POLICY.replace("[loop]\n", f"[loop]\n{loop_keys}\n"),
    )
    opts.progress = said.append
    loop = Loop(opts)
    with pytest.raises(BudgetExceeded) as caught:
        loop.run()
    return caught.value, loop.rec.dir, said


USAGE = {"input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.01}


def test_an_item_budget_reached_at_the_re_ask_of_an_invalid_answer(
    make_repo: Callable[..., Path],
) -> None:
    invalid = {"phase": "execute", "tool": "submit_plan", "input": {"summary": "not a patch"}}
    responses = [plan(), todos("T1"), invalid, patch("T1", REMOVE_OS)]
    exc, record, said = _loop_until_stopped(
        make_repo, [r | {"usage": USAGE} for r in responses], "max_item_calls = 1"
    )
    assert (exc.budget, exc.scope, exc.where) == (
        "item_calls",
        "item",
        "block 1, item T1, phase execute",
    )
    events = read_events(record)
    assert [e["kind"] for e in events if e["kind"].startswith(("model_", "invalid"))] == [
        "model_request",
        "model_response",
        "model_request",
        "model_response",
        "model_request",
        "model_response",
        "invalid_output",  # the re-ask it calls for is the item's second call: not made
    ]
    assert events[-1]["kind"] == "run_finished" and events[-1]["exit_code"] == 5
    # The spend so far is in the live progress.
    assert "  [T1] item T1 (spent $0.0200, 2 calls, 2.2k tokens, " in "\n".join(said)


def test_a_block_token_budget_stops_before_the_call_that_would_pass_it(
    make_repo: Callable[..., Path],
) -> None:
    responses = [plan(), todos("T1"), patch("T1", REMOVE_OS)]
    exc, record, _said = _loop_until_stopped(
        make_repo, [r | {"usage": USAGE} for r in responses], "block_max_tokens = 3000"
    )
    # 2 calls of 1100 tokens: a third like the dearest would make 3300.
    assert (exc.budget, exc.scope, exc.spent) == ("tokens", "block", 2200)
    assert sum(e["kind"] == "model_request" for e in read_events(record)) == 2


def _spent_calls(record: Path) -> int:
    (checkpoint,) = [e for e in read_events(record) if e["kind"] == "checkpoint"]
    return int(checkpoint["spent"]["calls"])


def test_a_killed_run_resumed_still_counts_the_retries_of_its_unfinished_block(
    make_repo: Callable[..., Path], tmp_path: Path, api: FakeAPI
) -> None:
    """The plan took two HTTP attempts (a 529, then the answer); the run is killed in the same
    block. After the resume the run has spent five calls, as it would have without the kill:
    the answers handed back from the record are charged with the attempts they took."""
    from harness.record import KILL_BEFORE

    repo = make_repo(FILES)
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS_ONE)
    policy = tmp_path / "policy.toml"
    prices = '\n[prices."claude-sonnet-5"]\ninput = 2.0\noutput = 10.0\n'
    policy.write_text(POLICY + prices)
    runs = tmp_path / "runs"
    api.push(529, OVERLOADED, headers={"retry-after": "0"})
    api.push(200, message_body([tool_use("submit_plan", {"summary": "drop os"})]))
    api.push(200, message_body([tool_use("submit_todos", {"items": [ITEM]})]))
    api.push(200, message_body([tool_use("propose_patch", {"item_id": "T1", "diff": REMOVE_OS})]))
    run = ["run", str(steps), "--repo", str(repo), "--policy", str(policy), "--runs-dir", str(runs)]
    killed = _cli([*run, "--model", "claude-sonnet-5"], api, env={KILL_BEFORE: "verdict:1"})
    assert killed.returncode < 0, killed.stderr[-3000:]
    (record,) = runs.iterdir()
    responses = [e for e in read_events(record) if e["kind"] == "model_response"]
    assert [r["attempts"] for r in responses] == [2, 1, 1]

    api.push(200, message_body([tool_use("submit_review", {"games_gate": False, "how": ""})]))
    resumed = _cli(["resume", str(record), "--json"], api)
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert len(api.requests) == 5  # the review only: nothing the record answers was asked again
    # 2 attempts for the plan, the todos, the patch, the review.
    assert _spent_calls(record) == 5
