"""The approval chain (harness/approve.py): policy rules, first match wins; the person at the
terminal (driven here through its `read` and `editor` hooks; through a real pseudo-terminal in
test_supervised.py); the record's decisions; and each decision through the loop: a refusal's
reason reaches the model, an edit goes through the guard again, skip and quit."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from harness.approve import (
    Approval,
    BlockReview,
    FileChange,
    PatchReview,
    RecordedApprover,
    RuleChain,
    TerminalApprover,
    Unattended,
    make_approver,
)
from harness.errors import ExitCode, PolicyError, ReplayDiverged
from harness.loop import Loop
from harness.policy import ApproveConfig, ApproveRule, parse_policy
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from tests.conftest import git, other_gates_off
from tests.test_loop import STEPS, options, plan

POLICY = (
    other_gates_off("ruff")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[guard]
forbidden = ["docs/audits/CLAUDE_PROGRESS.md"]
[loop]
max_iterations = 1
verify_patches = false
"""
)
FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": '"""Calc."""\nimport json\nimport os\nimport sys\n\n\ndef add(a, b):\n'
    "    return a + b\n",
    "pkg/util.py": '"""Util."""\nimport re\n\n\ndef one():\n    return 1\n',
    "tests/test_calc.py": "from pkg.calc import add\n\n\ndef test_add():\n"
    "    assert add(2, 3) == 5\n",
    "docs/audits/CLAUDE_PROGRESS.md": "# Progress\n",
}
DROP_OS = (
    '--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,4 +1,3 @@\n """Calc."""\n import json\n'
    "-import os\n import sys\n"
)
CALC = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n"
DROP_SYS = CALC + "@@ -2,4 +2,3 @@\n import json\n import os\n-import sys\n \n"
NOQA_OS = (
    '--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,4 +1,4 @@\n """Calc."""\n import json\n'
    "-import os\n+import os  # noqa: F401\n import sys\n"
)
# After DROP_OS landed.
THEN_SYS = CALC + "@@ -2,3 +2,2 @@\n import json\n-import sys\n \n"
THEN_JSON = CALC + '@@ -1,3 +1,2 @@\n """Calc."""\n-import json\n import sys\n'
DROP_RE = '--- a/pkg/util.py\n+++ b/pkg/util.py\n@@ -1,2 +1 @@\n """Util."""\n-import re\n'

STEPS2 = STEPS.replace(
    "## Guardrails",
    "## BLOCK 2 — Ruff again\n\n**Gate:**\n```bash\nruff check pkg\n```\n\n## Guardrails",
)


def review(*files: tuple[str, int], diff: str = "--- a/x\n+++ b/x\n") -> PatchReview:
    return PatchReview(
        block=1,
        item="a",
        title="item a",
        attempt=1,
        diff=diff,
        files=[FileChange(path=p, added=n, removed=0) for p, n in files],
        guard="accepted",
    )


def todos(*items: tuple[str, str]) -> dict[str, object]:
    listed = [{"id": i, "title": f"item {i}", "files": [p], "gate": "ruff"} for i, p in items]
    return {"phase": "todo", "tool": "submit_todos", "input": {"items": listed}}


def patch(item: str, diff: str) -> dict[str, object]:
    return {"phase": "execute", "tool": "propose_patch", "input": {"item_id": item, "diff": diff}}


def skip(item: str) -> dict[str, object]:
    return {
        "phase": "execute",
        "tool": "propose_patch",
        "input": {"item_id": item, "action": "skip", "explanation": "cannot"},
    }


class Answers:
    """An approver answering from a list, keeping what it was shown (the Approver Protocol)."""

    def __init__(self, patches: list[Approval], blocks: list[Approval] | None = None) -> None:
        self.patches, self.blocks = list(patches), list(blocks or [])
        self.reviews: list[PatchReview] = []
        self.after: list[BlockReview] = []

    def patch(self, review: PatchReview) -> Approval:
        self.reviews.append(review)
        return self.patches.pop(0)

    def block(self, review: BlockReview) -> Approval:
        self.after.append(review)
        return self.blocks.pop(0)


# ---------------------------------------------------------------------------------- the rules

ISSUE_RULES = [
    ApproveRule(
        name="small test edits", paths=["tests/"], match="all", max_changed_lines=5,
        decision="approve",
    ),
    ApproveRule(name="payments", paths=["src/payments"], decision="ask"),
    ApproveRule(name="migrations", paths=["**/migrations/**"], decision="reject",
                reason="migrations are written by hand"),
]  # fmt: skip


def test_the_first_matching_rule_decides_and_names_itself() -> None:
    person = Answers([Approval(decision="approve", by="person")] * 3)
    chain = RuleChain(ISSUE_RULES, person)
    small = chain.patch(review(("tests/test_a.py", 3), ("tests/test_b.py", 2)))
    assert small == Approval(decision="approve", by="rule 1 (small test edits)")
    # One line more than the rule allows: no longer rule 1's; no other rule matches either.
    assert chain.patch(review(("tests/test_a.py", 6))).by == "person"
    # Not only tests: `match = "all"` does not hold.
    assert chain.patch(review(("tests/test_a.py", 1), ("src/app.py", 1))).by == "person"
    refused = chain.patch(review(("src/db/migrations/0002.py", 1)))
    assert refused == Approval(
        decision="reject", by="rule 3 (migrations)", reason="migrations are written by hand"
    )
    # `ask` sends it to the person even where a later rule would reject it: first match wins.
    asked = chain.patch(review(("src/payments/migrations/0001.py", 1)))
    assert asked.by == "person"
    assert [r.files[0].path for r in person.reviews] == [
        "tests/test_a.py",
        "tests/test_a.py",
        "src/payments/migrations/0001.py",
    ]


def test_what_no_rule_decides_goes_to_the_unattended_setting() -> None:
    config = ApproveConfig(rules=ISSUE_RULES, unattended="reject")
    chain = make_approver(config, None)
    assert chain.patch(review(("tests/test_a.py", 1))).decision == "approve"
    unmatched = chain.patch(review(("src/app.py", 1)))
    assert (unmatched.decision, unmatched.by) == ("reject", "unattended")
    assert "nobody supervises" in unmatched.reason
    asked = chain.patch(review(("src/payments/api.py", 1)))
    assert (asked.decision, asked.by) == ("reject", "unattended")
    # The default: no rules, approve everything, and every block goes on.
    default = make_approver(ApproveConfig(), None)
    assert isinstance(default, Unattended)
    assert default.patch(review(("src/app.py", 100))).decision == "approve"
    after = BlockReview(block=1, title="t", status="goal_met", deltas="", kept=0, reverted=0,
                        rejected=0, next_block=2)  # fmt: skip
    assert default.block(after) == Approval(decision="go_on", by="unattended")


def test_a_rule_without_paths_matches_by_size_alone_and_a_patch_without_files_matches_none() -> (
    None
):
    rule = ApproveRule(max_changed_lines=2, decision="approve")
    chain = RuleChain([rule], Unattended("reject"))
    assert chain.patch(review(("a.py", 2))).by == "rule 1"
    assert chain.patch(review(("a.py", 3))).by == "unattended"
    named = RuleChain([ApproveRule(paths=["a.py"], decision="approve")], Unattended("reject"))
    assert named.patch(review()).by == "unattended"


def test_the_rules_are_validated_in_the_policy() -> None:
    policy = parse_policy(
        '[approve]\nunattended = "reject"\n\n[[approve.rules]]\nname = "tests"\n'
        'paths = ["tests/**"]\nmatch = "all"\nmax_changed_lines = 5\ndecision = "approve"\n\n'
        '[[approve.rules]]\npaths = ["migrations"]\ndecision = "reject"\n'
    )
    assert [r.decision for r in policy.approve.rules] == ["approve", "reject"]
    assert policy.approve.unattended == "reject"
    with pytest.raises(PolicyError) as bad:
        parse_policy('[[approve.rules]]\ndecision = "maybe"\npath = ["x"]\n', "p.toml")
    message = str(bad.value)
    assert message.startswith("p.toml: ") and "\n" not in message
    assert "approve.rules.0.decision" in message and "unknown key 'approve.rules.0.path'" in message
    with pytest.raises(PolicyError, match=r"approve.rules.0.decision: Field required"):
        parse_policy('[[approve.rules]]\npaths = ["x"]\n')
    with pytest.raises(PolicyError, match="max_changed_lines"):
        parse_policy('[[approve.rules]]\nmax_changed_lines = -1\ndecision = "ask"\n')


# ---------------------------------------------------------------------------------- a person


def reader(*answers: str) -> Callable[[str], str]:
    it: Iterator[str] = iter(answers)

    def read(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def terminal(
    *answers: str, editor: Callable[[Path], bool] | None = None
) -> tuple[TerminalApprover, io.StringIO]:
    out = io.StringIO()
    # As ui.err is made (no highlighting of numbers and words), but writing to a terminal.
    console = Console(
        file=out, force_terminal=True, color_system="truecolor", width=100, highlight=False
    )
    if editor is None:
        return TerminalApprover(console, reader(*answers)), out
    return TerminalApprover(console, reader(*answers), editor), out


def shown() -> PatchReview:
    return PatchReview(
        block=2,
        item="T3",
        title="Remove the unused import os",
        attempt=1,
        diff=DROP_OS,
        files=[FileChange(path="pkg/calc.py", added=0, removed=1)],
        guard="accepted: pkg/calc.py +0/-1",
        repairs=["hunk header counts"],
        checks={"ruff": "3 -> 2 (changed files)"},
        verified="2 test(s), selected",
    )


def test_a_person_sees_the_item_the_highlighted_diff_the_counts_and_the_checks() -> None:
    person, out = terminal("x", "a")
    said = person.patch(shown())
    assert said.decision == "approve" and said.by.startswith("person")
    raw = out.getvalue()
    text = re.sub(r"\x1b\[[0-9;]*m", "", raw)
    assert "block 2, item T3 (attempt 1)" in text and "Remove the unused import os" in text
    # rich's diff lexer: the removed line is coloured, so the escape code sits right before it.
    assert "\x1b[" in raw.split("-import os")[0].rsplit("\n", 1)[-1]
    assert "guard: accepted: pkg/calc.py +0/-1" in text
    assert "repaired: hunk header counts" in text
    assert "pkg/calc.py: 1 changed line (+0/-1)" in text
    assert "check ruff: 3 -> 2 (changed files)" in text
    assert "per-patch verification: 2 test(s), selected" in text
    assert "answer one of: a, r, e, s, q" in text  # "x" is no answer


def test_a_person_rejects_with_a_reason_skips_and_quits() -> None:
    person, _ = terminal("reject", "keep os: it is re-exported")
    said = person.patch(shown())
    assert (said.decision, said.reason) == ("reject", "keep os: it is re-exported")
    person, _ = terminal("r", "")
    assert person.patch(shown()).reason == "rejected without a reason"
    assert terminal("s")[0].patch(shown()).decision == "skip"
    assert terminal("q")[0].patch(shown()).decision == "quit"


def test_end_of_input_quits_instead_of_waiting() -> None:
    person, _ = terminal()
    said = person.patch(shown())
    assert (said.decision, said.reason) == ("quit", "end of input on the terminal")
    person, _ = terminal("r")  # gone while asked for the reason
    assert person.patch(shown()).decision == "quit"
    after = BlockReview(block=1, title="t", status="goal_met", deltas="ruff 3 -> 0", kept=2,
                        reverted=0, rejected=1, next_block=2)  # fmt: skip
    assert terminal()[0].block(after).decision == "stop"


def test_a_person_edits_the_diff_in_an_editor() -> None:
    seen: list[tuple[Path, str]] = []

    def editor(path: Path) -> bool:
        seen.append((path, path.read_text()))
        path.write_text(DROP_SYS)
        return True

    person, _ = terminal("e", editor=editor)
    said = person.patch(shown())
    ((path, handed),) = seen
    assert handed == DROP_OS  # the editor was handed the diff as shown
    assert (said.decision, said.diff) == ("edit", DROP_SYS)
    assert not path.exists()


def test_an_unchanged_or_failed_edit_asks_again() -> None:
    person, out = terminal("e", "e", "a", editor=lambda path: True)  # saved as it was
    assert person.patch(shown()).decision == "approve"
    assert out.getvalue().count("the diff is unchanged") == 2
    person, out = terminal("e", "s", editor=lambda path: False)
    assert person.patch(shown()).decision == "skip"
    assert "the editor failed; the patch is unchanged" in out.getvalue()


def test_a_person_decides_after_a_block() -> None:
    after = BlockReview(block=1, title="Ruff", status="goal_met", deltas="ruff 3 -> 0", kept=2,
                        reverted=0, rejected=1, next_block=2)  # fmt: skip
    person, out = terminal("y")
    assert person.block(after).decision == "go_on"
    assert "block 1 done: goal_met" in out.getvalue() and "gates: ruff 3 -> 0" in out.getvalue()
    assert "2 kept, 0 reverted, 1 rejected" in out.getvalue()
    assert terminal("n")[0].block(after).decision == "stop"


# ---------------------------------------------------------------------------------- the record


def test_the_record_hands_out_each_decision_only_for_its_patch() -> None:
    first = review(("a.py", 1), diff=DROP_OS)
    events = [
        {"on": "patch", "block": 1, "item": "a", "diff_sha": first.digest, "decision": "reject",
         "by": "person (x)", "reason": "no"},
        {"on": "block", "block": 1, "decision": "go_on", "by": "person (x)", "reason": ""},
    ]  # fmt: skip
    recorded = RecordedApprover(events)
    assert recorded.patch(first) == Approval(decision="reject", by="person (x)", reason="no")
    with pytest.raises(ReplayDiverged, match="approval #2 is asked about block 1, item a"):
        recorded.patch(review(("a.py", 1), diff=DROP_SYS))  # a block decision is next
    other = RecordedApprover(events)
    with pytest.raises(ReplayDiverged, match="the run's was about block 1, item a, patch"):
        other.patch(review(("a.py", 1), diff=DROP_SYS))  # another patch
    after = BlockReview(block=1, title="t", status="goal_met", deltas="", kept=0, reverted=0,
                        rejected=0, next_block=2)  # fmt: skip
    assert recorded.block(after).decision == "go_on"
    with pytest.raises(ReplayDiverged, match=r"approval #3 .*the run recorded 2"):
        recorded.block(after)


# ---------------------------------------------------------------------------------- the loop

RULES = """
[[approve.rules]]
name = "calc is frozen"
paths = ["pkg/calc.py"]
decision = "reject"
reason = "pkg/calc.py is frozen this week"

