"""The reviewer layer: a second model's opinion on each patch the other layers accepted.
Scripted provider, real git, real gates (ruff + pytest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.loop import Loop
from harness.outcome import RunSummary
from harness.providers.builtin import BuiltinProvider
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events, recorded_responses
from tests.conftest import git
from tests.test_loop import FILES, POLICY, REMOVE_OS, REMOVE_SYS, options, patch, plan, todos

REMOVE_SYS_ONLY = REMOVE_SYS.replace(
    "@@ -1,3 +1,2 @@\n import os\n-import sys\n", "@@ -1,2 +1,1 @@\n-import sys\n"
)


def review(games: bool, how: str = "") -> dict[str, Any]:
    return {"phase": "review", "tool": "submit_review", "input": {"games_gate": games, "how": how}}


def skip(item: str) -> dict[str, Any]:
    answer = {"item_id": item, "action": "skip", "explanation": "cannot"}
    return {"phase": "execute", "tool": "propose_patch", "input": answer}


def with_mode(mode: str) -> str:
    # POLICY ends in [loop]; the guard's review table is a table of its own.
    return POLICY + f'\n[guard.review]\nmode = "{mode}"\n'


def run(make_repo: Callable[..., Path], responses: list[dict[str, Any]], policy: str = POLICY):
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(responses)
    summary: RunSummary = Loop(options(repo, provider, policy=policy)).run()
    events = read_events(Path(summary.run_dir))
    return summary, repo, events, provider


def test_auto_mode_flags_and_records_but_lands(make_repo) -> None:
    summary, repo, events, provider = run(
        make_repo,
        [plan(), todos("T1"), patch("T1", REMOVE_OS), review(True, "drops an import a test uses")],
    )
    assert provider.remaining == 0  # the review was asked for, once
    reviews = [e for e in events if e["kind"] == "review"]
    assert [(e["mode"], e["games_gate"], e["item"]) for e in reviews] == [("flag", True, "T1")]
    sha = summary.blocks[0].commits[0]
    assert "Harness-Review: flagged: drops an import a test uses" in git(
        repo, "log", "-1", "--format=%B", sha
    )


def test_refuse_mode_refuses_and_the_same_change_never_lands_again(make_repo) -> None:
    summary, repo, events, provider = run(
        make_repo,
        [
            plan(),
            todos("T1", "T2"),
            patch("T1", REMOVE_OS),
            review(True, "it hides the finding"),
            skip("T1"),
            # The same change again, for another item: the ledger refuses it before any review.
            patch("T2", REMOVE_OS),
            patch("T2", REMOVE_SYS_ONLY),
            review(False),
        ],
        policy=with_mode("refuse"),
    )
    assert provider.remaining == 0
    block = summary.blocks[0]
    assert len(block.commits) == 1 and block.rejected >= 2
    calc = git(repo, "show", f"{summary.branch}:pkg/calc.py")
    assert "import os" in calc and "import sys" not in calc
    verdicts = [e for e in events if e["kind"] == "review"]
    assert [e["games_gate"] for e in verdicts] == [True, False]
    again = [e for e in events if e["kind"] == "refused_again"]
    assert again and "refused at landing: review.games_gate: it hides the finding" in str(again)
    assert "Harness-Review: no gaming seen" in git(
        repo, "log", "-1", "--format=%B", block.commits[0]
    )


def test_no_valid_answer_fails_closed_in_refuse_mode(make_repo) -> None:
    text_only = {"phase": "review", "tool": None, "text": "looks fine to me"}
    summary, _repo, events, provider = run(
        make_repo,
        [plan(), todos("T1"), patch("T1", REMOVE_OS), text_only, text_only, text_only],
        policy=with_mode("refuse"),
    )
    assert provider.remaining == 0
    assert summary.blocks[0].commits == []
    rejected = [e for e in events if e["kind"] == "review"]
    assert rejected and rejected[0]["games_gate"] is None


def test_off_mode_and_the_builtin_provider_never_ask(make_repo) -> None:
    summary, _repo, events, provider = run(
        make_repo, [plan(), todos("T1"), patch("T1", REMOVE_OS)], policy=with_mode("off")
    )
    assert provider.remaining == 0 and len(summary.blocks[0].commits) == 1
    assert not [e for e in events if e["kind"] == "review"]
    repo = make_repo(FILES, name="builtin")
    built = Loop(options(repo, BuiltinProvider(), policy=with_mode("refuse"))).run()
    assert built.blocks[0].commits  # the builtin provider's fixes land, unreviewed
    assert not [e for e in read_events(Path(built.run_dir)) if e["kind"] == "review"]


def test_a_recorded_run_with_reviews_replays_exactly(make_repo, tmp_path: Path) -> None:
    first, repo, _events, _provider = run(
        make_repo,
        [
            plan(),
            todos("T1", "T2"),
            patch("T1", REMOVE_OS),
            review(True, "games it"),
            patch("T2", REMOVE_SYS_ONLY),
            review(False),
        ],
        policy=with_mode("refuse"),
    )
    phases = [r["phase"] for r in recorded_responses(Path(first.run_dir))]
    assert phases == ["plan", "todo", "execute", "review", "execute", "review"]
    replay = ScriptedProvider(Path(first.run_dir))
    opts = options(repo, replay, policy=with_mode("refuse"), runs_dir=tmp_path / "replays")
    second = Loop(opts).run()
    assert replay.remaining == 0
    assert git(repo, "diff", first.branch, second.branch, "--", ".", ":!docs/audits") == ""
    assert second.blocks[0].rejected == first.blocks[0].rejected