[[approve.rules]]
name = "small edits"
max_changed_lines = 5
decision = "approve"
"""


def test_a_rule_refusal_reaches_the_model_and_every_decision_is_recorded(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [
            plan(),
            todos(("a", "pkg/calc.py"), ("b", "pkg/util.py")),
            patch("a", DROP_OS),
            skip("a"),
            patch("b", DROP_RE),
        ]
    )
    summary = Loop(options(repo, provider, policy=POLICY + RULES)).run()
    told = provider.requests[3].messages[-1].content  # after a's patch: why it was refused
    assert "rejected by rule 1 (calc is frozen): pkg/calc.py is frozen this week" in told
    events = read_events(Path(summary.run_dir))
    decided = [(e["item"], e["decision"], e["by"]) for e in events if e["kind"] == "approval"]
    assert decided == [
        ("a", "reject", "rule 1 (calc is frozen)"),
        ("b", "approve", "rule 2 (small edits)"),
    ]
    (landed,) = summary.blocks[0].commits
    assert "Harness-Approved: rule 2 (small edits)" in git(repo, "log", "-1", "--format=%B", landed)
    assert "import os" in git(repo, "show", f"{summary.branch}:pkg/calc.py")
    assert summary.blocks[0].rejected == 1


def test_an_unattended_run_records_its_default_decisions_without_a_trailer(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [plan(), todos(("b", "pkg/util.py")), patch("b", DROP_RE)]
    )
    summary = Loop(options(repo, provider, steps=STEPS2, policy=POLICY)).run()
    events = read_events(Path(summary.run_dir))
    decided = [(e["on"], e["decision"], e["by"]) for e in events if e["kind"] == "approval"]
    # Block 2 starts with ruff still failing (calc's imports), and the script has no more
    # answers: the provider stops the run there, after the go-on decision of block 1.
    assert decided[:2] == [("patch", "approve", "unattended"), ("block", "go_on", "unattended")]
    (landed,) = summary.blocks[0].commits
    assert "Harness-Approved" not in git(repo, "log", "-1", "--format=%B", landed)


def test_an_edit_the_guard_refuses_goes_back_to_the_model_patch_then_skip_and_quit(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [
            plan(),
            todos(("a", "pkg/calc.py"), ("b", "pkg/calc.py"), ("c", "pkg/calc.py")),
            patch("a", DROP_OS),
            patch("b", THEN_SYS),
            patch("c", THEN_JSON),
        ]
    )
    answers = Answers(
        [
            Approval(decision="edit", by="tester", diff=NOQA_OS),
            Approval(decision="approve", by="tester"),
            Approval(decision="skip", by="tester"),
            Approval(decision="quit", by="tester", reason="enough for today"),
        ]
    )
    opts = options(repo, provider, policy=POLICY)
    opts.approver = answers
    summary = Loop(opts).run()
    # The edit was refused by the guard (a new suppression), and the person was asked again
    # about the model's patch, which then landed; the model never heard of the edit.
    assert [r.item for r in answers.reviews] == ["a", "a", "b", "c"]
    assert answers.reviews[0].diff == answers.reviews[1].diff
    events = read_events(Path(summary.run_dir))
    refused = next(e for e in events if e["kind"] == "edit_refused")
    assert refused["item"] == "a" and "suppression" in refused["reasons"][0]
    verdicts = [e for e in events if e["kind"] == "verdict"]
    assert [v["accepted"] for v in verdicts] == [True, False, True, True, True]
    assert "noqa" in (Path(summary.run_dir) / verdicts[1]["patch"]).read_text()
    assert not any("noqa" in m.content for r in provider.requests for m in r.messages)
    skipped = [e for e in events if e["kind"] == "item_skipped"]
    assert [(e["item"], e["reason"]) for e in skipped] == [
        ("b", "block 1, item b: skipped by tester")
    ]
    decided = [(e["item"], e["decision"]) for e in events if e["kind"] == "approval"]
    assert decided == [("a", "edit"), ("a", "approve"), ("b", "skip"), ("c", "quit")]
    assert next(e for e in events if e.get("decision") == "edit")["diff"] == NOQA_OS
    # Quit: the run stops cleanly, what landed judged; exit 130, resumable from the record.
    assert summary.interrupted and summary.exit_code == ExitCode.INTERRUPTED
    assert summary.stopped == "stopped by tester at block 1, item c (enough for today)"
    assert summary.blocks[0].status == "stopped"
    assert len(summary.blocks[0].commits) == 1
    calc = git(repo, "show", f"{summary.branch}:pkg/calc.py")
    assert "import os" not in calc and "import sys" in calc and "import json" in calc
    assert git(repo, "status", "--porcelain") == ""
    finished = [e for e in events if e["kind"] == "run_finished"]
    assert finished[0]["exit_code"] == ExitCode.INTERRUPTED


def test_stopping_after_a_block_runs_no_more_blocks(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [plan(), todos(("b", "pkg/util.py")), patch("b", DROP_RE)]
    )
    answers = Answers(
        [Approval(decision="approve", by="tester")], [Approval(decision="stop", by="tester")]
    )
    opts = options(repo, provider, steps=STEPS2, policy=POLICY)
    opts.approver = answers
    summary = Loop(opts).run()
    assert [b.number for b in summary.blocks] == [1]
    (after,) = answers.after
    assert (after.block, after.next_block, after.kept) == (1, 2, 1)
    assert after.deltas.startswith("ruff 4 -> 3")
    assert summary.exit_code == ExitCode.INTERRUPTED
    assert summary.stopped == "stopped by tester at the end of block 1"
    events = read_events(Path(summary.run_dir))
    assert not [e for e in events if e["kind"] == "block_started" and e["block"] == 2]


def test_the_approver_sees_the_per_patch_verification(make_repo: Callable[..., Path]) -> None:
    policy = (
        other_gates_off("ruff", "pytest")
        + '\n[gates.ruff]\npaths = ["pkg"]\nargs = ["--select", "F,E"]\n'
        + '[gates.pytest]\ncov = ["pkg"]\nargs = ["-q"]\n'
        + '[guard]\nforbidden = ["docs/audits/CLAUDE_PROGRESS.md"]\n'
        + "[loop]\nmax_iterations = 1\nverify_patches = true\n"
    )
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses(
        [plan(), todos(("a", "pkg/calc.py")), patch("a", DROP_OS)]
    )
    answers = Answers([Approval(decision="approve", by="tester")])
    opts = options(repo, provider, policy=policy)
    opts.approver = answers
    Loop(opts).run()
    (seen,) = answers.reviews
    assert seen.verified is not None and "test(s)" in seen.verified
    assert seen.checks["ruff"] == "3 -> 2 (changed files)"
    assert [(f.path, f.changed) for f in seen.files] == [("pkg/calc.py", 1)]
    assert seen.guard.startswith("accepted")
